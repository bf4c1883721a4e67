"""Built-in plugin 'coco': COCO person keypoint files as a top-down dataset (17 joints).

Registers the ``coco`` dataset (``{use: coco, ann_file: ..., image_dir: ...}``).
Nothing heavy is imported here; the dataset loads when built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Registry


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.dataset("coco", "kitpose_plugins._data_coco:CocoKeypoints")
