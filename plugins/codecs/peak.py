"""Peak-based decoders: the shared argmax front end, ``argmax`` and ``standard``.

Every peak decoder first finds the FIRST maximum of each map (same answer on every device,
see :func:`kitpose_plugins.codecs.common.first_argmax`) and then refines it locally.
Coordinates are heatmap cells ``(x, y[, z])``; the centre of cell (row i, column j) is
(x=j, y=i). Scores are the peak values, 0 for maps without a peak (flat, all zero, all
negative).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from kitpose_plugins.codecs.common import (coordinate_dtype, defined_together, first_argmax, heatmap_batch,
                                           numpy_peaks, on_numpy, one_thread_if_small, peak_scores, unravel)
from kitpose_plugins.codecs.patch import gather_window


class PeakDecoder:
    """Base class: ``dec(heatmaps=[B, K, (d,) h, w])`` -> ``keypoints`` (cells), ``scores``.

    On the CPU (no gradients wanted) the peak search runs in numpy: at one image a numpy call
    costs a fraction of a torch call. A subclass refines the arg-max in torch
    (:meth:`refine`) or, where it has one, in numpy (:meth:`refine_numpy`).
    """

    outputs = ("keypoints", "scores")
    label = "decoder"
    spatial: tuple[int, ...] = (2, 3)

    def refine(self, maps: torch.Tensor, flat: torch.Tensor, cells: torch.Tensor) -> torch.Tensor | None:
        """Sub-cell offsets ``[B, K, n]`` to add to the integer argmax ``cells`` (None: none)."""
        return None

    def refine_numpy(self, flat: np.ndarray, index: np.ndarray, cells: np.ndarray,
                     spatial: tuple[int, ...]) -> np.ndarray | None:
        """:meth:`refine` in numpy for the CPU path, given the maps ``flat [B, K, N]``, the
        arg-max's flat ``index [B, K]`` and ``cells [B, K, n]`` (None: no offsets). Used only
        where the class that defines it also defines (or inherits) the :meth:`refine` in use."""
        return None

    def __call__(self, heatmaps: Any) -> dict[str, torch.Tensor]:
        """Decode ``heatmaps``; returns ``keypoints [B, K, 2|3]`` in heatmap cells and ``scores [B, K]``."""
        maps = heatmap_batch(self.label, heatmaps, self.spatial)
        dtype = coordinate_dtype(maps.dtype)
        spatial = tuple(maps.shape[2:])
        if on_numpy(maps):
            return self.decode_numpy(maps, dtype, spatial)
        with one_thread_if_small(maps.numel(), maps.device):
            flat = maps.flatten(2)
            peak, index, level = first_argmax(flat)
            cells = unravel(index, spatial)
            keypoints = cells.to(dtype)
            offsets = self.refine(maps, flat, cells)
            if offsets is not None:
                keypoints = keypoints + offsets
            return {"keypoints": keypoints, "scores": peak_scores(peak, level).to(dtype)}

    def decode_numpy(self, maps: torch.Tensor, dtype: torch.dtype, spatial: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """The CPU path: arg-max, scores and (where offered) the refinement in numpy."""
        values = maps.contiguous().numpy().reshape(*maps.shape[:2], math.prod(spatial))
        peak, index, level = numpy_peaks(values)
        cells = unravel_numpy(index, spatial)
        kind = np.float64 if dtype == torch.float64 else np.float32
        scores = np.where(level | ~(peak > 0), 0, peak).astype(kind, copy=False)
        together = defined_together(type(self), "refine_numpy", ("refine",))
        offsets = self.refine_numpy(values, index, cells, spatial) if together else NotImplemented
        if offsets is NotImplemented:
            torch_cells = torch.from_numpy(cells)
            keypoints = torch_cells.to(dtype)
            with one_thread_if_small(maps.numel(), maps.device):
                more = self.refine(maps, maps.flatten(2), torch_cells)
            if more is not None:
                keypoints = keypoints + more
            return {"keypoints": keypoints, "scores": torch.from_numpy(scores)}
        keypoints = cells.astype(kind) if offsets is None else (cells + offsets).astype(kind, copy=False)
        return {"keypoints": torch.from_numpy(keypoints), "scores": torch.from_numpy(scores)}


def unravel_numpy(index: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """Flat indices ``[B, K]`` over ``spatial`` ((d,) h, w) -> integer cells ``[B, K, n]`` (x, y[, z])."""
    if len(spatial) == 2:
        cells = np.empty(index.shape + (2,), dtype=index.dtype)
        np.divmod(index, spatial[1], out=(cells[..., 1], cells[..., 0]))
        return cells
    return np.stack(np.unravel_index(index, spatial)[::-1], axis=-1)


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

    def refine_numpy(self, flat: np.ndarray, index: np.ndarray, cells: np.ndarray,
                     spatial: tuple[int, ...]) -> np.ndarray:
        """:meth:`refine` in numpy: the quarter cells from one gather of the neighbours."""
        return 0.25 * neighbour_slopes(flat, index, cells, spatial)


def neighbour_slopes(flat: np.ndarray, index: np.ndarray, cells: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """``sign(h[c + 1] - h[c - 1])`` per axis at the arg-max (flat ``index [B, K]``, ``cells
    [B, K, n]``) of maps ``flat [B, K, N]`` (numpy), 0 where a neighbour is off the map:
    :func:`quarter_offsets` / 0.25 for radius 1. All axes' neighbours come in one gather.
    """
    rows = flat.reshape(-1, flat.shape[-1])
    at = cells.reshape(-1, cells.shape[-1])
    sizes = spatial[::-1]  # x, y(, z)
    steps = [1, -1, sizes[0], -sizes[0]] + ([sizes[0] * sizes[1], -sizes[0] * sizes[1]] if len(sizes) == 3 else [])
    around = np.minimum(np.maximum(index.reshape(-1, 1) + np.array(steps), 0), rows.shape[1] - 1)
    values = rows[np.arange(rows.shape[0])[:, None], around]  # +x, -x, +y, -y(, +z, -z)
    inside = (at > 0) & (at < np.array(sizes) - 1)
    step = values[:, 0::2] - values[:, 1::2]
    slope = (step > 0).astype(values.dtype) - (step < 0)  # torch.sign's: 0 for NaN too
    return (slope * inside).reshape(cells.shape)
