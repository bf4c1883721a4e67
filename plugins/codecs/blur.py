"""OpenCV's Gaussian blur on whole batches of maps, with the borders the references use.

The references blur map by map with ``cv2.GaussianBlur``: DarkPose and mmpose on a
zero-padded copy (DARK-UDP and Megvii decoding here; ``dark`` blurs only its stencil's
window, with the same kernel), mmpose's Megvii targets with OpenCV's default border
(``BORDER_REFLECT_101``). Here one axis of a blur is a ``[size, size]``
matrix, so a batch is blurred with two matrix products: exact, and far faster on a CPU
than a one-channel convolution.
"""
from __future__ import annotations

import torch


def opencv_gaussian_kernel(size: int) -> list[float]:
    """The 1D kernel ``cv2.GaussianBlur(img, (size, size), 0)`` applies.

    OpenCV derives ``sigma = 0.3 * ((size - 1) / 2 - 1) + 0.8`` and uses fixed tables for
    the smallest sizes; asking OpenCV itself keeps the two in step across its versions.
    """
    import cv2  # lazy: only needed when a blurring codec is built

    return [float(v) for v in cv2.getGaussianKernel(size, 0).ravel()]


def blur_band(kernel: torch.Tensor, size: int, *, reflect: bool = False) -> torch.Tensor:
    """``[size, size]`` matrix blurring one axis: ``out = band @ values``.

    Row ``i`` holds the kernel centred on cell ``i``; taps that fall off the map are
    dropped (zero padding) or, with ``reflect``, folded back as ``BORDER_REFLECT_101``
    does (``-1 -> 1``, ``size -> size - 2``).
    """
    r = kernel.numel() // 2
    cells = torch.arange(size, device=kernel.device)
    source = cells[:, None] + torch.arange(-r, r + 1, device=kernel.device)[None, :]  # [size, taps]
    if reflect:  # fold as often as needed: a map narrower than the kernel reflects again
        period = max(2 * (size - 1), 1)
        source = source.remainder(period)
        source = torch.where(source > size - 1, period - source, source)
    inside = (source >= 0) & (source <= size - 1)
    band = torch.zeros(size, size, dtype=kernel.dtype, device=kernel.device)
    weights = torch.where(inside, kernel[None, :].expand(size, -1), torch.zeros((), dtype=kernel.dtype))
    return band.scatter_add_(1, source.clamp(0, size - 1), weights)


class MapBlur:
    """OpenCV's Gaussian blur of ``[B, K, h, w]`` maps for an odd ``size`` (zero padding,
    or ``reflect``: BORDER_REFLECT_101); the band matrices are made once per shape."""

    def __init__(self, size: int, *, reflect: bool = False) -> None:
        self.kernel = torch.tensor(opencv_gaussian_kernel(size), dtype=torch.float64)
        self.reflect = reflect
        self._bands: dict[tuple[int, int, torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def bands(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows [h, h], columns [w, w])``: the blur is ``rows @ map @ columns.T``."""
        key = (h, w, device, dtype)
        if key not in self._bands:
            kernel = self.kernel.to(device=device, dtype=dtype)
            self._bands[key] = (blur_band(kernel, h, reflect=self.reflect),
                                blur_band(kernel, w, reflect=self.reflect))
        return self._bands[key]

    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        rows, columns = self.bands(*maps.shape[-2:], maps.device, maps.dtype)
        return rows @ maps @ columns.T


def rescaled(blurred: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Blurred maps scaled back to the maximum of the ``maps`` they came from, as DarkPose's
    and mmpose's ``gaussian_blur`` do (a map whose blur is all zero is left as it is)."""
    top, blurred_top = maps.amax(dim=(-2, -1)), blurred.amax(dim=(-2, -1))
    scale = top / torch.where(blurred_top == 0, torch.ones_like(blurred_top), blurred_top)
    return blurred * scale[..., None, None]
