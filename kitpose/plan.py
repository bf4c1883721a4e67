"""A checked plan of a run: everything in a recipe resolved and validated, nothing built.

``kitpose check`` stops here; ``kitpose run`` builds from the plan. Checking reads
component classes (to see their signatures and declared outputs) but builds no
dataset or model.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitpose.components import ComponentSpec, Group, parse_components, parse_spec
from kitpose.data import SPLITS, SplitSpec, parse_split, split_sources
from kitpose.errors import RecipeError, suggestion
from kitpose.flow import Flow, parse_flow
from kitpose.plugins import get_registry
from kitpose.recipe import Recipe, load_recipe
from kitpose.registry import Registry
from kitpose.settings import SECTIONS, RunSettings, check_section, checked_fields, defaults, unknown_key

#: monitors every run has unless its recipe says ``NAME: null`` (those that are registered)
DEFAULT_MONITORS = {"console": {"use": "console"}, "jsonl": {"use": "jsonl"}, "figures": {"use": "figures"}}


@dataclass
class Plan:
    """What a recipe asks for, checked."""

    recipe: Recipe
    registry: Registry
    components: dict[str, ComponentSpec | Group]
    monitors: dict[str, ComponentSpec]
    splits: dict[str, SplitSpec]
    flows: dict[str, Flow]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    optimizer: ComponentSpec | None = None
    scheduler: ComponentSpec | None = None

    def summary(self) -> str:
        flows = ", ".join(self.flows) or "none"
        return (f"{len(self.components)} components, {len(self.splits)} splits, flows: {flows}")

    def flow_for(self, stage: str) -> Flow | None:
        """The flow a stage runs: ``val`` falls back to the ``test`` flow."""
        if stage == "val" and "val" not in self.flows:
            return self.flows.get("test")
        return self.flows.get(stage)


def _mapping_at(recipe: Recipe, key: str, example: str) -> Mapping[str, Any]:
    """The mapping at a top-level ``key`` (empty when absent); a list or value there is an error."""
    value = recipe.select(key, default={}) or {}
    if not isinstance(value, Mapping):
        raise RecipeError(f"'{key}' must be a mapping, not a {type(value).__name__}", file=recipe.file,
                          path=key, hint=f"write {example}")
    return value


def section(recipe: Recipe, name: str) -> dict[str, Any]:
    """A train/val/test section with the schema's defaults filled in; unknown keys are errors."""
    raw = recipe.select(name, default={}) or {}
    if not isinstance(raw, Mapping):
        raise RecipeError(f"'{name}' must be a mapping", file=recipe.file, path=name)
    unknown_key(raw, SECTIONS[name], file=recipe.file, prefix=f"{name}.")
    return {**defaults(SECTIONS[name]), **raw}


#: kinds whose components are cheap to build and touch nothing outside the process, so
#: ``check`` builds (and drops) them to have their parameter values checked too
VALUE_CHECKED_KINDS = frozenset({"encoder", "decoder", "loss", "metric", "transform", "augmentation"})


def check_recipe(path: str, overrides: Iterable[str] = (), *, registry: Registry | None = None) -> Plan:
    """Load and validate a recipe into a :class:`Plan` (builds nothing heavy).

    Beyond names and signatures, the components of :data:`VALUE_CHECKED_KINDS` are built
    once, so a value a component refuses (an even blur kernel) is reported here as well.
    """
    return check_loaded(load_recipe(path, overrides), registry=registry)


def check_loaded(recipe: Recipe, *, registry: Registry | None = None) -> Plan:
    """:func:`check_recipe` for a recipe already loaded (a resumed run's own)."""
    plan = plan_recipe(recipe, registry=registry)
    light = [spec for spec in component_specs(plan.components) if spec.kind in VALUE_CHECKED_KINDS]
    light += [t for split in plan.splits.values() for t in split.transforms]
    built = {id(spec): spec.build(plan.registry) for spec in light}
    _check_selection(plan, lambda spec: built.get(id(spec)))
    _check_optimizer(plan)
    _check_data_files(plan)
    return plan


