"""A recipe with every setting spelled out: what ``kitpose show`` prints.

The resolved recipe, plus what a run takes without the recipe saying it: each component's
parameters at their defaults (read from its signature), the monitors every run has, and
each data split's loader settings. ``vars`` are left out: their values are already where
the recipe used them. The optimizer and scheduler keep what the recipe gives (their other
defaults are torch's own, and differ between its versions).
"""
from __future__ import annotations

import inspect
import re
from typing import Any

from kitpose.components import ComponentSpec
from kitpose.plan import Plan, component_specs

_NOT_SHOWN = object()


def _plain(value: Any) -> Any:
    """``value`` as YAML can write it, or ``_NOT_SHOWN`` (an object, a dtype ...)."""
    for kind in (bool, int, float, str):  # subclasses (a path type, an enum) as their base type
        if isinstance(value, kind):
            return kind(value)
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        return _NOT_SHOWN if any(v is _NOT_SHOWN for v in items) else items
    if isinstance(value, dict):
        items = {k: _plain(v) for k, v in value.items()}
        return _NOT_SHOWN if any(v is _NOT_SHOWN for v in items.values()) else items
    return _NOT_SHOWN


def parameter_defaults(factory: Any) -> dict[str, Any]:
    """The keyword parameters of a component's factory that have defaults, as plain values."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}
    out = {}
    for name, param in signature.parameters.items():
        if param.default is inspect.Parameter.empty or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        value = _plain(param.default)
        if value is not _NOT_SHOWN:
            out[name] = value
    return out


def _node(config: dict[str, Any], path: str) -> dict[str, Any]:
    """The mapping at a recipe path such as ``data.train.transforms[0]``, made if missing;
    a component written as a bare name becomes ``{use: NAME}``."""
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    node: Any = config
    for i, part in enumerate(parts):
        holder, node = node, node[part] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, str) and i == len(parts) - 1:
            node = holder[part] = {"use": node}
    return node


def with_defaults(plan: Plan) -> dict[str, Any]:
    """The plan's recipe, resolved, with every default it runs with written in."""
    config = plan.recipe.resolved()
    config.pop("vars", None)  # resolved into the values they fed: changing them here would change nothing
    specs: list[ComponentSpec] = [*component_specs(plan.components), *plan.monitors.values()]
    for split in plan.splits.values():
        specs += [split.dataset, *split.transforms]
        loader = _node(config, f"data.{split.split}")
        for name in ("batch_size", "shuffle", "workers", "drop_last", "limit"):
            if loader.get(name) is None:
                loader[name] = getattr(split, name)
    # the optimizer's and scheduler's own defaults are torch's, and differ between its versions
    for spec in specs:
        node = _node(config, spec.path)
        node.setdefault("use", spec.name)  # a monitor every run has is not in the recipe at all
        for name, value in parameter_defaults(spec.factory(plan.registry)).items():
            node.setdefault(name, value)
    return config
