"""Component specs: ``{use: NAME, kind: KIND, ...params}`` entries of a recipe.

A spec names a registered component; its kind is given with ``kind:`` or inferred
when the name is registered for exactly one kind. A mapping whose values are all
specs is a *group* (``decoders: {dark: {use: dark}, com: {use: com}}``); a flow
node that calls a group fans out over its members.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kitpose.errors import ComponentError, KitposeError, RecipeError, first_line, suggestion
from kitpose.paths import name_problem
from kitpose.recipe import Recipe, as_plain
from kitpose.registry import RECIPE_KINDS, Registry, blocked_message

_RESERVED = {"use", "kind"}


@dataclass
class ComponentSpec:
    """One component of a recipe: its registered name, kind and parameters."""

    key: str
    kind: str
    name: str
    params: dict[str, Any]
    path: str
    file: str = "<recipe>"

    def factory(self, registry: Registry) -> Callable[..., Any]:
        return registry.get(self.kind, self.name).load()

    def check(self, registry: Registry, *, n_args: int = 0) -> None:
        """Check the name and parameters without building anything."""
        try:
            registry.check(self.kind, self.name, self.params, n_args=n_args)
        except KitposeError as exc:
            exc.file, exc.path = self.file, exc.path or self.path_for(exc)
            raise

    def path_for(self, exc: KitposeError) -> str:
        param = getattr(exc, "param", None)
        if param is not None:
            return f"{self.path}.{param}"
        return self.path if hasattr(exc, "param") else f"{self.path}.use"

    def build(self, registry: Registry, *args: Any) -> Any:
        """Build the component; errors name the recipe path."""
        self.check(registry, n_args=len(args))
        try:
            return self.factory(registry)(*args, **self.params)
        except KitposeError as exc:
            param = getattr(exc, "param", None)
            exc.file = exc.file or self.file
            exc.path = exc.path or (f"{self.path}.{param}" if param else self.path)
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise ComponentError(f"{self.kind} '{self.name}' rejected its parameters: {exc}",
                                 file=self.file, path=self.path) from exc
        except (MemoryError, RuntimeError) as exc:  # e.g. a width too large to allocate
            if isinstance(exc, MemoryError) or _is_allocation_failure(exc):
                raise ComponentError(f"{self.kind} '{self.name}' does not fit in memory with these "
                                     f"parameters: {first_line(exc)}", file=self.file, path=self.path,
                                     hint="make it smaller (width, channels, size)") from exc
            raise ComponentError(f"{self.kind} '{self.name}' cannot be built: {type(exc).__name__}: "
                                 f"{first_line(exc)}", file=self.file, path=self.path) from exc


def _is_allocation_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(words in text for words in ("allocate", "out of memory", "bad_alloc"))


@dataclass
class Group:
    """Several specs called together by one flow node."""

    key: str
    members: dict[str, ComponentSpec] = field(default_factory=dict)
    path: str = ""

    @property
    def kind(self) -> str | None:
        kinds = {m.kind for m in self.members.values()}
        return kinds.pop() if len(kinds) == 1 else None


def parse_spec(node: Any, path: str, registry: Registry, *, kind: str | None = None,
               file: str = "<recipe>", key: str = "") -> ComponentSpec:
    """Turn one ``{use: NAME, ...}`` mapping into a :class:`ComponentSpec`."""
    node = as_plain(node)
    if isinstance(node, str):
        node = {"use": node}
    if not isinstance(node, Mapping) or "use" not in node:
        raise RecipeError("a component needs 'use: NAME'", file=file, path=path,
                          hint="write {use: NAME, param: value}")
    name = node["use"]
    if not isinstance(name, str):
        raise RecipeError("'use' must be a registered component name", file=file, path=f"{path}.use")
    given_kind = node.get("kind", kind)
    if kind is not None and given_kind != kind:
        raise RecipeError(f"this place takes a {kind}, not a {given_kind}", file=file, path=f"{path}.kind")
    if given_kind is None:
        given_kind = infer_kind(name, registry, file=file, path=f"{path}.use")
    elif given_kind not in RECIPE_KINDS:
        raise RecipeError(f"unknown kind '{given_kind}'{suggestion(str(given_kind), RECIPE_KINDS)}",
                          file=file, path=f"{path}.kind", hint="kinds are: " + ", ".join(RECIPE_KINDS))
    params = {k: v for k, v in node.items() if k not in _RESERVED}
    for param in params:
        if not isinstance(param, str) or not param.isidentifier():
            raise RecipeError(f"invalid parameter name {param!r}", file=file, path=f"{path}.{param}")
    return ComponentSpec(key or path.rsplit(".", 1)[-1], given_kind, name, params, path, file)


def build_inner(spec: Any, kind: str, owner: str, param: str) -> Any:
    """Build a component given as a parameter of another (``multi_stage``'s ``loss``,
    ``flip_test``'s ``encoder``): ``"name"`` or ``{use: name, ...params}``, parsed as any
    recipe component is. A mistake is reported as one in the owner's ``param``."""
    from kitpose.plugins import get_registry

    if not is_spec(spec):
        error = ComponentError(f"{owner}: '{param}' must be a {kind} name or {{use: NAME, ...}}, not {spec!r:.60}",
                               hint=f"write {param}: {{use: NAME, ...}}")
        error.param = param  # type: ignore[attr-defined]
        raise error
    registry = get_registry()
    try:
        return parse_spec(spec, param, registry, kind=kind).build(registry)
    except KitposeError as exc:  # say that the mistake is inside the inner component
        cls = ComponentError if isinstance(exc, RecipeError) else type(exc)
        error = cls(f"{owner}'s {param}: {exc.message}", hint=exc.hint)
        error.param = param  # type: ignore[attr-defined]  # recipe path: <component>.<param>
        raise error from exc


def infer_kind(name: str, registry: Registry, *, file: str, path: str) -> str:
    """The kind of a registered name, or an error suggesting the nearest one."""
    entries = [e for e in registry.find(name) if e.kind in RECIPE_KINDS]
    if len(entries) == 1:
        return entries[0].kind
    if entries:
        kinds = ", ".join(e.kind for e in entries)
        raise RecipeError(f"'{name}' is registered as several kinds ({kinds})", file=file, path=path,
                          hint=f"add kind: {entries[0].kind}")
    blocker = registry.blocked_by(name)
    if blocker:
        raise ComponentError(blocked_message(name, blocker), file=file, path=path,
                             hint=f"leave out -p no:{blocker} to use it")
    every = sorted({e.name for e in registry.entries()})
    raise ComponentError(f"unknown component '{name}'{suggestion(name, every)}", file=file, path=path,
                         hint="'kitpose list' shows every registered name")


def is_spec(node: Any) -> bool:
    return isinstance(node, str) or (isinstance(node, Mapping) and "use" in node)


def parse_components(recipe: Recipe, registry: Registry, section: str = "components",
                     kind: str | None = None) -> dict[str, ComponentSpec | Group]:
    """Parse a ``{key: spec-or-group}`` section of a recipe."""
    raw = recipe.select(section, default={}) or {}
    if not isinstance(raw, Mapping):
        raise RecipeError(f"'{section}' must be a mapping of names to components",
                          file=recipe.file, path=section)
    out: dict[str, ComponentSpec | Group] = {}
    for key, node in raw.items():
        path = f"{section}.{key}"
        _check_key(key, path, recipe.file)
        if node is None:  # `key: null` removes an inherited component
            continue
        if is_spec(node):
            out[key] = parse_spec(node, path, registry, kind=kind, file=recipe.file, key=key)
        elif isinstance(node, Mapping) and node and all(is_spec(v) or v is None for v in node.values()):
            group = Group(key, path=path)
            for member, sub in node.items():
                _check_key(member, f"{path}.{member}", recipe.file)
                if sub is not None:
                    group.members[member] = parse_spec(sub, f"{path}.{member}", registry, kind=kind,
                                                       file=recipe.file, key=member)
            out[key] = group
        else:
            raise RecipeError("expected {use: NAME, ...} or a group of such entries",
                              file=recipe.file, path=path, hint="add 'use: NAME'")
    return out


def _check_key(key: Any, path: str, file: str) -> None:
    """Component keys and group member names become file names and table rows: keep them safe."""
    problem = name_problem(key)
    if problem:
        raise RecipeError(f"component key {problem}", file=file, path=path,
                          hint="rename the key, e.g. my_decoder")


# -- call signatures ---------------------------------------------------------------------------
def call_target(factory: Any, kind: str, method: str | None = None) -> Callable[..., Any] | None:
    """The function a flow node calls on a component built by ``factory`` (unbound)."""
    if not inspect.isclass(factory):
        ret = inspect.signature(factory).return_annotation if callable(factory) else None
        if inspect.isclass(ret):
            factory = ret
        else:
            return None
    if method is not None:
        return getattr(factory, method, None)
    if kind == "metric":
        return getattr(factory, "update", None)
    if kind == "augmentation":
        return getattr(factory, "merge", None)
    for attr in ("forward", "__call__"):
        fn = getattr(factory, attr, None)
        if fn is not None and attr in _defined_names(factory):
            return fn
    return None


def _defined_names(cls: type) -> set[str]:
    names: set[str] = set()
    for base in cls.__mro__:
        if base.__module__.startswith("torch.") and base.__name__ in {"Module", "Optimizer"}:
            continue
        if base is object:
            continue
        names.update(vars(base))
    return names


def declared(factory: Any, attribute: str) -> tuple[str, ...] | None:
    """A tuple a component class declares (``outputs``, ``provides``, ``flow_methods``)."""
    value = getattr(factory, attribute, None)
    if value is None or callable(value):
        return None
    return tuple(value)
