"""UDP's combined targets: a classification disk and two offset maps per joint (Huang et al., 2020).

As mmpose's ``UDPHeatmap(heatmap_type='combined')`` draws and reads them. With the UDP
convention a keypoint sits at heatmap coordinate ``u = (ux, uy)``; the radius is
``r = radius_factor * max(w, h)`` cells. Per joint, three maps ``[cls, dx, dy]``:

- ``cls``: 1 on the cells within ``r`` of ``u`` (``|u - cell| <= r``), else 0;
- ``dx``, ``dy``: ``(ux - x) / r`` and ``(uy - y) / r`` on every cell of the map.

The maps of all joints are stacked as mmpose stacks them, ``[B, 3K, h, w]`` with each
joint's three maps together, so a ``heatmap`` head with ``joints: 3K`` predicts them.
Decoding blurs each classification map (OpenCV's Gaussian, reflected border), takes its
arg-max and adds the offsets read there, times ``r``: on clean targets the result is the
keypoint itself, whichever cell of the disk wins.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from kitpose_plugins.codecs.blur import MapBlur
from kitpose_plugins.codecs.common import (coordinate_dtype, fail, first_argmax, heatmap_batch,
                                           one_thread_if_small, peak_scores, positive, positive_int, unravel)
from kitpose_plugins.codecs.encode import HeatmapEncoder, cell_axes, cell_axes_numpy
from kitpose_plugins.codecs.flip import flip_back
from kitpose_plugins.codecs.grid import Grid
from kitpose_plugins.codecs.peak import PeakDecoder

#: mmpose's default radius factor (a radius of 3.5 cells on 64x48 maps)
RADIUS_FACTOR = 0.0546875
#: maps per joint: classification, x offset, y offset
CHANNELS = 3


def radius_of(sizes: tuple[int, ...], radius_factor: float) -> float:
    """The disk's radius in cells: ``radius_factor * max(w, h)``."""
    return radius_factor * max(sizes[:2])


