"""Soft-argmax (integral regression): expected coordinates under ``softmax(beta * h)``.

Differentiable end to end, so a loss on the coordinates trains the heatmaps (the Integral
Human Pose Regression paper). Two forms with the same value:

- direct: expectation of the cell coordinates over the whole normalised map or volume;
- marginal ("two-step" integral): sum the normalised volume down to 1D distributions over
  x, y (and z) first, then take each 1D expectation. This is the form the paper uses to let
  2D-only samples supervise x and y from the same volume.

On Gaussian-valued maps with ``beta = 1`` the softmax is nearly flat and the estimate is
pulled to the map centre (about 15 px off on 64x48): it is meant for learned logits.
"""
from __future__ import annotations

from typing import Any

import torch

from kitpose_plugins.codecs.common import (axis_moments, coordinate_dtype, fail, flag,
                                           heatmap_batch, positive, positive_int)


class SoftArgmax:
    """Soft-argmax (integral regression) over 2D maps or 3D volumes; differentiable.

    ``beta``: softmax temperature (logits are multiplied by it). ``depth_bins``: read
    ``[B, K * d, h, w]`` logits as volumes ``[B, K, d, h, w]`` (a ``[B, K, d, h, w]``
    input must then have ``d == depth_bins``). ``marginal``: use the two-step marginal form.
    Scores are the largest probability of each distribution (``1 / cells`` when flat).
    """

    outputs = ("keypoints", "scores")
    label = "decoder 'soft_argmax'"

    def __init__(self, beta: float = 1.0, depth_bins: int | None = None, marginal: bool = False) -> None:
        self.beta = positive(self.label, "beta", beta)
        self.depth_bins = None if depth_bins is None else positive_int(self.label, "depth_bins", depth_bins)
        self.marginal = flag(self.label, "marginal", marginal)

    def volumes(self, heatmaps: Any) -> torch.Tensor:
        """The input as ``[B, K, h, w]`` maps or ``[B, K, d, h, w]`` volumes (checked)."""
        maps = heatmap_batch(self.label, heatmaps, (2, 3))
        bins = self.depth_bins
        if bins is None:
            return maps
        if maps.dim() == 4:
            if maps.shape[1] % bins:
                raise fail(self.label, f"{maps.shape[1]} channels are not joints x depth_bins "
                           f"({bins})", hint="set depth_bins to the model's depth resolution")
            return maps.unflatten(1, (maps.shape[1] // bins, bins))
        if maps.shape[2] != bins:
            raise fail(self.label, f"volumes have {maps.shape[2]} depth bins, depth_bins is {bins}",
                       hint=f"set depth_bins: {maps.shape[2]}")
        return maps

    def __call__(self, heatmaps: Any) -> dict[str, torch.Tensor]:
        """Expected ``keypoints [B, K, 2|3]`` (cells; z in depth bins) and ``scores [B, K]``."""
        maps = self.volumes(heatmaps)
        maps = maps.to(coordinate_dtype(maps.dtype))
        spatial = maps.shape[2:]
        prob = torch.softmax(maps.flatten(2) * self.beta, dim=-1)
        if self.marginal:
            keypoints = axis_moments(prob.view(maps.shape))
        else:
            keypoints = prob @ cell_grid(spatial, maps)
        return {"keypoints": keypoints, "scores": prob.amax(dim=-1)}


def cell_grid(spatial: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Coordinates ``[N, n]`` (x, y[, z]) of every cell of a ``spatial`` grid in flattened order."""
    axes = [torch.arange(size, dtype=like.dtype, device=like.device) for size in spatial]
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([g.reshape(-1) for g in reversed(grids)], dim=-1)

