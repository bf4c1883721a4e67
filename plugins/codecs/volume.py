"""Volumetric (3D) target encoders: heatmaps ``[B, K, d, h, w]`` over depth bins.

x and y follow the 2D conventions; ``depth_bins`` cells split ``depth_range`` evenly (cell k
is centred on ``z_min + (k + 0.5) * (z_max - z_min) / depth_bins``), so ``to_heatmap`` maps
z to fractional bin indices. ``sigma`` is in cells on all three axes.
"""
from __future__ import annotations

from typing import Any, Literal

from kitpose_plugins.codecs.common import choice, flag, positive, positive_int
from kitpose_plugins.codecs.gaussian import BORDERS, GaussianEncoder, OneHotEncoder
from kitpose_plugins.codecs.grid import Grid


class Gaussian3DEncoder(GaussianEncoder):
    """Volumetric Gaussian heatmaps over depth bins for 3D keypoints (x, y px; z in depth units).

    Same rules as ``gaussian`` (quantised or unbiased centre, 3 sigma window, weight 0 when
    the window misses the volume; ``visibility`` and ``border`` as there) on three axes.
    """

    label = "encoder 'gaussian3d'"

    def __init__(self, sigma: float = 2.0, stride: float = 4, heatmap_size: Any = (48, 64),
                 depth_bins: int = 64, depth_range: Any = (-1.0, 1.0), unbiased: bool = False,
                 convention: str = "msra", input_size: Any = None, visibility: Literal["any", "darkpose", "mmpose"] = "any",
                 border: Literal["window", "reference"] = "window") -> None:
        bins = positive_int(self.label, "depth_bins", depth_bins)
        self.grid = Grid(self.label, heatmap_size=heatmap_size, stride=stride, convention=convention,
                         input_size=input_size, depth_bins=bins, depth_range=depth_range)
        self.set_visibility(visibility)
        self.sigma = positive(self.label, "sigma", sigma)
        self.unbiased = flag(self.label, "unbiased", unbiased)
        self.border = choice(self.label, "border", border, BORDERS)


class OneHot3DEncoder(OneHotEncoder):
    """Volumetric one-hot heatmaps over depth bins (unbiased: trilinear split of the unit mass)."""

    label = "encoder 'one_hot3d'"

    def __init__(self, stride: float = 4, heatmap_size: Any = (48, 64), depth_bins: int = 64,
                 depth_range: Any = (-1.0, 1.0), unbiased: bool = False, convention: str = "msra",
                 input_size: Any = None, visibility: Literal["any", "darkpose", "mmpose"] = "any") -> None:
        bins = positive_int(self.label, "depth_bins", depth_bins)
        self.grid = Grid(self.label, heatmap_size=heatmap_size, stride=stride, convention=convention,
                         input_size=input_size, depth_bins=bins, depth_range=depth_range)
        self.set_visibility(visibility)
        self.unbiased = flag(self.label, "unbiased", unbiased)
