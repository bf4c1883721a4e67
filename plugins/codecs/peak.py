"""Peak-based decoders: the shared argmax front end, ``argmax`` and ``standard``.

Every peak decoder first finds the FIRST maximum of each map (same answer on every device,
see :func:`kitpose_plugins.codecs.common.first_argmax`) and then refines it locally.
Coordinates are heatmap cells ``(x, y[, z])``; the centre of cell (row i, column j) is
(x=j, y=i). Scores are the peak values, 0 for maps without a peak (flat, all zero, all
negative).
"""
from __future__ import annotations

from typing import Any

import torch

from kitpose_plugins.codecs.common import (coordinate_dtype, first_argmax, heatmap_batch,
                                           peak_scores, unravel)
from kitpose_plugins.codecs.patch import gather_window


class PeakDecoder:
    """Base class: ``dec(heatmaps=[B, K, (d,) h, w])`` -> ``keypoints`` (cells), ``scores``."""

    outputs = ("keypoints", "scores")
    label = "decoder"
    spatial: tuple[int, ...] = (2, 3)

    def refine(self, maps: torch.Tensor, flat: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """Sub-cell offsets ``[B, K, n]`` to add to the integer argmax ``cells``."""
        return torch.zeros(cells.shape, dtype=coordinate_dtype(maps.dtype), device=maps.device)

    def __call__(self, heatmaps: Any) -> dict[str, torch.Tensor]:
        """Decode ``heatmaps``; returns ``keypoints [B, K, 2|3]`` in heatmap cells and ``scores [B, K]``."""
        maps = heatmap_batch(self.label, heatmaps, self.spatial)
        flat = maps.flatten(2)
        peak, index, lowest = first_argmax(flat)
        cells = unravel(index, maps.shape[2:])
        dtype = coordinate_dtype(maps.dtype)
        keypoints = cells.to(dtype) + self.refine(maps, flat, cells)
        return {"keypoints": keypoints, "scores": peak_scores(peak, lowest).to(dtype)}


def quarter_offsets(values: torch.Tensor, valid: torch.Tensor, radius: int, dims: int) -> torch.Tensor:
    """``0.25 * sign(h[+1] - h[-1])`` per axis from a window of ``radius`` (0 without both neighbours)."""
    side = 2 * radius + 1
    centre = (side ** dims - 1) // 2
    offsets = []
    for axis in range(dims):
        step = side ** axis
        ahead, behind = centre + step, centre - step
        both = valid[..., ahead] & valid[..., behind]
        slope = torch.sign(values[..., ahead] - values[..., behind])
        offsets.append(torch.where(both, 0.25 * slope, torch.zeros_like(slope)))
    return torch.stack(offsets, dim=-1)


class ArgmaxDecoder(PeakDecoder):
    """Integer argmax of each map (first index on ties, on every device); 2D or 3D maps.

    Unlike the reference code, maps whose maximum is not positive keep their argmax
    position (the reference zeroes it); their score is 0.
    """

    label = "decoder 'argmax'"


class StandardDecoder(PeakDecoder):
    """Argmax plus a quarter cell towards the higher neighbour on each axis (the standard shift).

    ``offset = 0.25 * sign(h[x+1] - h[x-1])`` per axis, ``sign(0) = 0``; an axis is left
    unshifted at the map's border, where one neighbour is missing. 2D or 3D maps.
    """

    label = "decoder 'standard'"

    def refine(self, maps: torch.Tensor, flat: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        values, valid = gather_window(flat, maps.shape[2:], cells, 1)
        return quarter_offsets(values, valid, 1, cells.shape[-1]).to(coordinate_dtype(maps.dtype))
