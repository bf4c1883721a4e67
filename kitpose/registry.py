"""Per-kind tables of named components, filled by plugins.

Plugins register ``name -> "module:attribute"`` references; the module is imported
only when the component is first built (or when its summary is asked for), so that
``import kitpose`` and ``kitpose check`` stay fast. :meth:`Registry.build` checks the
parameters against the factory's signature *before* calling it, so a typo in a recipe
fails with a did-you-mean instead of a deep ``TypeError``.

Values are checked against simple annotations as well, so a factory states its rules
once, in its signature, and ``kitpose check`` enforces them without building anything:
``int`` / ``float`` / ``bool`` / ``str``, ``Literal[...]``, bounds written
``Annotated[int, Range(1, None)]``, and :class:`~kitpose.paths.RunPath` for a file the
component writes (it must stay inside the run directory); each optionally ``| None``.
Other annotations (sequences, unions of several types) are left to the factory.
"""
from __future__ import annotations

import fnmatch
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kitpose.errors import ParameterError, PluginError, UnknownComponentError, suggestion
from kitpose.paths import RunPath, path_problem

KINDS: tuple[str, ...] = (
    "dataset", "transform", "backbone", "head", "encoder", "decoder",
    "loss", "metric", "augmentation", "monitor", "optimizer", "scheduler", "format",
)

#: the kinds a recipe's components may be (a ``format`` serves ``kitpose predict`` only)
RECIPE_KINDS: tuple[str, ...] = tuple(kind for kind in KINDS if kind != "format")


def article(word: str) -> str:
    """``a`` or ``an`` before ``word`` (an encoder, a decoder)."""
    return "an" if word[:1] in "aeiou" else "a"


def plural(kind: str) -> str:
    """``decoder`` -> ``decoders``, ``loss`` -> ``losses``."""
    return kind + ("es" if kind.endswith("s") else "s")


@dataclass
class Entry:
    """One registered component: where it comes from and how to make it."""

    kind: str
    name: str
    target: str | Callable[..., Any]
    plugin: str
    dist: str = ""
    summary_text: str | None = None
    _factory: Callable[..., Any] | None = field(default=None, repr=False)

    @property
    def provider(self) -> str:
        """``plugin (distribution)``: who registered this name."""
        return f"{self.plugin} ({self.dist})" if self.dist and self.dist != self.plugin else self.plugin

    def load(self) -> Callable[..., Any]:
        """Import and return the factory (class or function); cached after the first call."""
        if self._factory is None:
            if callable(self.target):
                self._factory = self.target
            else:
                module_name, _, attr = str(self.target).partition(":")
                try:
                    obj: Any = importlib.import_module(module_name)
                    for part in attr.split(".") if attr else ():
                        obj = getattr(obj, part)
                except Exception as exc:  # report the plugin, not a raw traceback
                    raise PluginError(
                        f"{self.kind} '{self.name}' from plugin {self.provider} cannot be "
                        f"imported from '{self.target}': {type(exc).__name__}: {exc}",
                        hint="reinstall or block that plugin with -p no:" + self.plugin,
                    ) from exc
                self._factory = obj
        return self._factory

    @property
    def summary(self) -> str:
        """The given summary, else the first line of the factory's docstring."""
        if self.summary_text is not None:
            return self.summary_text
        try:
            doc = inspect.getdoc(self.load()) or ""
        except PluginError as exc:
            return f"(broken: {exc.message})"
        return doc.strip().splitlines()[0] if doc.strip() else ""


def signature_of(factory: Callable[..., Any]) -> inspect.Signature | None:
    """The signature a factory is called with, or ``None`` when it cannot be read."""
    try:
        return inspect.signature(factory, eval_str=True)
    except Exception:  # an annotation that cannot be evaluated: fall back to the strings
        try:
            return inspect.signature(factory)
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Range:
    """Bounds of a number parameter, given in its annotation: ``Annotated[int, Range(1, None)]``.

    ``check`` (and ``run``) then refuse a value outside ``[low, high]`` before anything is
    built, so a component needs no code of its own to say ``joints: 0`` is wrong.
    """

    low: float | None = None
    high: float | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of range, or None when it is inside (or not a number)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if self.low is not None and value < self.low:
            return f"must be at least {self.low:g}" if self.high is None else self._between()
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}" if self.low is None else self._between()
        return None

    def _between(self) -> str:
        return f"must be between {self.low:g} and {self.high:g}"


