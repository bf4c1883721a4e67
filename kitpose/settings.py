"""The run's own settings: one typed schema, with defaults and a one-line help each.

Components check their parameters against their signatures; the keys the engine reads
itself (``seed``, ``train.epochs``, ``data.train.batch_size``, ...) are defined here, once,
as dataclasses: their type, default, bounds and help. Everything else is derived from
them: the defaults merged under every recipe (:func:`defaults`), the check that makes ``train.epochs=abc`` a one-line recipe error
instead of a failure minutes into a run (:func:`check_section`), the keys a resumed run
may change (:func:`safe_on_resume`) and the table ``kitpose show --settings`` prints.

The dataclasses are valid omegaconf structured configs (``OmegaConf.structured(RunSettings)``),
but recipes are not merged into them: omegaconf would convert quietly (``"8"`` to 8, 300 to
300.0) where kitpose refuses a wrong value in one line naming the key.
"""
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any, Optional

import yaml

from kitpose.errors import RecipeError, suggestion
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


# -- rules of the settings that a type alone cannot say --------------------------------------
#: what ``device`` may say; the same rule as the engine's ``pick_device`` (case-insensitive)
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$", re.IGNORECASE)
#: the largest seed: torch, numpy and the data sampler all take it (as Lightning's seed_everything)
MAX_SEED = 2**32 - 1


def device_problem(value: str) -> str | None:
    """Why ``value`` names no device ``kitpose run`` can pick, or None."""
    return None if DEVICE.match(value) else "must be auto, cpu, cuda, cuda:N or mps"


def threads_problem(value: Any) -> str | None:
    """``threads``: null, a whole number of at least 1, or ``auto``."""
    if value is None or value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return None
    return "must be null (torch's default), a number of threads >= 1, or auto"


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


def setting(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,  # noqa: A002
            minimum: float | None = None, maximum: float | None = None, choices: tuple[Any, ...] = (),
            example: str = "", rule: Callable[[Any], str | None] | None = None,
            resume: bool = False, nullable: bool | None = None) -> Any:
    """A schema field: its default (``MISSING``: none, the recipe's own section), a one-line
    help, the checks beyond its type, and whether a resumed run may change it (``nullable``
    overrides what the type says, e.g. for a free-form value that must be given)."""
    meta = {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices,
            "example": example, "rule": rule, "resume": resume, "nullable": nullable}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# -- the schema ------------------------------------------------------------------------------
@dataclass(kw_only=True)
class TrainSettings:
    """``train``: how the train flow is optimised."""

    epochs: int = setting(1, "passes over the training data", minimum=0, example="8", resume=True)
    steps: Optional[int] = setting(None, "stop after this many optimizer steps (null: run the epochs)",
                                   minimum=1, example="100", resume=True)
    optimizer: Any = setting(factory=lambda: {"use": "adam", "lr": 1e-3}, help="the optimizer: {use: NAME, ...}")
    scheduler: Any = setting(None, "the learning-rate scheduler: {use: NAME, ...} or null")
    scheduler_interval: str = setting("epoch", "when the scheduler steps", choices=("epoch", "step"))
    clip_grad: Optional[float] = setting(None, "clip the gradient norm to this (null: no clipping)",
                                         minimum=0, example="1.0")
    log_every: int = setting(10, "report the loss every N steps", minimum=1, example="10", resume=True)
    objective: Any = setting("loss", "the tensor to minimise, or several summed with weights "
                             "{loss_h1: 1.0, loss_int: 1.0}", example="loss", rule=objective_problem,
                             nullable=False)
    divergence: Optional[float] = setting(1.0e4, "stop when the objective grows to this many times its "
                                          "first value (null: never)", minimum=1, example="1.0e4")
    dist_timeout: float = setting(300, "seconds a rank waits for the others under torchrun before the "
                                  "job fails", minimum=1, example="300")


@dataclass(kw_only=True)
class ValSettings:
    """``val``: when to validate and which value picks the best checkpoint."""

    every: int = setting(1, "validate every N epochs (and after the last)", minimum=1, example="1")
    metric: Optional[str] = setting(None, "the value that picks best.pt (null: the last epoch)",
                                    example="PCKh@0.1")
    branch: Optional[str] = setting(None, "the branch whose metric counts (null: the first)", example="dark")
    mode: str = setting("max", "whether a larger or a smaller metric is better", choices=("max", "min"))
    snapshot: int = setting(4, "validation samples handed to the monitors for pictures", minimum=0,
                            example="4")


