"""Gather small windows of a heatmap around one cell per map, batched.

Sub-pixel decoders only look near the argmax, so they gather a ``(2r+1)^n`` window per map
with one ``gather`` instead of filtering whole maps. Cells outside the map read as 0 and
are flagged in a validity mask (the zero padding the references blur with).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def window_offsets(radius: int, dims: int, device: torch.device) -> torch.Tensor:
    """Integer offsets ``[(2r+1)^dims, dims]`` in (x, y[, z]) order; x varies fastest."""
    steps = torch.arange(-radius, radius + 1, device=device)
    grids = torch.meshgrid(*([steps] * dims), indexing="ij")  # slowest axis first: (z,) y, x
    return torch.stack([g.reshape(-1) for g in reversed(grids)], dim=-1)


def gather_window(flat: torch.Tensor, spatial: Sequence[int], cells: torch.Tensor,
                  radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and validity of the window of ``radius`` around ``cells``.

    ``flat`` is ``[B, K, N]`` (maps flattened over ``spatial`` = (d,) h, w), ``cells`` the
    integer ``[B, K, n]`` (x, y[, z]) centres. Returns ``values`` and a bool ``valid``, both
    ``[B, K, (2r+1)^n]`` in window order (x fastest); invalid cells hold 0.

    Every window cell is the centre's flat index plus a fixed offset, so the whole window
    is one add and one ``gather``; cells off the map (whose index would wrap into another
    row or past either end) are read from a clamped index and masked by the product of the
    per-axis masks.
    """
    steps = torch.arange(-radius, radius + 1, device=flat.device)
    sizes = list(reversed(spatial))  # x, y[, z]
    strides = [1]
    for size in sizes[:-1]:
        strides.append(strides[-1] * size)
    strides_t = torch.tensor(strides, device=flat.device)
    # a sum of products, not a matmul: CUDA has no integer matrix multiply
    offsets = (window_offsets(radius, len(sizes), flat.device) * strides_t).sum(dim=-1)
    centre = (cells * strides_t).sum(dim=-1, keepdim=True)
    index = (centre + offsets).clamp_(0, flat.shape[-1] - 1)
    valid = None
    for axis, size in enumerate(sizes):  # each new axis varies slower
        position = cells[..., axis, None] + steps
        inside = (position >= 0) & (position < size)
        valid = inside if valid is None else (inside[..., :, None] & valid[..., None, :]).flatten(-2)
    return torch.where(valid, flat.gather(-1, index), 0.0), valid
