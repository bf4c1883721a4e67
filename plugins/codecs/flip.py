"""Flip test support: bring heatmaps predicted on a mirrored image back onto the original.

Three steps: mirror along x, swap every left/right joint pair, and move the maps by the
convention's constant shift (see :attr:`kitpose_plugins.codecs.grid.Grid.flip_shift`). The
shift is sub-pixel for MSRA (0.75 cells at stride 4), so it is applied exactly as a phase
ramp in the Fourier domain: a linear interpolation would smear the peak and leave about
0.01 px of bias (0.04 px at sigma 1) that a sub-pixel decoder then reports.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from kitpose_plugins.codecs.common import fail


def flip_order(component: str, joints: int, flip_pairs: Any, device: torch.device) -> torch.Tensor:
    """Joint permutation that swaps every ``(left, right)`` pair; checked against ``joints``."""
    order = list(range(joints))
    if flip_pairs is None:
        pairs = []
    elif hasattr(flip_pairs, "tolist"):  # a tensor or a numpy array
        pairs = flip_pairs.tolist()
    else:
        pairs = list(flip_pairs)
    seen: set[int] = set()
    for pair in pairs:
        try:
            left, right = (int(v) for v in pair)
        except (TypeError, ValueError):
            raise fail(component, f"flip_pairs must be (left, right) joint pairs, got {pair!r}",
                       hint="the dataset's flip_pairs should look like [[1, 2], [3, 4]]") from None
        if not (0 <= left < joints and 0 <= right < joints) or {left, right} & seen:
            raise fail(component, f"flip pair {pair!r} does not fit {joints} joints or repeats a joint",
                       hint="check the dataset's flip_pairs against its joint count")
        seen.update((left, right))
        order[left], order[right] = right, left
    return torch.tensor(order, dtype=torch.long, device=device)


def shift_x(maps: torch.Tensor, shift: float) -> torch.Tensor:
    """Move maps by ``shift`` cells towards +x (``out(u) = maps(u - shift)``), zero outside.

    Band-limited interpolation on a zero-padded copy twice as wide, so nothing wraps
    around; exact to about 1e-9 px on sigma-2 Gaussians.
    """
    if shift == 0:
        return maps
    width = maps.shape[-1]
    work = maps if maps.dtype in (torch.float32, torch.float64) else maps.to(torch.float32)
    length = 2 * width + 2 * math.ceil(abs(shift))
    spectrum = torch.fft.rfft(work, n=length, dim=-1)
    freq = torch.arange(spectrum.shape[-1], device=maps.device, dtype=work.dtype)
    phase = torch.polar(torch.ones_like(freq), -2.0 * math.pi * shift / length * freq)
    moved = torch.fft.irfft(spectrum * phase, n=length, dim=-1)[..., :width]
    return moved.to(maps.dtype)


def flip_back(component: str, heatmaps: torch.Tensor, flip_pairs: Any, shift: float) -> torch.Tensor:
    """Heatmaps ``[B, K, ..., w]`` predicted on the mirrored image, aligned with the original."""
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.dim() < 4:
        shape = tuple(heatmaps.shape) if isinstance(heatmaps, torch.Tensor) else type(heatmaps).__name__
        raise fail(component, f"flip_back needs heatmaps [B, K, h, w] (or [B, K, d, h, w]), got {shape}")
    order = flip_order(component, heatmaps.shape[1], flip_pairs, heatmaps.device)
    mirrored = heatmaps.flip(-1).index_select(1, order)
    return shift_x(mirrored, shift)
