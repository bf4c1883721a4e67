"""Recipes: YAML files read with omegaconf, merged through ``extends``, overridden
from the command line, checked against the schema and resolved.

A recipe names registered components only. It cannot import or evaluate code:
``_target_`` keys are refused and interpolations may use only the resolvers in
:data:`ALLOWED_RESOLVERS`.
"""
from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf import grammar_parser
from omegaconf.errors import GrammarParseError, OmegaConfBaseException
from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser

from kitpose.errors import OverrideError, RecipeError, suggestion
from kitpose.settings import RETIRED, RunSettings, defaults, help_texts

SCHEMA_VERSION = 1

#: Resolvers a recipe may use in ``${...}`` interpolations. None of them runs code.
ALLOWED_RESOLVERS = frozenset({"oc.env", "oc.select", "oc.dict.keys", "oc.dict.values"})

#: Most nodes that aliases (``*name``) may add to one YAML document. A recipe that reuses a
#: few anchored mappings stays far below; a "billion laughs" alias bomb is refused at once,
#: before omegaconf copies every expansion.
MAX_ALIAS_NODES = 10_000


class YamlRefused(yaml.MarkedYAMLError):
    """YAML that parses but is refused: an alias bomb, a recursive alias, a duplicate key."""

    def __init__(self, problem: str, mark: Any, hint: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loader that also reads ``2e-3`` and ``1e5`` as floats (as YAML 1.2 does).

    It refuses what a safe loader lets through but a recipe never needs: aliases that expand
    to more than :data:`MAX_ALIAS_NODES` nodes (an alias bomb takes minutes and gigabytes in
    omegaconf), an alias inside its own anchor (a recursive structure) and a key written twice
    in one mapping (YAML would silently keep the last).
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}
        self._alias_nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self.anchors.get(event.anchor)
            if event.anchor in self._open_anchors:
                raise YamlRefused(f"alias *{event.anchor} is inside its own anchor &{event.anchor}",
                                  event.start_mark, "a recipe cannot hold a recursive structure")
            if node is not None:
                self._alias_nodes += self._size(node)
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise YamlRefused(f"aliases expand to more than {MAX_ALIAS_NODES} values "
                                      f"(at *{event.anchor})", event.start_mark,
                                      "an alias bomb? write the values out, or use ${...} interpolation")
            return super().compose_node(parent, index)
        anchor = event.anchor if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)) else None
        if anchor is None:
            return super().compose_node(parent, index)
        self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_anchors.discard(anchor)

    def _size(self, node: yaml.Node) -> int:
        """How many values ``node`` stands for once every alias in it is expanded."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return size

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` keys are merged underneath: overriding them is their use
                key = self.construct_object(key_node, deep=False)
                if isinstance(key, Hashable):
                    if key in seen:
                        raise YamlRefused(f"duplicate key '{key}' in one mapping", key_node.start_mark,
                                          "write each key once (YAML would silently keep only the last)")
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """Parse YAML safely: no tags that build objects, no alias bombs, no duplicate keys
    (:class:`YamlRefused`, a :class:`yaml.YAMLError` with a line, for the last two)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


_INTERPOLATION_HINT = r"write ${key.path} or ${resolver:args}, and \${ for a literal ${"
_FORBIDDEN_KEYS = {"_target_", "_call_", "_partial_", "_args_"}


@dataclass
class Recipe:
    """A merged, overridden, validated recipe and where it came from."""

    config: DictConfig
    file: str = "<recipe>"
    sources: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or Path(self.file).stem)

    def given(self) -> str:
        """The merged recipe with overrides applied, interpolations kept, as YAML."""
        return OmegaConf.to_yaml(self.config)

    def resolved(self) -> dict[str, Any]:
        """A plain ``dict`` with every interpolation resolved."""
        try:
            return OmegaConf.to_container(self.config, resolve=True)  # type: ignore[return-value]
        except OmegaConfBaseException as exc:
            raise RecipeError(_omegaconf_message(exc), file=self.file,
                              path=_full_key(exc)) from exc

    def resolved_yaml(self) -> str:
        return yaml.safe_dump(self.resolved(), sort_keys=False)

    def select(self, path: str, default: Any = None) -> Any:
        """The value at a dotted path, resolved, or ``default``."""
        value = OmegaConf.select(self.config, path, default=default)
        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
        return value


