"""Types of the run's own settings, checked before anything is built.

Components check their parameters against their signatures; the keys the engine reads
itself (``seed``, ``train.epochs``, ``data.train.batch_size``, ...) are checked here, from
one table, so ``train.epochs=abc`` is a one-line recipe error instead of a failure minutes
into a run.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kitpose.errors import RecipeError
from kitpose.paths import name_problem


@dataclass(frozen=True)
class Setting:
    """What one key accepts: a type, optional bounds, null, a fixed set of choices, or a rule.

    ``rule`` is a function returning why a (well-typed) value is refused, or None.
    """

    kind: type | None = None
    minimum: float | None = None
    nullable: bool = False
    choices: tuple[Any, ...] = ()
    example: str = ""
    maximum: float | None = None
    rule: Callable[[Any], str | None] | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit, or None when it does."""
        if value is None:
            return None if self.nullable or None in self.choices else "must be set"
        if self.choices:
            return None if value in self.choices else \
                "must be one of " + ", ".join("null" if c is None else str(c) for c in self.choices)
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return "must be a whole number"
        if self.kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return "must be a number"
        if self.kind is str and not isinstance(value, str):
            return "must be a string"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}" if self.maximum is None else self._range()
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}" if self.minimum is None else self._range()
        return self.rule(value) if self.rule is not None else None

    def _range(self) -> str:
        return f"must be between {self.minimum:g} and {self.maximum:g}"


#: what ``device`` may say; the same rule as the engine's ``pick_device`` (case-insensitive)
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$", re.IGNORECASE)
#: the largest seed: torch, numpy and the data sampler all take it (as Lightning's seed_everything)
MAX_SEED = 2**32 - 1


def device_problem(value: str) -> str | None:
    """Why ``value`` names no device ``kitpose run`` can pick, or None."""
    return None if DEVICE.match(value) else "must be auto, cpu, cuda, cuda:N or mps"


def objective_problem(value: Any) -> str | None:
    """``train.objective``: a tensor name, or a mapping of tensor names to number weights."""
    if isinstance(value, str):
        return None if value else "must name a tensor"
    if not isinstance(value, Mapping):
        return "must be a tensor name or a mapping {tensor: weight}"
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            return f"weight of '{name}' must be a number"
        if weight != weight or weight in (float("inf"), float("-inf")):
            return f"weight of '{name}' must be a finite number"
    return None


def show_problem(value: Any) -> str | None:
    """``val.show``: a mapping of picture names to tensor names."""
    if not isinstance(value, Mapping) or not all(isinstance(v, str) or v is None for v in value.values()):
        return "must be a mapping {keypoints: TENSOR, heatmaps: TENSOR, target: TENSOR}"
    return None


COUNT = Setting(int, minimum=1)
#: keys of the run sections and their types (the defaults are in kitpose.recipe.DEFAULTS)
RUN_SETTINGS: dict[str, Setting] = {
    "name": Setting(str, nullable=True, example="my_run", rule=name_problem),
    "seed": Setting(int, minimum=0, maximum=MAX_SEED, example="1314"),
    "deterministic": Setting(bool),
    "device": Setting(str, example="cpu", rule=device_problem),
    "amp": Setting(choices=(None, "bf16", "fp16")),
    "runs_dir": Setting(str, example="runs"),
    "train.epochs": Setting(int, minimum=0, example="8"),
    "train.steps": Setting(int, minimum=1, nullable=True, example="100"),
    "train.log_every": Setting(int, minimum=1, example="10"),
    "train.clip_grad": Setting(float, minimum=0, nullable=True, example="1.0"),
    "train.scheduler_interval": Setting(choices=("epoch", "step")),
    "train.objective": Setting(example="loss", rule=objective_problem),
    "train.divergence": Setting(float, minimum=1, nullable=True, example="1.0e4"),
    "train.dist_timeout": Setting(float, minimum=1, example="300"),
    "val.every": Setting(int, minimum=1, example="1"),
    "val.mode": Setting(choices=("max", "min")),
    "val.snapshot": Setting(int, minimum=0, example="4"),
    "val.metric": Setting(str, nullable=True, example="PCKh@0.1"),
    "val.branch": Setting(str, nullable=True, example="dark"),
    "val.show": Setting(rule=show_problem),
    "test.flip": Setting(bool),
    "test.checkpoint": Setting(str, nullable=True, example="best"),
    "test.flip_heatmaps": Setting(str, example="heatmaps"),
    "test.flip_encoder": Setting(str, example="encoder"),
}
#: keys of every ``data.SPLIT`` section
SPLIT_SETTINGS: dict[str, Setting] = {
    "batch_size": Setting(int, minimum=1, example="32"),
    "workers": Setting(int, minimum=0, example="2"),
    "shuffle": Setting(bool),
    "drop_last": Setting(bool),
    "limit": Setting(int, minimum=1, nullable=True, example="100"),
}


def check_settings(values: Mapping[str, Any], table: Mapping[str, Setting], *, file: str,
                   prefix: str = "") -> None:
    """Raise a :class:`RecipeError` naming the first key in ``values`` that ``table`` refuses."""
    for key, setting in table.items():
        if key not in values:
            continue
        problem = setting.problem(values[key])
        if problem:
            path = prefix + key
            hint = f"e.g. {path}={setting.example}" if setting.example else None
            shown = repr(values[key])
            message = problem if shown in problem else f"{problem}, not {shown}"
            raise RecipeError(message, file=file, path=path, hint=hint)