def _check_data_files(plan: Plan) -> None:
    """The files and folders a dataset names in its ``paths`` (``{param: what it is}``) exist,
    so a missing annotation file is reported by ``check`` and before a run makes its folder,
    naming the recipe key and, where the recipe has one, the ``data.root=`` override."""
    root = plan.recipe.select("data.root", default=None)
    for split in plan.splits.values():
        spec = split.dataset
        paths = getattr(spec.factory(plan.registry), "paths", None)
        if not isinstance(paths, Mapping):
            continue
        for param, what in paths.items():
            value = spec.params.get(param)
            if isinstance(value, str) and value and not Path(value).exists():
                where = "" if Path(value).is_absolute() else f" (relative to the current folder, {Path.cwd()})"
                under_root = isinstance(root, str) and root and Path(value).parts[:len(Path(root).parts)] \
                    == Path(root).parts
                hint = (f"point data.root at the dataset (now {root}): data.root=/path/to/it" if under_root
                        else f"check {spec.path}.{param}")
                raise RecipeError(f"{what} not found: {value}{where}", file=plan.recipe.file,
                                  path=f"{spec.path}.{param}", hint=hint)


def _check_optimizer(plan: Plan) -> None:
    """Build the optimizer (and scheduler) on one dummy parameter: torch checks ``lr`` and
    the other values, so ``lr: -1`` fails here rather than after the model is built."""
    if plan.optimizer is None:
        return
    import torch

    optimizer = plan.optimizer.build(plan.registry, [torch.nn.Parameter(torch.zeros(1))])
    if plan.scheduler is not None:
        plan.scheduler.build(plan.registry, optimizer)


def branch_labels(flow: Flow) -> dict[str, list[tuple[str, str | None]]]:
    """``{branch: [(metric component, member), ...]}``: the branches a val/test flow scores
    (as the results name them: ``output`` without fan-out) and the metrics scored on each."""
    labels = [""]
    scored: dict[str, list[tuple[str, str | None]]] = {}
    for node in flow.nodes:
        if node.is_metric:
            for label in labels:
                scored.setdefault(label or "output", []).extend(
                    (node.component, member) for member in (node.members or (None,)))
        elif node.forks:
            labels = [f"{label}/{m}" if label else m for label in labels for m in node.members]
    return scored


def _check_selection(plan: Plan, instance: Any) -> None:
    """``val.branch`` and ``val.metric`` name a branch and a value the val flow produces.

    ``instance(spec)`` is the built metric (or None); a metric declares its value names
    with ``output_names()``; one that declares nothing is not checked.
    """
    flow = plan.flows.get("val")
    val = plan.settings["val"]
    if flow is None or not (val["metric"] or val["branch"]):
        return
    file = plan.recipe.file
    scored = branch_labels(flow)
    if not scored:
        key = "val.metric" if val["metric"] else "val.branch"
        raise RecipeError("the validation flow scores no metric", file=file, path=key,
                          hint="call a metric in flows.val (or flows.test), or remove " + key)
    branch = val["branch"] or next(iter(scored))
    if branch not in scored:
        raise RecipeError(f"'{branch}' is not a branch of the validation flow"
                          f"{suggestion(branch, scored)}", file=file, path="val.branch",
                          hint="branches: " + ", ".join(scored))
    if not val["metric"]:
        return
    names: list[str] = []
    for component, member in scored[branch]:
        item = plan.components[component]
        spec = item.members[member] if isinstance(item, Group) and member else item
        declared_names = _metric_names(instance(spec)) if isinstance(spec, ComponentSpec) else None
        if declared_names is None:
            return  # a metric that does not say what it reports: nothing to check against
        names.extend(declared_names)
    if val["metric"] not in names:
        raise RecipeError(f"'{val['metric']}' is not a value the validation flow reports"
                          f"{suggestion(val['metric'], names)}", file=file, path="val.metric",
                          hint="values: " + (", ".join(names) or "none"))


def _metric_names(metric: Any) -> tuple[str, ...] | None:
    method = getattr(metric, "output_names", None)
    if metric is None or not callable(method):
        return None
    names = method()
    return None if names is None else tuple(str(n) for n in names)