# -- loading ----------------------------------------------------------------------------
def read_yaml(path: Path) -> DictConfig:
    """Read one YAML file as a mapping, with errors that name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("file not found", file=str(path),
                          hint="check the path (relative paths start from the current folder)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read: {exc}", file=str(path)) from None
    try:
        data = parse_yaml(text)
    except YamlRefused as exc:
        raise RecipeError(f"refused YAML: {exc.problem}", file=_at_mark(path, exc), hint=exc.hint) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"invalid YAML: {problem}", file=_at_mark(path, exc),
                          hint="fix the indentation or quoting on that line") from None
    except RecursionError:
        raise RecipeError("invalid YAML: nested too deeply", file=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe must be a mapping of keys, not a {type(data).__name__}",
                          file=str(path))
    try:
        config = OmegaConf.create(data)
    except GrammarParseError as exc:
        raise RecipeError(f"invalid interpolation: {_omegaconf_message(exc)}", file=str(path),
                          path=_full_key(exc), hint=_INTERPOLATION_HINT) from None
    except OmegaConfBaseException as exc:
        raise RecipeError(_omegaconf_message(exc), file=str(path), path=_full_key(exc)) from None
    _check_safety(config, "", str(path))  # each file by its own name, before anything resolves
    _migrate(config, str(path))
    return config


def file_section(config: DictConfig, key: str) -> DictConfig | None:
    """The mapping at top-level ``key`` of one recipe file, for ``kitpose_migrate_recipe``
    hooks: None when absent, null, or an interpolation (only the merged recipe resolves it)."""
    if key not in config or OmegaConf.is_interpolation(config, key):
        return None
    node = config._get_node(key)
    return node if isinstance(node, DictConfig) and not node._is_none() else None


def _migrate(config: DictConfig, file: str) -> None:
    """Let plugins move settings of older recipe versions (``kitpose_migrate_recipe``), then
    drop the :data:`~kitpose.settings.RETIRED` ones left."""
    from kitpose.plugins import get_plugin_manager

    get_plugin_manager().call_each("kitpose_migrate_recipe", config=config, file=file)
    for key in RETIRED:
        name, _, leaf = key.rpartition(".")
        section = file_section(config, name)
        if section is not None and leaf in section:
            del section[leaf]
            if not section:
                del config[name]


def _at_mark(path: Path, exc: yaml.YAMLError) -> str:
    """``FILE:LINE:COLUMN`` of a YAML error, or ``FILE`` when it has no position."""
    mark = getattr(exc, "problem_mark", None)
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)


def find_base(name: str, including: Path, search_dirs: Sequence[Path]) -> Path:
    """Locate an ``extends`` entry: next to the including file, then in ``search_dirs``."""
    candidate = Path(name).expanduser()
    if candidate.is_absolute():
        if candidate.is_file():
            return candidate
    else:
        for folder in [including.parent, *search_dirs]:
            if (folder / candidate).is_file():
                return folder / candidate
    searched = ", ".join(str(p) for p in [including.parent, *search_dirs])
    raise RecipeError(f"base recipe '{name}' not found", file=str(including),
                      path="extends", hint=f"searched {searched}")


def _load_merged(path: Path, search_dirs: Sequence[Path], chain: tuple[Path, ...],
                 sources: list[str]) -> DictConfig:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain, path))
        raise RecipeError(f"extends forms a cycle: {cycle}", file=str(chain[-1]), path="extends")
    own = read_yaml(path)
    sources.append(str(path))
    bases = own.pop("extends", None) if "extends" in own else None
    if bases is None:
        bases = []
    elif isinstance(bases, str):
        bases = [bases]
    elif not isinstance(bases, (list, ListConfig)):
        raise RecipeError("extends must be a file name or a list of them", file=str(path), path="extends")
    merged = OmegaConf.create({})
    for base in bases:
        base_path = find_base(str(base), path, search_dirs)
        merged = merge_layers(merged, _load_merged(base_path, search_dirs, (*chain, path), sources))
    return merge_layers(merged, own)


def merge_layers(base: DictConfig, top: DictConfig) -> DictConfig:
    """``top`` over ``base``: mappings merge key by key and lists replace lists (a recipe's
    flow is never appended to a base's), except that a mapping naming another component
    (a different ``use``) replaces the base's whole, so no parameter of one component leaks
    into another (a Gaussian's ``sigma`` into a one-hot encoder, Adam's ``betas`` into SGD).
    """
    plain_top = OmegaConf.to_container(top, resolve=False)
    kept = _without_replaced(OmegaConf.to_container(base, resolve=False), plain_top)
    return OmegaConf.merge(OmegaConf.create(kept), top)  # type: ignore[return-value]


def _without_replaced(base: Any, top: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(top, dict):
        return base
    kept = {}
    for key, value in base.items():
        if key not in top:
            kept[key] = value
            continue
        other = top[key]
        if isinstance(value, dict) and isinstance(other, dict) and "use" in other \
                and other["use"] != value.get("use"):
            continue  # top names another component: its mapping replaces this one whole
        kept[key] = _without_replaced(value, other)
    return kept


def load_recipe(path: str | Path, overrides: Iterable[str] = (), *,
                search_dirs: Sequence[str | Path] | None = None) -> Recipe:
    """Load ``path``, merge its ``extends`` chain, apply ``key=value`` overrides, validate."""
    path = Path(path)
    if search_dirs is None:
        search_dirs = recipe_search_dirs()
    dirs = [Path(d) for d in search_dirs]
    if not path.is_file() and not path.is_absolute():
        for folder in dirs:  # `kitpose run hrnet_dark.yaml` finds a shipped recipe
            if (folder / path).is_file():
                path = folder / path
                break
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.yaml"))
        raise RecipeError("a folder, not a recipe", file=str(path),
                          hint=f"give a .yaml recipe in it, e.g. {path / found[0]}" + (
                              f" ({len(found)} there: {', '.join(found[:4])}{', ...' if len(found) > 4 else ''})"
                              if len(found) > 1 else "") if found else "give the path to a .yaml recipe")
    if not path.is_file():
        raise RecipeError("recipe not found", file=str(path),
                          hint="give the path to a .yaml recipe, e.g. recipes/hrnet_dark.yaml")
    sources: list[str] = []
    own = _load_merged(path, dirs, (), sources)
    config = merge_layers(OmegaConf.create(defaults()), own)
    recipe = Recipe(config, file=str(path), sources=sources, overrides=list(overrides))
    apply_overrides(recipe, recipe.overrides)
    validate(recipe)
    return recipe


def recipe_search_dirs() -> list[Path]:
    """Folders plugins offer for ``extends`` look-ups (see ``kitpose_recipe_dirs``)."""
    from kitpose.plugins import get_plugin_manager

    dirs: list[Path] = []
    for result in get_plugin_manager().call_each("kitpose_recipe_dirs"):
        dirs.extend(Path(p) for p in result)
    return dirs


# -- overrides -------------------------------------------------------------------------
def apply_overrides(recipe: Recipe, overrides: Iterable[str]) -> None:
    """Apply ``key=value`` (existing key), ``+key=value`` (new key) and ``~key`` (delete)."""
    config = recipe.config
    for item in overrides:
        text = item.strip()
        if text.startswith("~"):
            key = text[1:]
            _require_key(recipe, key, item)
            parent_key, _, leaf = key.rpartition(".")
            parent = OmegaConf.select(config, parent_key) if parent_key else config
            if isinstance(parent, DictConfig):
                del parent[leaf]
            continue
        if "=" not in text:
            raise OverrideError(f"override '{mask_passwords(item)}' is not key=value", file=recipe.file,
                                hint="write e.g. train.epochs=5, +new.key=1 or ~key")
        key, _, raw = text.partition("=")
        key = key.strip()
        add = key.startswith("+")
        key = key.lstrip("+")
        if not key:
            raise OverrideError(f"override '{mask_passwords(item)}' has no key", file=recipe.file)
        if not add:
            _require_key(recipe, key, item)
        try:
            value = parse_yaml(raw) if raw.strip() else ""
        except YamlRefused as exc:
            raise OverrideError(f"override '{mask_passwords(item)}': refused YAML: {exc.problem}",
                                file=recipe.file, path=key, hint=exc.hint) from None
        except (yaml.YAMLError, RecursionError):
            value = raw
        _check_override(value, key, item, recipe.file)
        try:
            OmegaConf.update(config, key, value, merge=False, force_add=True)
        except OmegaConfBaseException as exc:
            raise OverrideError(f"cannot set '{key}': {_omegaconf_message(exc)}", file=recipe.file,
                                path=key) from None


def _check_override(value: Any, key: str, item: str, file: str) -> None:
    """Check a parsed override value before it is set (setting or selecting can resolve it)."""
    node: Any = value
    if isinstance(value, (dict, list)):
        try:
            node = OmegaConf.create({"value": value})._get_node("value")
        except OmegaConfBaseException:
            return  # not a config value at all: OmegaConf.update says so with the key
    _check_safety(node, key, file, what=f"override '{mask_passwords(item)}': ", error=OverrideError)


def _require_key(recipe: Recipe, key: str, item: str) -> None:
    missing = object()
    try:
        value = OmegaConf.select(recipe.config, key, default=missing, throw_on_missing=False)
    except OmegaConfBaseException:
        value = missing
    if value is missing:
        node: Any = recipe.config
        parts = key.replace("[", ".[").split(".")
        leaf, keys = parts[-1], []
        for part in parts:  # the first segment that does not exist gets the suggestion
            if not isinstance(node, DictConfig) or part not in node:
                leaf, keys = part, list(node.keys()) if isinstance(node, DictConfig) else []
                break
            node = node[part]
        raise OverrideError(f"override '{mask_passwords(item)}': the recipe has no key '{key}'"
                            f"{suggestion(leaf, keys)}", file=recipe.file,
                            hint=f"use +{key}=... to add a new key")


# -- validation ------------------------------------------------------------------------
def validate(recipe: Recipe) -> None:
    """Check the schema version, top-level keys, forbidden keys and resolvers."""
    config = recipe.config
    version = config.get("kitpose")
    if version is None:
        raise RecipeError("missing schema version", file=recipe.file, path="kitpose",
                          hint=f"add 'kitpose: {SCHEMA_VERSION}' at the top")
    if version != SCHEMA_VERSION:
        raise RecipeError(f"schema version {version!r} is not supported", file=recipe.file,
                          path="kitpose", hint=f"this kitpose reads version {SCHEMA_VERSION}")
    top_level = help_texts(RunSettings)
    for key in config.keys():
        if key not in top_level:
            raise RecipeError(f"unknown top-level key '{key}'{suggestion(str(key), top_level)}",
                              file=recipe.file, path=str(key),
                              hint="top-level keys are: " + ", ".join(top_level))
    _check_safety(config, "", recipe.file)


def _check_safety(node: Any, path: str, file: str, what: str = "",
                  error: type[RecipeError] = RecipeError) -> None:
    """Refuse ``_target_``-like keys and any resolver outside :data:`ALLOWED_RESOLVERS`, at
    every depth, without resolving anything (``what`` prefixes the message)."""
    if isinstance(node, (DictConfig, ListConfig)) and (node._is_interpolation() or node._is_none()
                                                       or node._is_missing()):
        _check_resolvers(node._value(), path, file, what, error)  # a container set to "${...}"
    elif isinstance(node, DictConfig):
        for key in node.keys():
            child = f"{path}.{key}" if path else str(key)
            if str(key) in _FORBIDDEN_KEYS:
                raise error(f"{what}'{key}' is refused: recipes cannot import code", file=file,
                            path=child, hint="name a registered component with 'use: NAME'")
            _check_safety(node._get_node(key), child, file, what, error)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            _check_safety(node._get_node(i), f"{path}[{i}]", file, what, error)
    else:
        value = node._value() if hasattr(node, "_value") else node
        _check_resolvers(value, path, file, what, error)
        _check_no_password(value, path, file, what, error)


def _check_resolvers(value: Any, path: str, file: str, what: str = "",
                     error: type[RecipeError] = RecipeError) -> None:
    """Walk omegaconf's own parse tree of ``value``: every resolver it would call, nested in
    arguments or quoted strings too, must be named literally and be in the allow-list."""
    if not isinstance(value, str) or "${" not in value:
        return
    allowed = "allowed resolvers: " + ", ".join(sorted(ALLOWED_RESOLVERS))
    try:
        tree = grammar_parser.parse(value)
    except GrammarParseError as exc:
        raise error(f"{what}invalid interpolation {value!r}: {_omegaconf_message(exc)}", file=file,
                    path=path or None, hint=_INTERPOLATION_HINT) from None
    stack: list[Any] = [tree]
    while stack:
        ctx = stack.pop()
        if isinstance(ctx, OmegaConfGrammarParser.ResolverNameContext):
            if any(isinstance(c, OmegaConfGrammarParser.InterpolationContext) for c in ctx.getChildren()):
                raise error(f"{what}a resolver name computed by an interpolation "
                            f"('{ctx.getText()}') is refused", file=file, path=path or None,
                            hint="write the resolver's name literally; " + allowed)
            name = ctx.getText()
            if name not in ALLOWED_RESOLVERS:
                raise error(f"{what}resolver '{name}' is refused", file=file, path=path or None,
                            hint=allowed)
        stack.extend(ctx.getChildren() if hasattr(ctx, "getChildren") else ())


_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+")


def url_password(text: str) -> str | None:
    """The first URL in ``text`` that carries a password (``scheme://user:pass@host``), with the
    password masked, or None."""
    for match in _URL_RE.finditer(text):
        masked = _mask_url(match.group(0))
        if masked != match.group(0):
            return masked
    return None


def mask_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:pass@host`` replaced by ``***``."""
    return _URL_RE.sub(lambda m: _mask_url(m.group(0)), text)


def _mask_url(url: str) -> str:
    scheme, _, netloc = url.partition("://")
    userinfo, at, host = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def _check_no_password(value: Any, path: str, file: str, what: str = "",
                       error: type[RecipeError] = RecipeError) -> None:
    """A recipe is saved with every run (``recipe.yaml``): a password in a URL would be too."""
    if isinstance(value, str) and "@" in value:
        masked = url_password(value)
        if masked:
            raise error(f"{what}a URL holding a password ({masked}) is refused: the recipe is saved "
                        "with the run", file=file, path=path or None,
                        hint="remove user:password@ and give the credentials through the environment "
                             "variables the component reads (its documentation names them)")


# -- helpers ---------------------------------------------------------------------------
def _omegaconf_message(exc: OmegaConfBaseException) -> str:
    msg = getattr(exc, "msg", None) or str(exc)
    return msg.strip().splitlines()[0]


def _full_key(exc: OmegaConfBaseException) -> str | None:
    key = getattr(exc, "full_key", None)
    return str(key) if key else None


def as_plain(value: Any) -> Any:
    """omegaconf containers to plain Python containers (for factories and torch)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: as_plain(v) for k, v in value.items()}
    return value
