"""Weighted least-squares Gaussian fit around the argmax (no blur, refines up to the border).

The log of a Gaussian is a quadratic, so fitting ``log h ~ a + b x + c y + d x^2 + e x y +
f y^2`` over the ``(2r+1)^2`` window around the argmax and taking the fitted quadratic's
maximum recovers the centre exactly on clean maps. The fit is weighted by ``h^2``: under
additive noise the error of ``log h`` is about ``noise / h``, so ``h^2`` are its inverse
variances (Guo's weighting of Caruana's log-parabola fit). Cells that are off the map or
not positive get weight 0, which is what lets it refine at the border, where DARK's
stencil does not fit and no blur is needed.

Batched: one ``[B, K, 6, 6]`` normal-equation solve for all maps.
"""
from __future__ import annotations

import torch

from kitpose_plugins.codecs.common import coordinate_dtype, positive_int
from kitpose_plugins.dark.decoder import cap_length, newton_offsets
from kitpose_plugins.codecs.patch import gather_window, window_offsets
from kitpose_plugins.codecs.peak import PeakDecoder, quarter_offsets


class GaussFitDecoder(PeakDecoder):
    """Sub-pixel decoding by a weighted least-squares Gaussian fit: exact on clean maps, no blur.

    ``window`` (default 2): half-width in cells of the fitted window (5x5). Refines up to
    the map's border and needs no blur kernel tuned to the map size; where the fit is not
    a maximum it falls back to ``standard``; never more than 1 cell off the argmax.
    """

    label = "decoder 'gaussfit'"
    spatial = (2,)

    def __init__(self, window: int = 2) -> None:
        self.window = positive_int(self.label, "window", window)

    def refine(self, maps: torch.Tensor, flat: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        dtype = coordinate_dtype(maps.dtype)
        values, valid = gather_window(flat, maps.shape[2:], cells, self.window)
        values = values.to(dtype)
        peak = values[..., values.shape[-1] // 2]
        usable = valid & (values > 0) & (peak[..., None] > 0)
        relative = torch.where(usable, values / torch.where(peak > 0, peak, torch.ones_like(peak))[..., None],
                               torch.ones_like(values))
        weights = torch.where(usable, relative * relative, torch.zeros_like(values))
        logs = torch.log(relative)
        x, y = window_offsets(self.window, 2, maps.device).to(dtype).unbind(-1)
        design = torch.stack([torch.ones_like(x), x, y, x * x, x * y, y * y], dim=-1)  # [P, 6]
        products = (design[:, :, None] * design[:, None, :]).flatten(1)  # [P, 36]
        normal = (weights @ products).unflatten(-1, (6, 6))
        rhs = (weights * logs) @ design
        theta, info = torch.linalg.solve_ex(normal, rhs)
        b, c, d, e, f = theta[..., 1:].unbind(-1)
        step, maximum = newton_offsets(torch.stack([b, c, 2 * d, 2 * f, e], dim=-1))
        maximum &= (info == 0) & (usable.sum(dim=-1) >= 6)
        fallback = quarter_offsets(values, valid, self.window, 2)
        return torch.where(maximum[..., None], cap_length(step), fallback)
