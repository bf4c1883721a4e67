"""Recipes: YAML files read with omegaconf, merged through ``extends``, overridden
from the command line, checked against the schema and resolved.

A recipe names registered components only. It cannot import or evaluate code:
``_target_`` keys are refused and interpolations may use only the resolvers in
:data:`ALLOWED_RESOLVERS`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from kitpose.errors import OverrideError, RecipeError, suggestion

SCHEMA_VERSION = 1

#: Top-level keys and what they hold.
TOP_LEVEL: dict[str, str] = {
    "kitpose": "schema version of the recipe format (1)",
    "extends": "base recipes merged under this one",
    "name": "run name (default: the recipe file name)",
    "description": "free text",
    "seed": "seed for python, numpy, torch and data workers",
    "device": "auto | cpu | cuda | cuda:N",
    "deterministic": "use deterministic algorithms",
    "amp": "mixed precision on CUDA: null | bf16 | fp16",
    "runs_dir": "folder under which runs/<name>/<time>/ is made",
    "data": "datasets, transforms and loaders per split",
    "components": "named components: {key: {use: NAME, ...params}} or groups of them",
    "flows": "train / val / test flows: lists of nodes over named tensors",
    "train": "optimizer, scheduler, epochs or steps, clipping",
    "val": "how often to validate and which metric picks the best checkpoint",
    "test": "which checkpoint to test, flip test",
    "monitors": "console, files, visdom: {key: {use: NAME, ...}}",
    "study": "settings of 'kitpose study' recipes",
    "vars": "free-form values for interpolation, e.g. ${vars.joints}",
}

#: Settings every recipe has; a recipe (or ``key=value``) overrides them.
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "device": "auto",
    "deterministic": False,
    "amp": None,
    "runs_dir": "runs",
    "train": {"epochs": 1, "steps": None, "optimizer": {"use": "adam", "lr": 1e-3}, "scheduler": None,
              "scheduler_interval": "epoch", "clip_grad": None, "log_every": 10,
              # the tensor to minimise, or several summed with weights: {loss_h1: 1.0, loss_int: 1.0}
              "objective": "loss"},
    "val": {"every": 1, "metric": None, "branch": None, "mode": "max", "snapshot": 4,
            "show": {"keypoints": "pred_keypoints", "heatmaps": "heatmaps", "target": "target"}},
    "test": {"checkpoint": "best", "flip": False, "flip_heatmaps": "heatmaps", "flip_encoder": "encoder"},
}

#: Resolvers a recipe may use in ``${...}`` interpolations. None of them runs code.
ALLOWED_RESOLVERS = frozenset({"oc.env", "oc.select", "oc.dict.keys", "oc.dict.values"})

class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loader that also reads ``2e-3`` and ``1e5`` as floats (as YAML 1.2 does)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """Parse YAML safely (no tags that build objects)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


_RESOLVER_RE = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
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
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"invalid YAML: {problem}", file=where,
                          hint="fix the indentation or quoting on that line") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe must be a mapping of keys, not a {type(data).__name__}",
                          file=str(path))
    try:
        return OmegaConf.create(data)
    except OmegaConfBaseException as exc:
        raise RecipeError(_omegaconf_message(exc), file=str(path)) from None


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
    if not path.is_file():
        raise RecipeError("recipe not found", file=str(path),
                          hint="give the path to a .yaml recipe, e.g. recipes/hrnet_dark.yaml")
    sources: list[str] = []
    own = _load_merged(path, dirs, (), sources)
    config = merge_layers(OmegaConf.create(DEFAULTS), own)
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
            raise OverrideError(f"override '{item}' is not key=value", file=recipe.file,
                                hint="write e.g. train.epochs=5, +new.key=1 or ~key")
        key, _, raw = text.partition("=")
        key = key.strip()
        add = key.startswith("+")
        key = key.lstrip("+")
        if not key:
            raise OverrideError(f"override '{item}' has no key", file=recipe.file)
        if not add:
            _require_key(recipe, key, item)
        try:
            value = parse_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        try:
            OmegaConf.update(config, key, value, merge=False, force_add=True)
        except OmegaConfBaseException as exc:
            raise OverrideError(f"cannot set '{key}': {_omegaconf_message(exc)}", file=recipe.file,
                                path=key) from None


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
        raise OverrideError(f"override '{item}': the recipe has no key '{key}'"
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
    for key in config.keys():
        if key not in TOP_LEVEL:
            raise RecipeError(f"unknown top-level key '{key}'{suggestion(str(key), TOP_LEVEL)}",
                              file=recipe.file, path=str(key),
                              hint="top-level keys are: " + ", ".join(TOP_LEVEL))
    _check_safety(config, "", recipe.file)


def _check_safety(node: Any, path: str, file: str) -> None:
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = f"{path}.{key}" if path else str(key)
            if str(key) in _FORBIDDEN_KEYS:
                raise RecipeError(f"'{key}' is refused: recipes cannot import code", file=file,
                                  path=child, hint="name a registered component with 'use: NAME'")
            _check_safety(node._get_node(key), child, file)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            _check_safety(node._get_node(i), f"{path}[{i}]", file)
    else:
        value = node._value() if hasattr(node, "_value") else node
        if isinstance(value, str):
            for resolver in _RESOLVER_RE.findall(value):
                if resolver not in ALLOWED_RESOLVERS:
                    raise RecipeError(f"resolver '{resolver}' is refused", file=file, path=path,
                                      hint="allowed resolvers: " + ", ".join(sorted(ALLOWED_RESOLVERS)))


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
