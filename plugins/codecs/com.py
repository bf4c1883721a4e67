"""Centre-of-mass decoding: ``sum(p * h+) / sum(h+)`` with ``h+ = max(h, 0)``.

The global centre of mass is exact on clean maps but collapses under noise: every positive
noise value on the map pulls the estimate towards the map centre. A window around the
argmax keeps only the peak. A window fixed on the integer argmax still cuts a Gaussian
asymmetrically (and weights the clipped noise floor around the wrong point), so the
window is re-centred on the running estimate a few times; its edge cells are weighted by
the fraction of the cell inside the window, so the estimate moves continuously. At the
fixed point the window is symmetric about the peak: no truncation bias, and the noise
floor it keeps averages out.
"""
from __future__ import annotations

import torch

from kitpose_plugins.codecs.common import axis_moments, coordinate_dtype, fail, outer, positive_int
from kitpose_plugins.codecs.patch import gather_window
from kitpose_plugins.codecs.peak import PeakDecoder

#: how far (in cells) a re-centred window may move from the argmax
DRIFT = 1


class CentreOfMassDecoder(PeakDecoder):
    """Centre of mass of the positive part of each map, in a window re-centred on the estimate.

    ``window`` (default 7): half-width in cells of the square (or cube) window, 3.5 sigma
    for the sigma-2 maps of 64x48 targets (use 4 for sigma-1 maps). It keeps the error
    near 0.04 px under N(0, 0.02) noise, where the global centre of mass is off by about
    9 px, and within 1e-3 px on clean maps. ``window: null`` uses the whole map (exact on
    clean maps). ``steps`` (default 3): re-centring passes. 2D or 3D maps.
    """

    label = "decoder 'com'"

    def __init__(self, window: int | None = 7, steps: int = 3) -> None:
        self.window = None if window is None else positive_int(self.label, "window", window)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise fail(self.label, f"'steps' must be an integer >= 0, got {steps!r}", hint="set steps: 3")
        self.steps = steps

    def refine(self, maps: torch.Tensor, flat: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        dtype = coordinate_dtype(maps.dtype)
        if self.window is None:
            return global_centre(maps.to(dtype), cells.to(dtype)) - cells.to(dtype)
        dims = cells.shape[-1]
        radius = self.window + DRIFT  # the farthest cell a window re-centred within DRIFT covers
        side = 2 * radius + 1
        values, _ = gather_window(flat, maps.shape[2:], cells, radius)
        mass = values.to(dtype).clamp(min=0).unflatten(-1, (side,) * dims)
        positions = torch.arange(-radius, radius + 1, dtype=dtype, device=maps.device)
        centre = torch.zeros(cells.shape, dtype=dtype, device=maps.device)
        estimate = centre
        for _ in range(self.steps + 1):
            # per-axis coverage of each cell by the window centred on `centre` (separable)
            cover = (self.window + 0.5 - (positions - centre[..., None]).abs()).clamp(0, 1)
            weights = mass * outer(list(cover.unbind(-2)))
            total = weights.flatten(2).sum(dim=-1, keepdim=True)
            estimate = _ratio(axis_moments(weights) - radius * total, total, centre)
            centre = estimate.clamp(-DRIFT, DRIFT)
        return estimate


def _ratio(moment: torch.Tensor, total: torch.Tensor, otherwise: torch.Tensor) -> torch.Tensor:
    """``moment / total`` where there is mass, ``otherwise`` where there is none."""
    found = total > 0
    return torch.where(found, moment / torch.where(found, total, torch.ones_like(total)), otherwise)


def global_centre(maps: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Centre of mass of ``max(h, 0)`` over whole maps ``[B, K, (d,) h, w]`` -> ``[B, K, n]``.

    Maps without positive mass give ``cells`` (their argmax) back.
    """
    mass = maps.clamp(min=0)
    return _ratio(axis_moments(mass), mass.flatten(2).sum(dim=-1, keepdim=True), cells)