class UdpCombinedEncoder(HeatmapEncoder):
    """UDP combined targets (mmpose): a class disk and x/y offset maps per joint, [B, 3K, h, w].

    The disk has radius ``r = radius_factor * max(w, h)`` cells; the offset maps hold the
    step from each cell to the keypoint divided by ``r``.
    The UDP convention maps pixels to cells. The visibility rule is mmpose's by default
    (a joint with ``v < 0.5`` is skipped, all three maps zero, and keeps weight ``v``).
    Unlike mmpose, a joint whose disk misses every cell of the map gets weight 0. Decode
    with ``udp_offsets``; train with the ``combined_mse`` loss.
    """

    label = "encoder 'udp_combined'"
    channels = CHANNELS

    def __init__(self, radius_factor: float = RADIUS_FACTOR, stride: float = 4, heatmap_size: Any = (48, 64),
                 input_size: Any = None, visibility: Literal["any", "darkpose", "mmpose"] = "mmpose") -> None:
        super().__init__(Grid(self.label, heatmap_size=heatmap_size, stride=stride, convention="udp",
                              input_size=input_size), visibility)
        self.radius_factor = positive(self.label, "radius_factor", radius_factor)
        self.radius = radius_of(self.grid.sizes, self.radius_factor)

    def representable(self, centres: torch.Tensor) -> torch.Tensor:
        sizes = torch.tensor(self.grid.sizes, dtype=centres.dtype, device=centres.device)
        nearest = torch.minimum(torch.round(centres).clamp(min=0), sizes - 1)  # the closest cell, per axis
        return (centres - nearest).pow(2).sum(dim=-1) <= self.radius ** 2

    def representable_numpy(self, centres: np.ndarray) -> np.ndarray:
        """:meth:`representable` in numpy."""
        sizes = np.asarray(self.grid.sizes, dtype=centres.dtype)
        nearest = np.minimum(np.maximum(np.round(centres), 0), sizes - 1)
        return ((centres - nearest) ** 2).sum(-1) <= self.radius ** 2

    def draw_numpy(self, centres: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """:meth:`draw` in numpy, step for step."""
        x, y = cell_axes_numpy(self.grid.sizes, centres.dtype)
        on = keep.astype(centres.dtype)[..., None]
        dx = (centres[..., 0:1] - x) / self.radius * on
        dy = (centres[..., 1:2] - y) / self.radius * on
        disk = (dy ** 2)[..., :, None] + (dx ** 2)[..., None, :] <= 1
        disk &= keep[..., None, None]
        b, k = centres.shape[:2]
        h, w = dy.shape[-1], dx.shape[-1]
        maps = np.empty((b, k, CHANNELS, h, w), dtype=centres.dtype)
        maps[:, :, 0] = disk
        maps[:, :, 1] = dx[..., None, :]
        maps[:, :, 2] = dy[..., :, None]
        return maps.reshape(b, k * CHANNELS, h, w)

    def draw(self, centres: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x, y = cell_axes(self.grid.sizes, centres)
        on = keep.to(centres.dtype)[..., None]
        dx = (centres[..., 0:1] - x) / self.radius * on  # [B, K, w]
        dy = (centres[..., 1:2] - y) / self.radius * on  # [B, K, h]
        b, k = centres.shape[:2]
        h, w = dy.shape[-1], dx.shape[-1]
        maps = torch.empty((b, k, CHANNELS, h, w), dtype=centres.dtype, device=centres.device)
        # the disk, built in its own slot (no map-sized temporaries): a joint not kept gets
        # an infinite distance, so its disk is empty
        with torch.no_grad():  # a step function: no gradient to keep
            down = torch.where(keep[..., None], dy.pow(2), torch.full_like(dy, float("inf")))
            disk = maps[:, :, 0]
            torch.add(down[..., :, None], dx.pow(2)[..., None, :], out=disk)
            torch.le(disk, 1, out=disk)
        maps[:, :, 1] = dx[..., None, :]
        maps[:, :, 2] = dy[..., :, None]
        return maps.reshape(b, k * CHANNELS, h, w)

    def flip_back(self, heatmaps: torch.Tensor, flip_pairs: Any) -> torch.Tensor:
        """Combined maps predicted on the mirrored image, aligned with the original: mirrored,
        joints swapped, and the x offsets negated (UDP needs no shift)."""
        maps = joint_maps(self.label, heatmaps)
        b, k, _, h, w = maps.shape
        back = flip_back(self.label, maps.reshape(b, k, CHANNELS * h, w), flip_pairs, 0.0)
        sign = torch.tensor([1.0, -1.0, 1.0], dtype=back.dtype, device=back.device)
        return (back.reshape(b, k, CHANNELS, h, w) * sign[:, None, None]).reshape(heatmaps.shape)


def joint_maps(component: str, heatmaps: Any) -> torch.Tensor:
    """``[B, 3K, h, w]`` combined maps viewed as ``[B, K, 3, h, w]``, checked."""
    maps = heatmap_batch(component, heatmaps, (2,))
    if maps.shape[1] % CHANNELS:
        raise fail(component, f"combined maps need 3 channels per joint (class, x offset, y offset), "
                   f"got {maps.shape[1]}", hint="give the head joints: 3 x the number of joints")
    b, c, h, w = maps.shape
    return maps.view(b, c // CHANNELS, CHANNELS, h, w)


class UdpCombinedDecoder(PeakDecoder):
    """UDP combined decoding (mmpose): arg-max of the blurred class disk plus the offsets read there.

    The offsets are scaled back by the radius ``radius_factor * max(w, h)``.

    ``blur_kernel``: odd size of OpenCV's Gaussian (reflected border, no rescaling); mmpose
    blurs with ``2 * blur_kernel_size + 1`` = 23. The score is the blurred maximum; a map
    without a peak (flat, or nothing positive) gets score 0 and its arg-max without offsets.
    """

    label = "decoder 'udp_offsets'"
    spatial = (2,)
    channels = CHANNELS

    def __init__(self, radius_factor: float = RADIUS_FACTOR, blur_kernel: int = 23) -> None:
        self.radius_factor = positive(self.label, "radius_factor", radius_factor)
        self.blur_kernel = positive_int(self.label, "blur_kernel", blur_kernel, odd=True)
        self.blur = MapBlur(self.blur_kernel, reflect=True)

    def __call__(self, heatmaps: Any) -> dict[str, torch.Tensor]:
        """Decode ``[B, 3K, h, w]`` maps; returns ``keypoints [B, K, 2]`` in cells and ``scores [B, K]``."""
        maps = joint_maps(self.label, heatmaps)
        with one_thread_if_small(maps[:, :, 0].numel(), maps.device):  # the class maps are the work
            dtype = coordinate_dtype(maps.dtype)
            work = maps.to(dtype)
            blurred = self.blur(work[:, :, 0])
            peak, index, level = first_argmax(blurred.flatten(2))
            cells = unravel(index, blurred.shape[2:])
            scores = peak_scores(peak, level)
            offsets = work[:, :, 1:].flatten(3).gather(3, index[:, :, None, None].expand(-1, -1, 2, 1))[..., 0]
            radius = radius_of((maps.shape[-1], maps.shape[-2]), self.radius_factor)
            found = (scores > 0)[..., None]
            keypoints = cells.to(dtype) + torch.where(found, offsets * radius, torch.zeros_like(offsets))
            return {"keypoints": keypoints, "scores": scores.to(dtype)}
