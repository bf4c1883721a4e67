"""Built-in plugin 'transforms': top-down crop, random affine, flip, photometric jitter, quantize.

Registers the transforms ``top_down_affine``, ``random_affine``, ``random_flip``,
``photometric`` and ``quantize``. Geometric transforms record ``matrix`` (original
image -> model input); ``kitpose_plugins._data_geometry.inverse_points`` maps
predictions back. Nothing heavy is imported here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Registry

_MODULE = "kitpose_plugins._data_transforms"


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.transform("top_down_affine", f"{_MODULE}:TopDownAffine")
    registry.transform("random_affine", f"{_MODULE}:RandomAffine")
    registry.transform("random_flip", f"{_MODULE}:RandomFlip")
    registry.transform("photometric", f"{_MODULE}:PhotometricJitter")
    registry.transform("quantize", f"{_MODULE}:Quantize")
