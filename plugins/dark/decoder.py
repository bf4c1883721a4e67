"""DARK: distribution-aware sub-pixel refinement (blur, log, one Newton step at the argmax).

The steps follow the DARK paper's reference: (1) argmax on the raw map; (2) Gaussian blur
with OpenCV's kernel for ``blur_kernel`` and zero padding, rescaled to keep the map's
maximum; (3) ``log(max(h, 1e-10))``; (4) one Newton step ``-H^-1 g`` at the argmax with
central differences (step-2 second differences on the diagonal of H).

Two things differ, on purpose:

- Only the window the Newton step reads is blurred: a ``(5 + k - 1)^2`` patch around each
  argmax, gathered at once for the whole batch. The step is the same as on a fully blurred
  map (log derivatives ignore the rescaling factor; the local maximum stands in for the
  global one, which only matters below the 1e-10 floor).
- The reference steps whenever ``det H != 0`` and so can jump more than a pixel on
  two-peaked or flat-topped maps. Here the step is taken only where H is negative definite
  (a real maximum) and the five-cell stencil lies on the map, and by default it is capped
  at 1 cell (``max_step``; ``null`` steps as far as Newton says, as the references do);
  elsewhere the result is the ``standard`` quarter-cell estimate.
"""
from __future__ import annotations

import torch

from kitpose_plugins.codecs.blur import opencv_gaussian_kernel
from kitpose_plugins.codecs.common import coordinate_dtype, positive, positive_int
from kitpose_plugins.codecs.patch import gather_window
from kitpose_plugins.codecs.peak import PeakDecoder, quarter_offsets

#: log floor of the reference
FLOOR = 1e-10
#: the Newton stencil reaches 2 cells from the argmax
REACH = 2


def band_matrix(kernel: torch.Tensor, outputs: int) -> torch.Tensor:
    """``[outputs, outputs + k - 1]`` matrix whose rows slide ``kernel`` one cell at a time."""
    k = kernel.shape[0]
    rows = torch.arange(outputs, device=kernel.device)[:, None]
    cols = torch.arange(outputs + k - 1, device=kernel.device)[None, :]
    taps = cols - rows
    inside = (taps >= 0) & (taps < k)
    return torch.where(inside, kernel[taps.clamp(0, k - 1)], torch.zeros((), dtype=kernel.dtype,
                                                                          device=kernel.device))


def blur_matrix(kernel: torch.Tensor, outputs: int) -> torch.Tensor:
    """``[s * s, o * o]`` matrix taking a flattened ``s x s`` window to its ``o x o`` blurred centre.

    The separable blur ``band @ window @ band.T`` written as one product with
    ``kron(band, band)``: a single matrix multiply for the whole batch.
    """
    band = band_matrix(kernel, outputs)
    return torch.kron(band, band).T.contiguous()


def derivative_matrix(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[25, 5]`` matrix: a flattened 5x5 log window -> ``(dx, dy, dxx, dyy, dxy)`` at its centre.

    The reference's central differences (step 2 on the diagonal of H) are linear in the
    window, so all five are one matrix product for the whole batch.
    """
    side, c = 2 * REACH + 1, REACH
    taps = {  # (row, column) -> weight, per derivative
        "dx": {(c, c + 1): 0.5, (c, c - 1): -0.5},
        "dy": {(c + 1, c): 0.5, (c - 1, c): -0.5},
        "dxx": {(c, c + 2): 0.25, (c, c): -0.5, (c, c - 2): 0.25},
        "dyy": {(c + 2, c): 0.25, (c, c): -0.5, (c - 2, c): 0.25},
        "dxy": {(c + 1, c + 1): 0.25, (c - 1, c + 1): -0.25, (c + 1, c - 1): -0.25, (c - 1, c - 1): 0.25},
    }
    matrix = torch.zeros(side * side, len(taps), dtype=dtype)
    for column, weights in enumerate(taps.values()):
        for (row, col), weight in weights.items():
            matrix[row * side + col, column] = weight
    return matrix


def newton_offsets(derivatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton step ``-H^-1 g`` from ``[..., 5]`` = (dx, dy, dxx, dyy, dxy), and where H is a maximum."""
    dx, dy, dxx, dyy, dxy = derivatives.unbind(-1)
    det = dxx * dyy - dxy * dxy
    maximum = (dxx < 0) & (det > 0)
    safe = torch.where(maximum, det, torch.ones_like(det))
    offsets = torch.stack([dxy * dy - dyy * dx, dxy * dx - dxx * dy], dim=-1) / safe[..., None]
    return offsets, maximum & torch.isfinite(offsets).all(dim=-1)


def cap_length(offsets: torch.Tensor, limit: float = 1.0) -> torch.Tensor:
    """Shorten offset vectors longer than ``limit`` to length ``limit``."""
    length = offsets.norm(dim=-1, keepdim=True)
    return offsets * (limit / length.clamp(min=limit))


class DarkDecoder(PeakDecoder):
    """DARK sub-pixel decoding: blur, log, one Newton step (at most ``max_step`` cells).

    ``blur_kernel``: odd size of OpenCV's Gaussian blur (11 for 64x48 maps, 3 for 32x24).
    ``max_step``: the longest Newton step in cells (``null``: no cap, as DarkPose and mmpose;
    docs/codecs.md has the measurement behind the default). Where H is not a maximum or
    the stencil leaves the map, falls back to ``standard``.
    """

    label = "decoder 'dark'"
    spatial = (2,)

    def __init__(self, blur_kernel: int = 11, max_step: float | None = 1.0) -> None:
        self.blur_kernel = positive_int(self.label, "blur_kernel", blur_kernel, odd=True)
        self.max_step = None if max_step is None else positive(self.label, "max_step", max_step)
        self.kernel = torch.tensor(opencv_gaussian_kernel(self.blur_kernel), dtype=torch.float64)
        self._matrices: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def matrices(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The window-to-stencil blur and stencil-to-derivatives matrices (made once per pair)."""
        key = (device, dtype)
        if key not in self._matrices:
            kernel = self.kernel.to(device=device, dtype=dtype)
            self._matrices[key] = (blur_matrix(kernel, 2 * REACH + 1),
                                   derivative_matrix(dtype).to(device))
        return self._matrices[key]

    def refine(self, maps: torch.Tensor, flat: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        dtype = coordinate_dtype(maps.dtype)
        radius = REACH + self.blur_kernel // 2
        side = 2 * radius + 1
        values, valid = gather_window(flat, maps.shape[2:], cells, radius)
        values = values.to(dtype)
        blur, derive = self.matrices(maps.device, dtype)
        blurred = values @ blur  # [B, K, 25]: the 5x5 stencil, blurred
        peak = values[..., (side * side) // 2]
        top = blurred.amax(dim=-1)
        scale = torch.where(top > 0, peak / torch.where(top > 0, top, torch.ones_like(top)),
                            torch.zeros_like(top))
        logs = (blurred * scale[..., None]).clamp_(min=FLOOR).log_()
        step, maximum = newton_offsets(logs @ derive)
        height, width = maps.shape[-2:]
        x, y = cells[..., 0], cells[..., 1]
        on_map = (x >= REACH) & (x <= width - 1 - REACH) & (y >= REACH) & (y <= height - 1 - REACH)
        fallback = quarter_offsets(values, valid, radius, 2)
        use = (maximum & on_map)[..., None]
        if self.max_step is not None:
            step = cap_length(step, self.max_step)
        return torch.where(use, step, fallback)