#: annotations whose values are checked at check time: what YAML can hold for each
_SIMPLE: dict[Any, tuple[str, Callable[[Any], bool]]] = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    str: ("a string", lambda v: isinstance(v, str)),
    dict: ("a mapping {key: value}", lambda v: isinstance(v, Mapping)),
    list: ("a list", lambda v: isinstance(v, (list, tuple))),
}


def _parameter_error(what: str, name: str, problem: str, hint: str | None = None, *,
                     message: str | None = None) -> ParameterError:
    error = ParameterError(message or f"{what}: {name} {problem}", hint=hint)
    error.param = name
    return error


def _check_value(parameter: inspect.Parameter, value: Any, what: str) -> None:
    """Check ``value`` against the parameter's annotation where it says something simple.

    Understood: ``Literal[...]``, ``int`` / ``float`` / ``bool`` / ``str``, ``dict[...]`` and
    ``list[...]`` (the container, not its items), ``RunPath``,
    ``Annotated[T, Range(low, high)]``, and any of these ``| None``. Anything else (a
    ``Sequence[int]``, a union of several types, a string annotation) is not checked.
    """
    annotation = parameter.annotation
    if annotation is parameter.empty or isinstance(annotation, str):
        return
    _check_choice(parameter, value, what)
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if value is None and type(None) in members:
        return
    members = tuple(m for m in members if m is not type(None))
    if len(members) != 1:
        return
    kind, ranges = members[0], ()
    if typing.get_origin(kind) is typing.Annotated:
        kind, *extras = typing.get_args(kind)
        ranges = tuple(e for e in extras if isinstance(e, Range))
    if typing.get_origin(kind) in (dict, list):  # dict[str, int]: a mapping (its items are not checked)
        kind = typing.get_origin(kind)
    name = parameter.name
    if kind is RunPath:
        problem = path_problem(value)
        if problem:
            raise _parameter_error(what, name, problem, "give a file name inside the run directory, "
                                   "e.g. figures/predictions.png")
        return
    if kind in _SIMPLE:
        words, fits = _SIMPLE[kind]
        if not fits(value):
            raise _parameter_error(what, name, f"must be {words}, not {value!r}")
    for bound in ranges:
        problem = bound.problem(value)
        if problem:
            raise _parameter_error(what, name, f"{problem}, not {value!r}")


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _check_choice(parameter: inspect.Parameter, value: Any, what: str) -> None:
    """A parameter annotated ``Literal[...]`` (alone or in a union) takes one of its values."""
    annotation = parameter.annotation
    options = _literal_values(annotation)
    if options is None or value in options:
        return
    if _is_union(annotation) and any(_literal_values(a) is None for a in typing.get_args(annotation)):
        return  # the union also admits other types
    choices = ", ".join(repr(o) for o in options)
    near = suggestion(value, [o for o in options if isinstance(o, str)]) if isinstance(value, str) else ""
    error = ParameterError(f"{what}: {parameter.name}={value!r} is not one of {choices}{near}")
    error.param = parameter.name
    raise error


