"""Types of the run's own settings, checked before anything is built.

Components check their parameters against their signatures; the keys the engine reads
itself (``seed``, ``train.epochs``, ``data.train.batch_size``, ...) are checked here, from
one table, so ``train.epochs=abc`` is a one-line recipe error instead of a failure minutes
into a run.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kitpose.errors import RecipeError


@dataclass(frozen=True)
class Setting:
    """What one key accepts: a type, an optional lower bound, null, or a fixed set of choices."""

    kind: type | None = None
    minimum: float | None = None
    nullable: bool = False
    choices: tuple[Any, ...] = ()
    example: str = ""

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
            return f"must be at least {self.minimum:g}"
        return None


COUNT = Setting(int, minimum=1)
#: keys of the run sections and their types (the defaults are in kitpose.recipe.DEFAULTS)
RUN_SETTINGS: dict[str, Setting] = {
    "seed": Setting(int, example="1314"),
    "deterministic": Setting(bool),
    "device": Setting(str, example="cpu"),
    "amp": Setting(choices=(None, "bf16", "fp16")),
    "runs_dir": Setting(str, example="runs"),
    "train.epochs": Setting(int, minimum=0, example="8"),
    "train.steps": Setting(int, minimum=1, nullable=True, example="100"),
    "train.log_every": Setting(int, minimum=1, example="10"),
    "train.clip_grad": Setting(float, minimum=0, nullable=True, example="1.0"),
    "train.scheduler_interval": Setting(choices=("epoch", "step")),
    "val.every": Setting(int, minimum=1, example="1"),
    "val.mode": Setting(choices=("max", "min")),
    "val.snapshot": Setting(int, minimum=0, example="4"),
    "test.flip": Setting(bool),
    "test.checkpoint": Setting(str, example="best"),
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
            raise RecipeError(f"{problem}, not {values[key]!r}", file=file, path=path, hint=hint)