@dataclass(kw_only=True)
class TestSettings:
    """``test``: what the test scores."""

    __test__ = False  # not a pytest test class

    checkpoint: Optional[str] = setting("best", "best, last, or the path of a checkpoint", example="best")
    keep_heatmaps: bool = setting(False, "also write heatmaps.npz: the maps the decoders read, with the true "
                                         "keypoints (for kitpose lab --run)", resume=True)


@dataclass(kw_only=True)
class SplitSettings:
    """``data.SPLIT`` (``train``, ``val``, ``test``): a dataset, its transforms, its loader."""

    dataset: Any = setting(help="the dataset: {use: NAME, ...}")
    transforms: Any = setting(help="list of transforms applied in order")
    batch_size: int = setting(32, "samples per batch (per process under DDP)", minimum=1, example="32")
    shuffle: Optional[bool] = setting(None, "shuffle every epoch (null: for train only)")
    workers: int = setting(0, "data-loader worker processes", minimum=0, example="2", resume=True)
    drop_last: Optional[bool] = setting(None, "drop the last incomplete batch (null: for train only)")
    limit: Optional[int] = setting(None, "use only the first N samples (null: all)", minimum=1, example="100")


@dataclass(kw_only=True)
class RunSettings:
    """A recipe's top-level keys. Free-form sections (``data``, ``components`` ...) have no
    default here; their own modules check them."""

    kitpose: int = setting(help="schema version of the recipe format (1)")
    extends: Any = setting(help="base recipes merged under this one")
    name: Optional[str] = setting(help="run name (default: the recipe file name)", example="my_run",
                                  rule=name_problem)
    description: Optional[str] = setting(help="free text")
    seed: int = setting(0, "seed for python, numpy, torch and data workers", minimum=0, maximum=MAX_SEED,
                        example="1314")
    device: str = setting("auto", "auto | cpu | cuda | cuda:N | mps", example="cpu", rule=device_problem,
                          resume=True)
    deterministic: bool = setting(False, "use deterministic algorithms")
    threads: Any = setting(None, "torch CPU threads: null keeps torch's default (one per core); a number; "
                                 "auto: the cores other work leaves free when the run starts (results may "
                                 "differ in their last digits between thread counts)", example="auto",
                           rule=threads_problem, resume=True)
    amp: Optional[str] = setting(None, "mixed precision on CUDA: null | bf16 | fp16", choices=(None, "bf16", "fp16"))
    runs_dir: str = setting("runs", "folder under which runs/<name>/<time>/ is made", example="runs", resume=True)
    data: Any = setting(help="datasets, transforms and loaders per split")
    components: Any = setting(help="named components: {key: {use: NAME, ...params}} or groups of them")
    flows: Any = setting(help="train / val / test flows: lists of nodes over named tensors")
    train: TrainSettings = setting(factory=TrainSettings, help="optimizer, scheduler, epochs or steps, clipping")
    val: ValSettings = setting(factory=ValSettings,
                               help="how often to validate and which metric picks the best checkpoint")
    test: TestSettings = setting(factory=TestSettings, help="which checkpoint to test")
    monitors: Any = setting(help="console, files, visdom: {key: {use: NAME, ...}}", resume=True)
    study: Any = setting(help="settings of 'kitpose study' recipes")
    vars: Any = setting(help="free-form values for interpolation, e.g. ${vars.joints}")


#: settings of older recipes that no longer exist: dropped as a recipe file is read, after
#: the plugins have moved what they own (``kitpose_migrate_recipe``)
RETIRED: tuple[str, ...] = ("val.show",)

#: the sections of a recipe whose keys this schema defines
SECTIONS: dict[str, type] = {"train": TrainSettings, "val": ValSettings, "test": TestSettings}


# -- what is derived from it -----------------------------------------------------------------
def defaults(schema: type = RunSettings) -> dict[str, Any]:
    """Every default of ``schema``, as the plain mapping merged under a recipe (fields
    without one, the free-form sections, are left out)."""
    out: dict[str, Any] = {}
    for item in dataclasses.fields(schema):
        if item.default is not MISSING:
            out[item.name] = item.default
        elif item.default_factory is not MISSING:
            value = item.default_factory()
            out[item.name] = defaults(type(value)) if dataclasses.is_dataclass(value) else value
    return out


