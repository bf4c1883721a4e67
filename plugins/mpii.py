"""Built-in plugin 'mpii': MPII human pose JSON records as a top-down dataset (16 joints).

Registers the ``mpii`` dataset (``{use: mpii, ann_file: ..., image_dir: ...}``).
Nothing heavy is imported here; the dataset loads when built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Registry


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.dataset("mpii", "kitpose_plugins._data_mpii:MpiiJson")
