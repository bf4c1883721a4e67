"""The plugin manager: finds plugins, isolates broken ones, fills the registry.

Plugins are found through the ``kitpose`` entry-point group; the built-in plugins
(distribution ``kitpose``) are registered there exactly like a third-party package.

- ``-p no:NAME`` blocks the plugin whose entry-point name (or module) is ``NAME``.
- ``-p NAME`` loads an extra plugin module by import name (or an entry point that
  autoload skipped).
- ``KITPOSE_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the built-in plugins, as pytest's
  ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` does; third-party plugins then load only when
  named with ``-p``.
- ``KITPOSE_PLUGINS=a,b`` is the same as ``-p a -p b``.

A plugin that cannot be imported, has a misspelt hook, raises in its hook or
registers a clashing name is recorded as *broken* with its distribution and the
error; every other plugin keeps working.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from kitpose import hookspecs
from kitpose.errors import PluginError, RecipeError, suggestion
from kitpose.registry import Registry

GROUP = "kitpose"
BUILTIN_DIST = "kitpose"
AUTOLOAD_ENV = "KITPOSE_DISABLE_PLUGIN_AUTOLOAD"
PLUGINS_ENV = "KITPOSE_PLUGINS"


@dataclass
class PluginInfo:
    """What ``kitpose plugins`` shows for one plugin."""

    name: str
    module: str
    dist: str = ""
    version: str = ""
    status: str = "loaded"  # loaded | blocked | broken | skipped
    error: str = ""

    @property
    def builtin(self) -> bool:
        return self.dist == BUILTIN_DIST


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with kitpose's discovery, blocking and isolation rules."""

    def __init__(self) -> None:
        super().__init__("kitpose")
        self.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.registry.blocked_by = self.blocked_provider
        self.infos: dict[str, PluginInfo] = {}
        self._blocked: dict[str, metadata.EntryPoint] = {}
        self._blocked_names: dict[str, str] | None = None

    # Treat every ``kitpose_*`` function as a hook implementation, as pytest does
    # for ``pytest_*``: then a misspelt hook name is caught instead of ignored.
    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("kitpose_") and callable(getattr(plugin, name, None)) \
                and isinstance(plugin, ModuleType):
            opts = {}
        return opts

    # -- loading ------------------------------------------------------------------
    def load(self, *, blocked: Iterable[str] = (), extra: Iterable[str] = (),
             autoload: bool | None = None) -> None:
        """Load plugins from entry points and ``extra``, honouring blocks and the autoload switch."""
        blocked = set(blocked)
        if autoload is None:
            autoload = not os.environ.get(AUTOLOAD_ENV)
        extra = list(extra) + [p for p in os.environ.get(PLUGINS_ENV, "").split(",") if p.strip()]
        extra = [p.strip() for p in extra]
        owners: dict[str, str] = {}
        for ep, dist, version in _entry_points():
            if ep.name in owners:
                if owners[ep.name] != dist:  # two distributions claim one plugin name
                    clash = PluginInfo(f"{ep.name}@{dist or '?'}", ep.value, dist, version)
                    self.infos[clash.name] = clash
                    self._broken(clash, f"plugin name '{ep.name}' is already used by {owners[ep.name]}; "
                                        f"rename the entry point (e.g. {_suggest_name(dist, ep.name)})")
                continue
            owners[ep.name] = dist
            info = PluginInfo(ep.name, ep.value, dist, version)
            self.infos[ep.name] = info
            if ep.name in blocked or ep.value in blocked:
                info.status = "blocked"
                self._blocked[ep.name] = ep
            elif not autoload and dist != BUILTIN_DIST and ep.name not in extra:
                info.status = "skipped"
                info.error = f"autoload disabled by {AUTOLOAD_ENV}"
            else:
                self._load_one(info, lambda ep=ep: ep.load())
        known = {n for info in self.infos.values() for n in (info.name, info.module)}
        unknown = sorted(b for b in blocked if b not in known and b not in extra)
        if unknown:
            names = sorted(i.name for i in self.infos.values())
            raise PluginError(f"-p no:{unknown[0]}: no plugin is named '{unknown[0]}'{suggestion(unknown[0], names)}",
                              hint="'kitpose plugins' lists the installed plugins")
        for name in extra:
            if name in self.infos and self.infos[name].status != "skipped":
                continue
            if name in blocked:
                continue
            info = self.infos.get(name) or PluginInfo(name, name, "", "")
            info.status, info.error = "loaded", ""
            self.infos[name] = info
            self._load_one(info, lambda m=info.module: importlib.import_module(m))

    def _load_one(self, info: PluginInfo, importer: Any) -> None:
        try:
            module = importer()
        except Exception as exc:
            self._broken(info, f"cannot import {info.module}: {type(exc).__name__}: {exc}")
            return
        try:
            self.register(module, name=info.name)
        except Exception as exc:
            self._broken(info, f"{type(exc).__name__}: {exc}")
            return
        unknown = [c.name for c in self.get_hookcallers(module) or [] if c.spec is None]
        if unknown:
            self.unregister(module)
            specs = [n for n in dir(hookspecs) if n.startswith("kitpose_")]
            self._broken(info, f"unknown hook '{unknown[0]}'{suggestion(unknown[0], specs)}")
            return
        register = [i for i in self.hook.kitpose_register.get_hookimpls() if i.plugin is module]
        try:
            with self.registry.providing(info.name, _dist_label(info)):
                for impl in register:
                    impl.function(**{arg: self.registry for arg in impl.argnames})
        except Exception as exc:
            self.unregister(module)
            self._broken(info, f"{type(exc).__name__}: {exc}")

    def _broken(self, info: PluginInfo, error: str) -> None:
        info.status, info.error = "broken", error
        print(f"kitpose: plugin '{info.name}' ({_dist_label(info) or 'no distribution'}) is broken: "
              f"{error}; see 'kitpose plugins'", file=sys.stderr)

    def blocked_provider(self, name: str) -> str | None:
        """The blocked built-in plugin that would register the component ``name``, or None. Each
        blocked built-in's hook runs once, on a scratch registry (registration imports nothing
        heavy). A blocked third-party plugin is never imported: blocking one is how a user keeps
        out a plugin that hangs or crashes on import."""
        if self._blocked_names is None:
            self._blocked_names = {}
            for plugin, ep in self._blocked.items():
                if self.infos[plugin].dist != BUILTIN_DIST:
                    continue
                scratch = Registry()
                try:
                    module = ep.load()
                    hook = getattr(module, "kitpose_register", None)
                    if callable(hook):
                        hook(registry=scratch)
                except Exception:  # a broken blocked plugin simply names nothing
                    continue
                for entry in scratch.entries():
                    self._blocked_names.setdefault(entry.name, plugin)
        return self._blocked_names.get(name)

    # -- queries ------------------------------------------------------------------
    def plugin_infos(self) -> list[PluginInfo]:
        return sorted(self.infos.values(), key=lambda i: (not i.builtin, i.name))

    def call_each(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a hook on every loaded plugin; a plugin that fails raises a :class:`PluginError`
        naming it and the hook, not its raw exception."""
        results = []
        for impl in getattr(self.hook, hook_name).get_hookimpls():
            try:
                result = impl.function(**{a: kwargs[a] for a in impl.argnames})
            except RecipeError:
                raise  # a user's recipe, not the plugin, is at fault: it says so itself
            except Exception as exc:
                raise PluginError(f"plugin '{impl.plugin_name}' failed in {hook_name}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            if result is not None:
                results.append(result)
        return results


def _entry_points() -> list[tuple[metadata.EntryPoint, str, str]]:
    """``(entry point, distribution, version)`` of the group, kitpose's own first (so a
    clash blames the newcomer); each distribution's metadata is read once."""
    found = [(ep, *_dist_of(ep)) for ep in metadata.entry_points(group=GROUP)]
    return sorted(found, key=lambda item: item[1] != BUILTIN_DIST)


