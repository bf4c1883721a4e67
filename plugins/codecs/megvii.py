"""Megvii heatmaps (CPN, MSPN, RSN), as mmpose's ``MegviiHeatmap`` codec draws and reads them.

Targets: a one at the cell ``floor(u)`` holding the keypoint (``u`` its heatmap coordinate,
so the cell is the one whose square contains it), blurred with OpenCV's Gaussian of size
``kernel`` and OpenCV's default border (reflected), scaled so that this cell holds 255.

Decoding: blur the map again (zero padding, rescaled to its maximum), take the arg-max,
and where ``1 < x < w - 1`` and ``1 < y < h - 1`` add a quarter cell towards the higher
neighbour (none when the two are equal to rounding) and half a cell (the centre of the cell
``floor(u)`` chose); elsewhere the arg-max is kept as it is. The score is the blurred
maximum / 255 + 0.5.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from kitpose_plugins.codecs.blur import MapBlur, rescaled
from kitpose_plugins.codecs.common import (coordinate_dtype, first_argmax, heatmap_batch, one_thread_if_small,
                                           positive_int, unravel)
from kitpose_plugins.codecs.encode import HeatmapEncoder
from kitpose_plugins.codecs.grid import Grid
from kitpose_plugins.codecs.peak import PeakDecoder

#: the value the target's peak cell is scaled to
PEAK = 255.0


class MegviiEncoder(HeatmapEncoder):
    """Megvii targets (mmpose): a one-hot at the keypoint's cell, OpenCV-blurred, peak 255.

    Draws at ``floor(u)``: decode with ``megvii_peak``, which adds the half cell back. The
    visibility rule is mmpose's by default (a joint with ``v < 0.5`` is skipped and keeps
    weight ``v``); a joint whose cell is off the map gets weight 0.
    """

    label = "encoder 'megvii'"

    def __init__(self, kernel: int = 11, stride: float = 4, heatmap_size: Any = (48, 64),
                 input_size: Any = None, visibility: Literal["any", "darkpose", "mmpose"] = "mmpose") -> None:
        super().__init__(Grid(self.label, heatmap_size=heatmap_size, stride=stride, convention="msra",
                              input_size=input_size), visibility)
        self.kernel = positive_int(self.label, "kernel", kernel, odd=True)
        self.blur = MapBlur(self.kernel, reflect=True)

    @property
    def flip_shift(self) -> float:
        """The grid's shift less one cell: a keypoint at ``u`` is drawn at ``floor(u)``, so a
        cell stands for the point half a cell on, and mirroring moves that by a whole cell."""
        return self.grid.flip_shift - 1.0

    def representable(self, centres: torch.Tensor) -> torch.Tensor:
        cells = torch.floor(centres)
        sizes = torch.tensor(self.grid.sizes, dtype=cells.dtype, device=cells.device)
        return ((cells >= 0) & (cells <= sizes - 1)).all(dim=-1)

    def representable_numpy(self, centres: np.ndarray) -> np.ndarray:
        """:meth:`representable` in numpy."""
        cells = np.floor(centres)
        return ((cells >= 0) & (cells <= np.asarray(self.grid.sizes, dtype=cells.dtype) - 1)).all(-1)

    def draw(self, centres: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        width, height = self.grid.sizes
        rows, columns = self.blur.bands(height, width, centres.device, centres.dtype)
        cells = torch.floor(centres).long()
        x = cells[..., 0].clamp(0, width - 1)
        y = cells[..., 1].clamp(0, height - 1)
        across, down = columns.T[x], rows.T[y]  # the blur of a one at (x, y), per axis: [B, K, w], [B, K, h]
        peak = across.gather(-1, x[..., None]) * down.gather(-1, y[..., None])
        scale = torch.where(keep[..., None], PEAK / peak, torch.zeros_like(peak))
        return (down * scale)[..., :, None] * across[..., None, :]


class MegviiDecoder(PeakDecoder):
    """Megvii decoding (mmpose): blur, arg-max, a quarter cell to the higher neighbour, half a cell.

    The shifts apply where ``1 < x < w - 1`` and ``1 < y < h - 1``; score = blurred maximum
    / 255 + 0.5.
    """

    label = "decoder 'megvii_peak'"
    spatial = (2,)

    def __init__(self, kernel: int = 11) -> None:
        self.kernel = positive_int(self.label, "kernel", kernel, odd=True)
        self.blur = MapBlur(self.kernel)

    def __call__(self, heatmaps: Any) -> dict[str, torch.Tensor]:
        maps = heatmap_batch(self.label, heatmaps, self.spatial)
        with one_thread_if_small(maps.numel(), maps.device):
            dtype = coordinate_dtype(maps.dtype)
            work = maps.to(dtype)
            blurred = rescaled(self.blur(work), work)
            flat = blurred.flatten(2)
            peak, index, _ = first_argmax(flat)
            cells = unravel(index, maps.shape[2:])
            height, width = maps.shape[-2:]
            x, y = cells[..., 0], cells[..., 1]
            inside = (x > 1) & (x < width - 1) & (y > 1) & (y < height - 1)

            def at(dx: int, dy: int) -> torch.Tensor:
                index = (y + dy).clamp(0, height - 1) * width + (x + dx).clamp(0, width - 1)
                return flat.gather(-1, index[..., None])[..., 0]

            # a difference below rounding is no slope: the blur of a symmetric map is symmetric
            tiny = 8 * torch.finfo(dtype).eps * peak.to(dtype).abs()
            diffs = torch.stack([at(1, 0) - at(-1, 0), at(0, 1) - at(0, -1)], dim=-1)
            slope = torch.where(diffs.abs() <= tiny[..., None], torch.zeros_like(diffs), torch.sign(diffs))
            shift = torch.where(inside[..., None], 0.25 * slope + 0.5, torch.zeros_like(slope))
            return {"keypoints": cells.to(dtype) + shift, "scores": peak.to(dtype) / PEAK + 0.5}
