"""Flows: graphs of component calls over one dict of named tensors.

A flow is a list of nodes::

    - {call: model,    in: {image: image},  out: {heatmaps: pred}}
    - {call: decoders, in: {heatmaps: pred}, out: {keypoints: pred_hm}}
    - {call: encoder.to_image, in: {xy: pred_hm}, out: {result: pred_xy}}
    - {call: metrics,  in: {pred: pred_xy, target: keypoints, visible: visible}}

``in`` maps the component's call arguments to tensor names (a list ``[a, b]`` means
``{a: a, b: b}``); ``out`` maps its returned keys to new tensor names. Without
``out``, the keys the component declares (its ``outputs`` attribute) keep their names.
A call that returns a single value returns it as ``result``.

Nodes run in dependency order, so the list order is free. Before anything runs the
flow is checked: every input is produced by the dataset or by another node, there
are no cycles, every component exists and every ``in`` argument is a parameter of
its call. Calling a *group* fans out: every later node runs once per member
(``decoders/dark``, ``decoders/com`` ...). Metric nodes accumulate per branch.
A node calling an *augmentation* (:mod:`kitpose.augmentation`) runs the nodes its
inputs depend on again on every view of the batch, then merges what they give.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kitpose.components import ComponentSpec, Group, call_target, declared
from kitpose.errors import FlowError, KitposeError, RunError, suggestion
from kitpose.recipe import Recipe, as_plain
from kitpose.registry import Registry, fit

_NODE_KEYS = {"call", "in", "out", "name"}


@dataclass
class Node:
    """One checked call of a flow."""

    index: int
    component: str
    method: str | None
    inputs: dict[str, str]
    outputs: dict[str, str]
    path: str
    kind: str | None = None
    members: tuple[str, ...] = ()  # non-empty for a group
    spec_path: str = ""  # where the component is defined: ``components.head``
    #: for an augmentation: the nodes its inputs depend on, in order, run again per view
    upstream: tuple[Node, ...] = ()

    @property
    def is_metric(self) -> bool:
        return self.kind == "metric"

    @property
    def is_augmentation(self) -> bool:
        return self.kind == "augmentation" and self.method is None

    @property
    def forks(self) -> bool:
        return bool(self.members) and not self.is_metric

    def produces(self) -> list[str]:
        return list(self.outputs.values())


@dataclass
class Flow:
    """A validated flow, in execution order."""

    name: str
    nodes: list[Node]
    sources: frozenset[str] = field(default_factory=frozenset)
    file: str = ""  # the recipe, for errors raised while the flow runs

    @property
    def forks(self) -> bool:
        return any(n.forks for n in self.nodes)

    def upstream(self, tensors: Iterable[str]) -> list[Node]:
        """The nodes that ``tensors`` depend on, in execution order."""
        producer = {name: node for node in self.nodes for name in node.produces()}
        needed: set[int] = set()
        stack = list(tensors)
        while stack:
            node = producer.get(stack.pop())
            if node is not None and node.index not in needed:
                needed.add(node.index)
                stack.extend(node.inputs.values())
        return [n for n in self.nodes if n.index in needed]

    def produced(self) -> set[str]:
        names = set(self.sources)
        for node in self.nodes:
            names.update(node.produces())
        return names


def parse_flow(recipe: Recipe, name: str, components: Mapping[str, ComponentSpec | Group],
               registry: Registry, sources: Iterable[str]) -> Flow:
    """Read ``flows.NAME`` from the recipe and check it against components and sources."""
    base = f"flows.{name}"
    raw = recipe.select(base)
    if raw is None:
        raise FlowError(f"the recipe has no flow '{name}'", file=recipe.file, path="flows",
                        hint=f"add flows.{name}: [...]")
    if not isinstance(raw, list) or not raw:
        raise FlowError("a flow must be a non-empty list of nodes", file=recipe.file, path=base)
    sources = frozenset(sources)
    nodes = [_parse_node(recipe.file, f"{base}[{i}]", i, item, components, registry)
             for i, item in enumerate(raw)]
    flow = Flow(name, _order(nodes, sources, recipe.file), sources, recipe.file)
    for node in flow.nodes:
        if node.is_augmentation:
            node.upstream = tuple(flow.upstream(node.inputs.values()))
            _check_upstream(node, recipe.file)
    return flow


def _check_upstream(node: Node, file: str) -> None:
    """What an augmentation runs again per view must be one path: no fan-out over a group."""
    for up in node.upstream:
        if up.forks:
            raise FlowError(f"'{node.component}' would run the group '{up.component}' ({up.path}) "
                            "again on every view, which cannot fan out", file=file, path=f"{node.path}.in",
                            hint=f"augment a tensor computed before '{up.component}', and call the group "
                                 "on the merged result")


def _parse_node(file: str, path: str, index: int, item: Any, components: Mapping[str, Any],
                registry: Registry) -> Node:
    if not isinstance(item, Mapping) or "call" not in item:
        raise FlowError("a node needs 'call: COMPONENT'", file=file, path=path,
                        hint="write {call: NAME, in: {arg: tensor}, out: {key: tensor}}")
    for key in item:
        if key not in _NODE_KEYS:
            raise FlowError(f"unknown node key '{key}'{suggestion(str(key), _NODE_KEYS)}",
                            file=file, path=f"{path}.{key}", hint="node keys are: call, in, out, name")
    call = str(item["call"])
    component, _, method_name = call.partition(".")
    method = method_name or None
    if component not in components:
        raise FlowError(f"unknown component '{component}'{suggestion(component, components)}",
                        file=file, path=f"{path}.call",
                        hint="components are: " + (", ".join(components) or "none"))
    inputs = _mapping(item.get("in", {}), file, f"{path}.in")
    target = components[component]
    members = tuple(target.members) if isinstance(target, Group) else ()
    specs = list(target.members.values()) if isinstance(target, Group) else [target]
    kind = specs[0].kind if specs else None
    if isinstance(target, Group) and target.kind is None:
        raise FlowError("a group called by one node must hold one kind of component",
                        file=file, path=f"{path}.call")
    declared_outputs: tuple[str, ...] | None = None
    for spec in specs:
        factory = spec.factory(registry)
        if method:
            allowed = declared(factory, "flow_methods") or ()
            if method not in allowed:
                raise FlowError(f"{spec.kind} '{spec.name}' has no flow method '{method}'"
                                f"{suggestion(method, allowed)}", file=file, path=f"{path}.call",
                                hint="flow methods: " + (", ".join(allowed) or "none"))
        _check_arguments(factory, spec, method, inputs, file, path)
        outs = ("result",) if method else (() if spec.kind == "metric" else declared(factory, "outputs"))
        if declared_outputs is None:
            declared_outputs = outs
    if "out" in item:
        outputs = _mapping(item["out"], file, f"{path}.out")
        if declared_outputs:
            for key in outputs:
                if key not in declared_outputs:
                    raise FlowError(f"'{component}' returns no '{key}'{suggestion(key, declared_outputs)}",
                                    file=file, path=f"{path}.out.{key}",
                                    hint="it returns: " + ", ".join(declared_outputs))
    elif kind == "metric":
        outputs = {}
    elif declared_outputs:
        outputs = {k: k for k in declared_outputs}
    else:
        raise FlowError(f"'{component}' does not declare what it returns", file=file, path=path,
                        hint="name its results with out: {KEY: TENSOR}")
    return Node(index, component, method or None, inputs, outputs, path, kind, members,
                getattr(target, "path", "") or f"components.{component}")


def _mapping(value: Any, file: str, path: str) -> dict[str, str]:
    value = as_plain(value)
    if isinstance(value, list):
        value = {str(v): str(v) for v in value}
    if not isinstance(value, Mapping):
        raise FlowError("expected a mapping {argument: tensor} or a list of names", file=file, path=path)
    return {str(k): str(v) for k, v in value.items()}


def _check_arguments(factory: Any, spec: ComponentSpec, method: str | None, inputs: Mapping[str, str],
                     file: str, path: str) -> None:
    fn = call_target(factory, spec.kind, method)
    found = fit(fn, inputs, method=True) if fn is not None else None
    if found is None:
        return
    if found.unknown:
        arg, names = found.unknown[0], found.names
        raise FlowError(f"{spec.kind} '{spec.name}' takes no argument '{arg}'"
                        f"{suggestion(arg, names)}", file=file, path=f"{path}.in.{arg}",
                        hint="its arguments: " + ", ".join(names))
    if found.missing:
        arg = found.missing[0]
        raise FlowError(f"{spec.kind} '{spec.name}' needs argument '{arg}'", file=file,
                        path=f"{path}.in", hint=f"add {arg}: TENSOR_NAME")


def _order(nodes: list[Node], sources: frozenset[str], file: str) -> list[Node]:
    """Topological order (stable); errors for unknown inputs, duplicate outputs and cycles."""
    producer: dict[str, Node] = {}
    for node in nodes:
        for name in node.produces():
            if name in producer:
                raise FlowError(f"tensor '{name}' is produced twice (also by {producer[name].path})",
                                file=file, path=f"{node.path}.out", hint="give one of them another name")
            if name in sources:
                raise FlowError(f"tensor '{name}' would overwrite the dataset's '{name}'", file=file,
                                path=f"{node.path}.out", hint="map it to another name with out:")
            producer[name] = node
    known = set(sources) | set(producer)
    for node in nodes:
        for arg, name in node.inputs.items():
            if name not in known:
                raise FlowError(f"no one produces tensor '{name}'{suggestion(name, known)}", file=file,
                                path=f"{node.path}.in.{arg}",
                                hint="available: " + ", ".join(sorted(known)))
    ordered: list[Node] = []
    done: set[int] = set()
    ready = set(sources)
    while len(ordered) < len(nodes):
        progress = False
        for node in nodes:
            if node.index in done:
                continue
            if all(name in ready for name in node.inputs.values()):
                ordered.append(node)
                done.add(node.index)
                ready.update(node.produces())
                progress = True
                break
        if not progress:
            stuck = [n for n in nodes if n.index not in done]
            names = " -> ".join(f"{n.component} ({n.path})" for n in stuck)
            raise FlowError(f"the flow has a cycle: {names}", file=file, path=stuck[0].path,
                            hint="a node cannot depend on its own output")
    return ordered


# -- execution ------------------------------------------------------------------------------
MetricFactory = Callable[[str, str], Any]


class FlowRunner:
    """Execute a :class:`Flow` on batches; keeps metric accumulators per branch.

    ``objects`` maps each component key to its built object, or for a group to a
    ``{member: object}`` dict. Metric components are built per branch on first use
    through ``make_metric(component_key, member)``; a flow without metric nodes (the
    train flow, where planning refuses them) needs none.
    """

    def __init__(self, flow: Flow, objects: Mapping[str, Any],
                 make_metric: MetricFactory | None = None) -> None:
        self.flow = flow
        self.objects = objects
        self.make_metric = make_metric
        self.metrics: dict[str, dict[str, Any]] = {}

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Run the flow; returns ``{branch: tensors}`` (one branch ``""`` without fan-out)."""
        return self.run({"": dict(batch)}, self.flow.nodes)

    def run(self, branches: dict[str, dict[str, Any]], nodes: Iterable[Node]) -> dict[str, dict[str, Any]]:
        """Run ``nodes`` (a part of the flow, in order) on existing branches."""
        for node in nodes:
            labels = node.members or (None,)
            new: dict[str, dict[str, Any]] = {}
            for branch, env in branches.items():
                for member in labels:
                    if node.is_metric:
                        kwargs = {arg: env[name] for arg, name in node.inputs.items()}
                        self._guarded(node, member, kwargs,
                                      lambda: self._metric(branch, node.component, member).update(**kwargs))
                        continue
                    result = self._call(node, member, env)
                    if node.forks:
                        label = f"{branch}/{member}" if branch else str(member)
                        out_env = new.setdefault(label, dict(env))
                    else:
                        out_env = env
                    for key, name in node.outputs.items():
                        out_env[name] = result[key]
            if node.forks:
                branches = new
        return branches

    def _call(self, node: Node, member: str | None, env: Mapping[str, Any]) -> dict[str, Any]:
        """Call one (non-metric) node on the tensors of ``env``; returns what it gave, by key."""
        target = self.objects[node.component]
        obj = target[member] if member is not None else target
        if node.is_augmentation:
            return self._augment(node, member, obj, env)
        kwargs = {arg: env[name] for arg, name in node.inputs.items()}
        fn = getattr(obj, node.method) if node.method else obj
        return self._guarded(node, member, kwargs, lambda: _as_dict(fn(**kwargs)))

    def _augment(self, node: Node, member: str | None, augmentation: Any,
                 env: Mapping[str, Any]) -> dict[str, Any]:
        """Compute the node's inputs on every view of ``env`` and merge them."""
        views = self._guarded(node, member, {}, lambda: _checked_views(augmentation.views(env), env))
        per_view: dict[str, list[Any]] = {arg: [] for arg in node.inputs}
        for view in views:
            seen = dict(env)
            if view:
                seen.update(view)
                changed = set(view)
                # only what reads a replaced tensor runs again (and its outputs then replace
                # what the view may have put in their place)
                for up in node.upstream:
                    if changed.isdisjoint(up.inputs.values()):
                        continue
                    result = self._call(up, None, seen)
                    for key, name in up.outputs.items():
                        seen[name] = result[key]
                        changed.add(name)
            for arg, name in node.inputs.items():
                per_view[arg].append(seen[name])
        return self._guarded(node, member, {arg: values[0] for arg, values in per_view.items()},
                             lambda: _as_dict(augmentation.merge(**per_view)))

    def _guarded(self, node: Node, member: str | None, kwargs: Mapping[str, Any], call: Callable[[], Any]) -> Any:
        """``call()``, with any error located at ``node`` (see :meth:`_located`)."""
        try:
            return call()
        except Exception as exc:
            raise self._located(exc, node, member, kwargs) from exc

    def _located(self, exc: Exception, node: Node, member: str | None,
                 kwargs: Mapping[str, Any]) -> Exception:
        """``exc`` as one line naming the recipe, the node, the component and its inputs' shapes."""
        if getattr(exc, "flow_node", None):
            return exc  # already located by an inner flow
        who = f"{node.component}/{member}" if member is not None else node.component
        where = f"{node.spec_path}.{member}" if member is not None else node.spec_path
        call = f".{node.method}" if node.method else ""
        text = exc.message if isinstance(exc, KitposeError) else str(exc)
        text = " ".join(text.split()) or type(exc).__name__
        if len(text) > 400:
            text = text[:400] + " ..."
        shapes = "; inputs " + ", ".join(f"{arg} {_shape(value)}" for arg, value in kwargs.items()) \
            if kwargs else ""
        error = RunError(f"{who}{call} ({where}): {type(exc).__name__}: {text}{shapes}",
                         file=self.flow.file or None, path=node.path,
                         hint="check that the components' sizes agree (joints, channels, input "
                              "and output sizes)" if isinstance(exc, RuntimeError) else None)
        error.flow_node = node.path  # type: ignore[attr-defined]
        return error

    def _metric(self, branch: str, component: str, member: str | None) -> Any:
        label = member or component
        per_branch = self.metrics.setdefault(branch, {})
        if label not in per_branch:
            if self.make_metric is None:
                raise TypeError(f"FlowRunner: metric node '{component}' needs make_metric")
            per_branch[label] = self.make_metric(component, member)
        return per_branch[label]

    def compute(self) -> dict[str, dict[str, float]]:
        """``{branch: {metric: value}}`` from every metric accumulated so far."""
        return {branch: {k: float(v) for k, v in row.items()} for branch, row in self._collect("compute").items()}

    def per_joint(self) -> dict[str, dict[str, list[float]]]:
        """``{branch: {metric: [value per joint]}}`` of the metrics that have per-joint values."""
        return self._collect("per_joint")

    def per_group(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{branch: {title: {group: value}}}`` of the metrics that break their numbers down by
        a grouping of the samples (see :meth:`kitpose.metric.Metric.per_group`)."""
        return self._collect("per_group")

    def per_sample(self) -> dict[str, dict[str, Any]]:
        """``{branch: {metric: PerSample}}``: what each number is the mean of (see
        :class:`kitpose.metric.PerSample`); metrics without per-sample values are left out."""
        return self._collect("per_sample")

    def _collect(self, method: str) -> dict[str, dict[str, Any]]:
        """``{branch: {name: value}}`` merged over the branch's metrics' ``method()`` (a metric
        without that method adds nothing; ``compute`` is required)."""
        out: dict[str, dict[str, Any]] = {}
        for branch, metrics in self.metrics.items():
            row: dict[str, Any] = {}
            for metric in metrics.values():
                if method == "compute" or hasattr(metric, method):
                    row.update(getattr(metric, method)())
            out[branch or "output"] = row
        return out


def _checked_views(views: Any, env: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """An augmentation's views, refused unless each replaces tensors the batch has."""
    views = list(views) if isinstance(views, (list, tuple)) else views
    if not isinstance(views, list) or not views:
        raise ValueError(f"views() must return a non-empty list of mappings, not {views!r:.80}")
    for view in views:
        if not isinstance(view, Mapping):
            raise ValueError(f"each view must be a mapping {{tensor: new value}}, not {type(view).__name__}")
        unknown = [str(key) for key in view if key not in env]
        if unknown:
            raise ValueError(f"a view replaces '{unknown[0]}', which the flow does not hold here "
                             f"(it holds: {', '.join(sorted(map(str, env)))})")
    return views


def _shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return "[" + ", ".join(str(int(d)) for d in shape) + "]"
    return type(value).__name__


def _as_dict(result: Any) -> dict[str, Any]:
    if isinstance(result, Mapping):
        return dict(result)
    if result is None:
        return {}
    return {"result": result}
