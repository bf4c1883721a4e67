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
    """
    steps = torch.arange(-radius, radius + 1, device=flat.device)
    index = valid = None
    stride = 1
    for axis, size in enumerate(reversed(spatial)):  # x, y[, z]: each new axis varies slower
        position = cells[..., axis, None] + steps  # [B, K, 2r+1]
        inside = (position >= 0) & (position < size)
        offset = position.clamp(0, size - 1) * stride
        if index is None:
            index, valid = offset, inside
        else:
            index = (offset[..., :, None] + index[..., None, :]).flatten(-2)
            valid = (inside[..., :, None] & valid[..., None, :]).flatten(-2)
        stride *= size
    return torch.where(valid, flat.gather(-1, index), 0.0), valid