def _literal_values(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    if _is_union(annotation):
        values = [v for a in typing.get_args(annotation) for v in (_literal_values(a) or ())]
        return tuple(values) or None
    return None


@dataclass(frozen=True)
class Fit:
    """How keyword arguments fit a callable: the one reading of a signature that the
    parameter checks, the flow checks and :mod:`kitpose.testing` all use."""

    parameters: tuple[inspect.Parameter, ...]  # those taken by keyword
    takes_any: bool                            # it has **kwargs
    unknown: tuple[str, ...]                   # given, but not taken
    missing: tuple[str, ...]                   # required, but not given

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def required(self) -> list[str]:
        return [p.name for p in self.parameters if p.default is p.empty]


def fit(fn: Callable[..., Any], given: Iterable[str] = (), *, n_args: int = 0, method: bool = False) -> Fit | None:
    """How the keyword names ``given`` fit ``fn`` (None when its signature cannot be read).

    ``n_args`` positional arguments are supplied by code (the model parameters an optimizer
    receives) and fill the first positional parameters; ``method``: ``fn`` is an unbound
    method, whose ``self`` is not an argument.
    """
    sig = signature_of(fn)
    if sig is None:
        return None
    parameters = list(sig.parameters.values())
    if method and parameters and parameters[0].name == "self":
        parameters = parameters[1:]
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    filled = {p.name for p in positional[:n_args]}
    keyword = tuple(p for p in parameters
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in filled)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    given = list(given)
    names = {p.name for p in keyword}
    unknown = () if takes_any else tuple(g for g in given if g not in names)
    missing = tuple(p.name for p in keyword if p.default is p.empty and p.name not in given)
    return Fit(keyword, takes_any, unknown, missing)


def check_parameters(factory: Callable[..., Any], params: Mapping[str, Any], *, n_args: int = 0,
                     what: str = "component") -> None:
    """Raise :class:`ParameterError` when ``params`` do not fit ``factory``'s signature.

    Values are checked against simple annotations too (see :func:`_check_value`).
    """
    found = fit(factory, params, n_args=n_args)
    if found is None:
        return
    if found.unknown:
        key, named = found.unknown[0], found.names
        raise _parameter_error(what, key, "", f"valid parameters: {', '.join(named) or 'none'}",
                               message=f"{what} has no parameter '{key}'{suggestion(key, named)}")
    for p in found.parameters:
        if p.name in params:
            _check_value(p, params[p.name], what)
    if found.missing:
        error = ParameterError(f"{what} needs parameter '{found.missing[0]}'", hint=f"add {found.missing[0]}: VALUE")
        error.param = None
        raise error


def blocked_message(name: str, plugin: str) -> str:
    """Why ``name`` is missing when the plugin that registers it is blocked."""
    return f"component '{name}' belongs to plugin '{plugin}', which -p no:{plugin} blocks"


class Registry:
    """One table of named components per kind.

    Each kind also has a shortcut method, so a plugin writes
    ``registry.decoder("dark", "pkg.dark:DarkDecoder")``.
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._staging: list[Entry] | None = None
        self._provider: tuple[str, str] = ("user", "")
        #: the blocked plugin (``-p no:NAME``) that would register a name, or None; the plugin
        #: manager sets it so a recipe naming a blocked component is told why it is missing
        self.blocked_by: Callable[[str], str | None] = lambda name: None

    # -- registration -------------------------------------------------------------
    def register(self, kind: str, name: str, target: str | Callable[..., Any], *,
                 summary: str | None = None) -> None:
        """Register ``name`` for ``kind``; ``target`` is ``"module:attr"`` or a callable."""
        if kind not in self._tables:
            raise PluginError(f"unknown component kind '{kind}'{suggestion(kind, KINDS)}",
                              hint="kinds are: " + ", ".join(KINDS))
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise PluginError(f"invalid {kind} name {name!r}",
                              hint="use letters, digits, '_' and '-'")
        if isinstance(target, str) and ":" not in target:
            raise PluginError(f"{kind} '{name}': target {target!r} is not 'module:attribute'")
        plugin, dist = self._provider
        entry = Entry(kind, name, target, plugin, dist, summary)
        if self._staging is not None:
            self._staging.append(entry)
        else:
            self._commit([entry])

    def _commit(self, entries: list[Entry]) -> None:
        seen: dict[tuple[str, str], Entry] = {}
        for entry in entries:
            key = (entry.kind, entry.name)
            other = self._tables[entry.kind].get(entry.name) or seen.get(key)
            if other is not None:
                raise PluginError(
                    f"{entry.kind} '{entry.name}' is registered twice: by {other.provider} "
                    f"and by {entry.provider}",
                    hint=f"rename one, or block one with -p no:{entry.plugin}")
            seen[key] = entry
        for entry in entries:
            self._tables[entry.kind][entry.name] = entry

    @contextmanager
    def providing(self, plugin: str, dist: str = "") -> Iterator[None]:
        """Attribute registrations to ``plugin``; keep all of them or, on error, none."""
        previous, self._provider, self._staging = self._provider, (plugin, dist), []
        try:
            yield
            self._commit(self._staging)
        finally:
            self._provider, self._staging = previous, None

    def unregister(self, kind: str, name: str) -> None:
        """Remove a name (tests and interactive use)."""
        self._tables[kind].pop(name, None)

    # -- look-up ------------------------------------------------------------------
    def _table(self, kind: str) -> dict[str, Entry]:
        if kind not in self._tables:
            raise UnknownComponentError(f"unknown component kind '{kind}'{suggestion(kind, KINDS)}",
                                        hint="kinds are: " + ", ".join(KINDS))
        return self._tables[kind]

    def get(self, kind: str, name: str) -> Entry:
        """The entry for ``name``, or an error listing what exists."""
        table = self._table(kind)
        if name in table:
            return table[name]
        elsewhere = [k for k in KINDS if name in self._tables[k]]
        blocker = None if elsewhere else self.blocked_by(name)
        if blocker:
            raise UnknownComponentError(blocked_message(name, blocker), hint=f"leave out -p no:{blocker} to use it")
        if elsewhere:
            hint = f"'{name}' is {article(elsewhere[0])} {elsewhere[0]}, not {article(kind)} {kind}"
        else:
            listing = ", ".join(f"{n} [{e.plugin}]" for n, e in sorted(table.items())) or "none"
            hint = f"available {plural(kind)}: {listing}"
        raise UnknownComponentError(f"unknown {kind} '{name}'{suggestion(name, table)}", hint=hint)

    def find(self, name: str) -> list[Entry]:
        """Every entry called ``name``, whatever its kind."""
        return [t[name] for t in self._tables.values() if name in t]

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        return sorted(self._table(kind))

    def entries(self, kind: str | None = None, pattern: str | None = None) -> list[Entry]:
        """Entries of one kind (or all), optionally filtered by a glob on the name."""
        kinds = [kind] if kind else list(KINDS)
        out: list[Entry] = []
        for k in kinds:
            out.extend(e for n, e in sorted(self._table(k).items())
                       if pattern is None or fnmatch.fnmatchcase(n, pattern))
        return out

    # -- building -----------------------------------------------------------------
    def check(self, kind: str, name: str, params: Mapping[str, Any] | None = None, *,
              n_args: int = 0) -> Entry:
        """Resolve ``name`` and check ``params`` against its factory without building it."""
        entry = self.get(kind, name)
        check_parameters(entry.load(), dict(params or {}), n_args=n_args, what=f"{kind} '{name}'")
        return entry

    def build(self, kind: str, name: str, /, *args: Any, **params: Any) -> Any:
        """Build component ``name`` of ``kind``; ``args`` come from code, ``params`` from users."""
        entry = self.check(kind, name, params, n_args=len(args))
        return entry.load()(*args, **params)


def _add_kind_shortcuts() -> None:
    def shortcut(kind: str) -> Callable[..., None]:
        def register_kind(self: Registry, name: str, target: str | Callable[..., Any], *,
                          summary: str | None = None) -> None:
            self.register(kind, name, target, summary=summary)
        register_kind.__name__ = kind
        register_kind.__doc__ = f"Register a {kind}: ``registry.{kind}(name, 'module:attr')``."
        return register_kind

    for kind in KINDS:
        setattr(Registry, kind, shortcut(kind))


_add_kind_shortcuts()
