"""Median-of-mass decoding: per axis, the point that splits the map's positive mass in half.

The centre of mass is exact on clean maps but every positive value on the map pulls it, in
proportion to its distance. The median of each axis' marginal mass moves only by how much
mass lies on either side, not how far away it is, so stray mass shifts it less. Mass is
kept inside a window around the arg-max (cells farther are ignored), as for ``com``.

Each cell's mass is spread evenly over the cell, so the median is continuous: with the
cumulative mass ``C`` at the right edge of each cell and ``j`` the first cell where
``C[j] >= 1/2``, the median is ``j - 1/2 + (1/2 - C[j-1]) / m[j]`` (in units of the total).
Batched over samples and joints; one pass per axis.
"""
from __future__ import annotations

from typing import Any

import torch

from kitpose.errors import ComponentError


class MedianDecoder:
    """Median of mass: per axis, where the positive mass around the arg-max splits in half; 2D or 3D.

    ``window``: half-width in cells of the square (cube) around the arg-max whose mass
    counts (default 6, 3 sigma of the sigma-2 targets of 64x48 maps; use 3 for sigma 1);
    ``null`` counts the whole map. Maps without positive mass give their arg-max. Scores
    are the peak values, floored at 0.
    """

    outputs = ("keypoints", "scores")
    #: spatial dimensions it decodes: [B, K, h, w] maps and [B, K, d, h, w] volumes
    spatial = (2, 3)
    #: keypoints pass gradients back to the heatmaps
    differentiable = True

    def __init__(self, window: int | None = 6) -> None:
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ComponentError(f"decoder 'median': window must be an integer >= 1 or null, got {window!r}",
                                 hint="set window: 6")
        self.window = window

    def __call__(self, heatmaps: Any) -> dict[str, torch.Tensor]:
        """heatmaps ``[B, K, (d,) h, w]`` -> keypoints ``[B, K, 2|3]`` (x, y[, z] cells), scores ``[B, K]``."""
        maps = torch.as_tensor(heatmaps)
        if maps.dim() not in (4, 5) or 0 in maps.shape:
            raise ComponentError(f"decoder 'median': heatmaps must be [B, K, h, w] or [B, K, d, h, w], "
                                 f"got shape {tuple(maps.shape)}")
        if not maps.is_floating_point():
            maps = maps.float()
        spatial = maps.shape[2:]
        peak, index = maps.flatten(2).max(dim=-1)
        cells = unravel(index, spatial)  # [B, K, n] (x, y[, z])
        mass = maps.clamp(min=0)
        if self.window is not None:
            mass = mass * window_mask(cells, spatial, self.window, maps.dtype)
        keypoints = []
        for axis in range(len(spatial)):  # x is the last dimension, then y, then z
            dim = maps.dim() - 1 - axis
            others = [d for d in range(2, maps.dim()) if d != dim]
            marginal = mass.sum(dim=others)  # [B, K, size]
            keypoints.append(median_position(marginal, cells[..., axis].to(maps.dtype)))
        return {"keypoints": torch.stack(keypoints, dim=-1), "scores": peak.clamp(min=0)}


def unravel(index: torch.Tensor, spatial: torch.Size) -> torch.Tensor:
    """Flat indices over ``spatial`` ((d,) h, w) -> cells ``[..., n]`` in (x, y[, z]) order."""
    cells = []
    for size in reversed(spatial):
        cells.append(index % size)
        index = torch.div(index, size, rounding_mode="floor")
    return torch.stack(cells, dim=-1)


def window_mask(cells: torch.Tensor, spatial: torch.Size, radius: int, dtype: torch.dtype) -> torch.Tensor:
    """1 within ``radius`` cells (on every axis) of ``cells``, else 0: ``[B, K, *spatial]``."""
    mask = None
    for axis, size in enumerate(reversed(spatial)):
        steps = torch.arange(size, device=cells.device)
        near = ((steps - cells[..., axis, None]).abs() <= radius).to(dtype)  # [B, K, size]
        view = near.shape[:2] + tuple(size if d == len(spatial) - 1 - axis else 1 for d in range(len(spatial)))
        mask = near.view(view) if mask is None else mask * near.view(view)
    return mask


def median_position(marginal: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Continuous median of ``marginal`` ``[B, K, size]`` (cell mass); ``fallback`` where it is empty."""
    total = marginal.sum(dim=-1, keepdim=True)
    found = total[..., 0] > 0
    safe = torch.where(total > 0, total, torch.ones_like(total))
    cdf = marginal.cumsum(dim=-1) / safe  # share of the mass up to the right edge of each cell
    j = (cdf < 0.5).sum(dim=-1, keepdim=True).clamp(max=marginal.shape[-1] - 1)
    before = torch.where(j > 0, cdf.gather(-1, (j - 1).clamp(min=0)), torch.zeros_like(total))
    share = marginal.gather(-1, j) / safe
    share = torch.where(share > 0, share, torch.ones_like(share))
    median = (j.to(marginal.dtype) - 0.5 + (0.5 - before) / share)[..., 0]
    return torch.where(found, median, fallback)
