"""Peak-based decoders: the shared argmax front end, ``argmax`` and ``standard``.

Every peak decoder first finds the FIRST maximum of each map (same answer on every device,
see :func:`kitpose_plugins.codecs.common.first_argmax`) and then refines it locally.
Coordinates are heatmap cells ``(x, y[, z])``; the centre of cell (row i, column j) is
(x=j, y=i). Scores are the peak values, 0 for maps without a peak (flat, all zero, all
negative).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kitpose_plugins.codecs.common import (coordinate_dtype, first_argmax, heatmap_batch,
                                           on_numpy, one_thread_if_small, peak_scores, unravel)
from kitpose_plugins.codecs.patch import gather_window


class PeakDecoder:
    """Base class: ``dec(heatmaps=[B, K, (d,) h, w])`` -> ``keypoints`` (cells), ``scores``."""

    outputs = ("keypoints", "scores")
    label = "decoder"
    spatial: tuple[int, ...] = (2, 3)

    def refine(self, maps: torch.Tensor, flat: torch.Tensor, cells: torch.Tensor) -> torch.Tensor | None:
        """Sub-cell offsets ``[B, K, n]`` to add to the integer argmax ``cells`` (None: none)."""
        return None

    def __call__(self, heatmaps: Any) -> dict[str, torch.Tensor]:
        """Decode ``heatmaps``; returns ``keypoints [B, K, 2|3]`` in heatmap cells and ``scores [B, K]``."""
        maps = heatmap_batch(self.label, heatmaps, self.spatial)
        with one_thread_if_small(maps.numel(), maps.device):
            flat = maps.flatten(2)
            peak, index, level = first_argmax(flat)
            cells = unravel(index, maps.shape[2:])
            dtype = coordinate_dtype(maps.dtype)
            keypoints = cells.to(dtype)
            offsets = self.refine(maps, flat, cells)
            if offsets is not None:
                keypoints = keypoints + offsets
            return {"keypoints": keypoints, "scores": peak_scores(peak, level).to(dtype)}


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
        dtype = coordinate_dtype(maps.dtype)
        if on_numpy(flat):
            return torch.from_numpy(0.25 * neighbour_slopes(flat.numpy(), cells.numpy(), maps.shape[2:])).to(dtype)
        values, valid = gather_window(flat, maps.shape[2:], cells, 1)
        return quarter_offsets(values, valid, 1, cells.shape[-1]).to(dtype)


def neighbour_slopes(flat: np.ndarray, cells: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """``sign(h[c + 1] - h[c - 1])`` per axis at ``cells [B, K, n]`` of maps ``flat [B, K, N]``
    (numpy), 0 where a neighbour is off the map: :func:`quarter_offsets` / 0.25 for radius 1.

    The CPU path of ``standard``: a handful of numpy calls, whatever the batch, where the
    window gather takes dozens of small torch calls (what one image pays for).
    """
    rows = flat.reshape(-1, flat.shape[-1])
    at = cells.reshape(-1, cells.shape[-1])
    sizes = tuple(reversed(spatial))
    strides = np.cumprod((1,) + sizes[:-1])
    centre = at @ strides
    which = np.arange(rows.shape[0])
    slopes = np.zeros(at.shape, dtype=np.float64)
    for axis, (size, stride) in enumerate(zip(sizes, strides)):  # two or three axes
        inside = (at[:, axis] > 0) & (at[:, axis] < size - 1)
        ahead = rows[which, np.minimum(centre + stride, rows.shape[1] - 1)]
        behind = rows[which, np.maximum(centre - stride, 0)]
        slopes[:, axis] = np.where(inside, np.sign(ahead - behind), 0.0)
    return slopes.reshape(cells.shape)