def plan_recipe(recipe: Recipe, *, registry: Registry | None = None) -> Plan:
    registry = registry or get_registry()
    recipe.resolved()  # interpolation errors surface here, with their path
    components = parse_components(recipe, registry)
    for spec in component_specs(components):
        spec.check(registry)
    # the defaults, then the recipe's own monitors; `console: null` switches a default off
    available = set(registry.names("monitor"))
    monitors = {k: parse_spec(v, f"monitors.{k}", registry, kind="monitor", file=recipe.file, key=k)
                for k, v in DEFAULT_MONITORS.items() if v["use"] in available}
    raw_monitors = recipe.select("monitors", default=None) or {}
    for key, item in parse_components(recipe, registry, "monitors", kind="monitor").items():
        if isinstance(item, Group):
            raise RecipeError("monitors cannot be grouped", file=recipe.file, path=f"monitors.{key}")
        monitors[key] = item
    for key, value in raw_monitors.items():
        if value is None:
            monitors.pop(key, None)
    for spec in monitors.values():
        spec.check(registry)

    settings = {name: section(recipe, name) for name in SECTIONS}
    check_section({item.name: recipe.select(item.name) for item in checked_fields(RunSettings)}, RunSettings,
                  file=recipe.file)
    for name, values in settings.items():
        check_section(values, SECTIONS[name], file=recipe.file, prefix=f"{name}.")
    splits = {}
    data = _mapping_at(recipe, "data", "data: {train: {dataset: {use: NAME}}, ...}")
    for key in data:
        if key == "root":  # where the data lives; recipes interpolate ${data.root}
            continue
        if key not in SPLITS:
            raise RecipeError(f"unknown split '{key}'{suggestion(str(key), SPLITS)}", file=recipe.file,
                              path=f"data.{key}", hint="splits are: " + ", ".join(SPLITS))
        splits[key] = parse_split(recipe, registry, key)

    raw_flows = _mapping_at(recipe, "flows", "flows: {train: [...], test: [...]}")
    for key in raw_flows:
        if key not in SPLITS:
            raise RecipeError(f"unknown flow '{key}'{suggestion(str(key), SPLITS)}", file=recipe.file,
                              path=f"flows.{key}", hint="flows are: train, val, test")
    flows: dict[str, Flow] = {}
    for stage in SPLITS:
        if stage not in raw_flows:
            continue
        data_split = splits.get(stage)
        if data_split is None:
            raise RecipeError(f"flows.{stage} has no data", file=recipe.file, path=f"data.{stage}",
                              hint=f"add data.{stage}, or remove flows.{stage}")
        flows[stage] = parse_flow(recipe, stage, components, registry, split_sources(data_split, registry))
    if "val" in splits and "val" not in flows:
        if "test" not in flows:
            raise RecipeError("data.val has no flow", file=recipe.file, path="flows",
                              hint="add flows.val (or flows.test, which validation then uses)")
        flows["val"] = parse_flow(recipe, "test", components, registry, split_sources(splits["val"], registry))
    for node in flows["train"].nodes if "train" in flows else ():
        if node.is_metric:
            raise RecipeError("metrics are not scored while training", file=recipe.file, path=node.path,
                              hint="call metrics in flows.val or flows.test")
    if "train" in flows and flows["train"].forks:
        raise RecipeError("a train flow cannot fan out over a group", file=recipe.file, path="flows.train",
                          hint="call single components in flows.train; groups belong in val/test flows")
    if "train" in flows:
        objective = settings["train"]["objective"]
        terms = [objective] if isinstance(objective, str) else list(objective or {})
        if not terms:
            raise RecipeError("train.objective is empty", file=recipe.file, path="train.objective",
                              hint="name the loss tensor, or map several to weights {loss_a: 1.0, loss_b: 0.5}")
        for term in terms:
            if term not in flows["train"].produced():
                raise RecipeError(f"the train flow produces no '{term}' to minimise", file=recipe.file,
                                  path="train.objective", hint="call a loss in flows.train or set train.objective")

    optimizer = scheduler = None
    if "train" in flows:
        optimizer = parse_spec(settings["train"]["optimizer"], "train.optimizer", registry,
                               kind="optimizer", file=recipe.file)
        optimizer.check(registry, n_args=1)
        if settings["train"]["scheduler"]:
            scheduler = parse_spec(settings["train"]["scheduler"], "train.scheduler", registry,
                                   kind="scheduler", file=recipe.file)
            scheduler.check(registry, n_args=1)
    _check_checkpoint(recipe, settings["test"], flows)
    return Plan(recipe, registry, components, monitors, splits, flows, settings, optimizer, scheduler)


def _check_checkpoint(recipe: Recipe, test: Mapping[str, Any], flows: Mapping[str, Flow]) -> None:
    """A ``test.checkpoint`` other than best/last is a file that must exist now, not after training."""
    which = test["checkpoint"]
    if "test" not in flows or which in (None, "best", "last"):
        return
    if not Path(which).is_file():
        raise RecipeError(f"'{which}' is not a file", file=recipe.file,
                          path="test.checkpoint",
                          hint="give best, last, or the path of a checkpoint (relative to the current folder)")


def component_specs(components: Mapping[str, ComponentSpec | Group]) -> list[ComponentSpec]:
    """Every component spec of a ``components`` section, group members included."""
    out: list[ComponentSpec] = []
    for item in components.values():
        out.extend(item.members.values() if isinstance(item, Group) else [item])
    return out