def _suggest_name(dist: str, name: str) -> str:
    prefix = (dist or "plugin").replace("-", "_").lower()
    return f"{prefix}_{name}"


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    fields = dist.metadata  # parsed on every access: read it once
    return fields["Name"] or "", fields["Version"] or ""


def _dist_label(info: PluginInfo) -> str:
    if not info.dist:
        return ""
    return f"{info.dist} {info.version}".strip()


# -- the process-wide manager --------------------------------------------------------
_manager: PluginManager | None = None
_options: dict[str, Any] = {"blocked": (), "extra": ()}


def configure(*, blocked: Sequence[str] = (), extra: Sequence[str] = ()) -> None:
    """Set ``-p`` options before the manager first loads (the CLI calls this)."""
    global _manager
    _options.update(blocked=tuple(blocked), extra=tuple(extra))
    _manager = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _manager
    if _manager is None:
        manager = PluginManager()
        manager.load(blocked=_options["blocked"], extra=_options["extra"])
        _manager = manager
    return _manager


def get_registry() -> Registry:
    """The process-wide registry, filled by every loaded plugin."""
    return get_plugin_manager().registry


def reset() -> None:
    """Forget the loaded plugins (tests; after installing a plugin package)."""
    global _manager
    _manager = None
    importlib.invalidate_caches()
