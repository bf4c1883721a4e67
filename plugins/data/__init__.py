"""Built-in plugin 'data': datasets and the transforms that prepare their samples.

Registers the datasets ``synthetic`` (procedural human figures rendered on the fly, the
default; in ``synthetic/``), ``coco`` (COCO person keypoint files, 17 joints), ``mpii``
(MPII human pose JSON records, 16 joints) and ``h36m`` (Human3.6M's preprocessed ``.npz``
with ``cameras.pkl``: 17 joints, 2D and 3D), and the transforms ``top_down_affine``,
``random_affine``, ``random_flip``, ``photometric`` and ``quantize``; and the ``coco`` format of
``kitpose predict`` (detection results in, keypoint results out). Geometric transforms
record ``matrix`` (original image -> model input);
``kitpose_plugins.data.geometry.inverse_points`` maps predictions back. Nothing heavy is
imported here; a dataset or transform loads when built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Registry

_TRANSFORMS = "kitpose_plugins.data.transforms"


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.dataset("synthetic", "kitpose_plugins.data.synthetic.dataset:SyntheticPoses")
    registry.dataset("coco", "kitpose_plugins.data.coco:CocoKeypoints")
    registry.dataset("mpii", "kitpose_plugins.data.mpii:MpiiJson")
    registry.dataset("h36m", "kitpose_plugins.data.h36m:Human36M")
    registry.transform("top_down_affine", f"{_TRANSFORMS}:TopDownAffine")
    registry.transform("random_affine", f"{_TRANSFORMS}:RandomAffine")
    registry.transform("random_flip", f"{_TRANSFORMS}:RandomFlip")
    registry.transform("photometric", f"{_TRANSFORMS}:PhotometricJitter")
    registry.transform("quantize", f"{_TRANSFORMS}:Quantize")
    registry.format("coco", "kitpose_plugins.data.coco_files:CocoFiles")