def help_texts(schema: type = RunSettings) -> dict[str, str]:
    """``{key: one-line help}`` of the fields of ``schema``, in order."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(schema)}


def rule_of(item: dataclasses.Field) -> Setting:
    """The :class:`Setting` check of one field, from its type and its metadata."""
    kind, nullable = _kind(item.type)
    meta = item.metadata
    if meta.get("nullable") is not None:
        nullable = meta["nullable"]
    return Setting(kind=None if meta.get("choices") else kind, nullable=nullable, minimum=meta.get("minimum"),
                   maximum=meta.get("maximum"), choices=meta.get("choices") or (), example=meta.get("example", ""),
                   rule=meta.get("rule"))


_TYPES = (int, float, bool, str)


def _kind(annotation: Any) -> tuple[type | None, bool]:
    """``(int, True)`` for ``Optional[int]``; ``(None, True)`` for a free-form value."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 and inner[0] in _TYPES else None), True
    return (annotation if annotation in _TYPES else None), annotation is Any


def checked_fields(schema: type) -> Iterator[dataclasses.Field]:
    """The fields of ``schema`` that hold a value (not a nested section)."""
    return (item for item in dataclasses.fields(schema) if not dataclasses.is_dataclass(item.type))


def check_section(values: Mapping[str, Any], schema: type, *, file: str, prefix: str = "") -> None:
    """Raise a :class:`RecipeError` naming the first key of ``values`` that ``schema`` refuses."""
    for item in checked_fields(schema):
        if item.name not in values:
            continue
        rule = rule_of(item)
        value = values[item.name]
        problem = rule.problem(value)
        if problem:
            path = prefix + item.name
            hint = f"e.g. {path}={rule.example}" if rule.example else None
            shown = repr(value)
            raise RecipeError(problem if shown in problem else f"{problem}, not {shown}", file=file, path=path,
                              hint=hint)


def unknown_key(values: Mapping[str, Any], schema: type, *, file: str, prefix: str) -> None:
    """Raise a :class:`RecipeError` for a key of ``values`` that ``schema`` does not define."""
    known = help_texts(schema)
    for key in values:
        if key not in known:
            raise RecipeError(f"unknown key '{key}'{suggestion(str(key), known)}", file=file,
                              path=f"{prefix}{key}", hint="keys are: " + ", ".join(known))


def safe_on_resume() -> tuple[str, ...]:
    """Dotted keys (glob patterns) a resumed run may change: how long to train, how often to
    log, where to show it, which device."""
    keys = [f.name for f in dataclasses.fields(RunSettings) if f.metadata.get("resume")]
    for section, schema in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(schema) if f.metadata.get("resume")]
    keys += [f"data.*.{f.name}" for f in dataclasses.fields(SplitSettings) if f.metadata.get("resume")]
    return tuple(keys)


def settings_table() -> str:
    """Every setting with its default and help, as ``kitpose show --settings`` prints it."""
    rows: list[tuple[str, str, str]] = []

    def add(schema: type, prefix: str) -> None:
        for item in dataclasses.fields(schema):
            if item.name in SECTIONS and schema is RunSettings:
                add(SECTIONS[item.name], f"{item.name}.")
                continue
            if item.default is not MISSING:
                default = _flow_yaml(item.default)
            elif item.default_factory is not MISSING:
                default = _flow_yaml(item.default_factory())
            else:
                default = ""
            rows.append((prefix + item.name, default, item.metadata.get("help", "")))

    add(RunSettings, "")
    add(SplitSettings, "data.SPLIT.")
    width = max(len(key) for key, _, _ in rows)
    shown = max(len(default) for _, default, _ in rows if len(default) < 30)
    return "\n".join(f"{key:<{width}}  {default:<{shown}}  {text}" for key, default, text in rows)


def _flow_yaml(value: Any) -> str:
    """``value`` as one line of YAML: ``null``, ``false``, ``{use: adam, lr: 0.001}``."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000, sort_keys=False).strip().removesuffix("\n...").strip()
