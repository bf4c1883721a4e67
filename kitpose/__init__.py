"""kitpose: a model kit for heatmap-based keypoint estimation.

The public Python API::

    import kitpose
    decoder = kitpose.build("decoder", "dark", blur_kernel=11)
    kitpose.available("decoder")          # ['argmax', 'com', 'dark', ...]
    kitpose.list_components("decoder", "d*")

Plugins mark their hook functions with :data:`kitpose.hookimpl`. Importing kitpose
imports neither torch nor any plugin; both load on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.1.0"

#: Marker for plugin hook implementations (see :mod:`kitpose.hookspecs`).
hookimpl = pluggy.HookimplMarker("kitpose")

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Entry, Registry

__all__ = ["__version__", "available", "build", "get_registry", "hookimpl", "list_components"]


def get_registry() -> "Registry":
    """The registry filled by every loaded plugin."""
    from kitpose.plugins import get_registry as _get

    return _get()


def build(kind: str, name: str, /, *args: Any, **params: Any) -> Any:
    """Build the component ``name`` of ``kind``; parameters are checked first."""
    return get_registry().build(kind, name, *args, **params)


def available(kind: str) -> list[str]:
    """Sorted names registered for ``kind``."""
    return get_registry().names(kind)


def list_components(kind: str | None = None, pattern: str | None = None) -> list["Entry"]:
    """Registered components, optionally of one kind and filtered by a name glob."""
    return get_registry().entries(kind, pattern)
