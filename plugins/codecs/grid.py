"""Where heatmap cells sit in the input image: the MSRA and UDP conventions, and depth bins.

- ``msra`` (HRNet, SimpleBaseline): heatmap index k sits at input coordinate ``k * stride``.
- ``udp`` (unbiased data processing): index k sits at ``k * (W_in - 1) / (w_hm - 1)``, so the
  first and last cells sit on the first and last input pixels and flipping is exact.
- depth (volumetric encoders): ``bins`` cells split ``[z_min, z_max]`` evenly; cell k is
  centred on ``z_min + (k + 0.5) * (z_max - z_min) / bins``.

Every map is affine per axis (``u = a * x + b``), so a mirrored image maps onto a mirrored
heatmap up to a constant shift: :attr:`Grid.flip_shift`.
"""
from __future__ import annotations

from typing import Any

import torch

from kitpose_plugins.codecs.common import as_tensor, choice, fail, positive, size_pair

CONVENTIONS = ("msra", "udp")


class Grid:
    """Affine maps between input-image coordinates ``(x, y[, z])`` and heatmap cells."""

    def __init__(self, component: str, *, heatmap_size: Any, stride: Any, convention: str = "msra",
                 input_size: Any = None, depth_bins: int | None = None,
                 depth_range: Any = None) -> None:
        self.component = component
        self.convention = choice(component, "convention", convention, CONVENTIONS)
        w, h = size_pair(component, "heatmap_size", heatmap_size)
        s = positive(component, "stride", stride)
        if input_size is None:
            input_size = (max(1, round(w * s)), max(1, round(h * s)))
        width, height = size_pair(component, "input_size", input_size)
        if self.convention == "msra":
            scale = [1.0 / s, 1.0 / s]
        else:
            if min(w, h, width, height) < 2:
                raise fail(component, "the udp convention needs heatmap_size and input_size of at "
                           f"least 2 x 2, got {w} x {h} and {width} x {height}",
                           hint="use convention: msra for single-cell maps")
            scale = [(w - 1) / (width - 1), (h - 1) / (height - 1)]
        offset = [0.0, 0.0]
        self.sizes: tuple[int, ...] = (w, h)
        self.input_size = (width, height)
        self.stride = s
        if depth_bins is not None:
            z_min, z_max = _depth_range(component, depth_range)
            scale.append(depth_bins / (z_max - z_min))
            offset.append(-z_min * scale[-1] - 0.5)
            self.sizes = (w, h, int(depth_bins))
            self.depth_range = (z_min, z_max)
        self.scale = tuple(scale)
        self.offset = tuple(offset)

    @property
    def dims(self) -> int:
        """Coordinates per keypoint: 2, or 3 with depth bins."""
        return len(self.sizes)

    @property
    def flip_shift(self) -> float:
        """Heatmap px a mirrored heatmap must move towards +x to line up with the original.

        The image flip is ``x' = W - 1 - x``; mirroring the heatmap maps cell u to
        ``w - 1 - u``. For MSRA with ``W = w * stride`` this is ``1 - 1 / stride``
        (0.75 at stride 4: the bias a plain flip test leaves); for UDP it is 0.
        """
        a, b = self.scale[0], self.offset[0]
        return a * (self.input_size[0] - 1) + 2 * b - (self.sizes[0] - 1)

    def _affine(self, xy: Any, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xy = as_tensor(self.component, name, xy)
        n = xy.shape[-1] if xy.dim() else 0
        if n not in (2, self.dims):
            want = "2" if self.dims == 2 else "2 or 3"
            raise fail(self.component, f"'{name}' must end in {want} coordinates (x, y[, z]), "
                       f"got shape {tuple(xy.shape)}")
        if not xy.is_floating_point():
            xy = xy.to(torch.float32)
        scale = torch.tensor(self.scale[:n], dtype=xy.dtype, device=xy.device)
        offset = torch.tensor(self.offset[:n], dtype=xy.dtype, device=xy.device)
        return xy, scale, offset

    def to_heatmap(self, xy: Any) -> torch.Tensor:
        """Input-image coordinates ``[..., 2|3]`` -> heatmap coordinates (cells)."""
        xy, scale, offset = self._affine(xy, "xy")
        return xy * scale + offset

    def to_image(self, xy: Any) -> torch.Tensor:
        """Heatmap coordinates ``[..., 2|3]`` -> input-image coordinates; inverse of :meth:`to_heatmap`."""
        xy, scale, offset = self._affine(xy, "xy")
        return (xy - offset) / scale


def _depth_range(component: str, value: Any) -> tuple[float, float]:
    try:
        z_min, z_max = (float(v) for v in value)
    except (TypeError, ValueError):
        z_min, z_max = 0.0, 0.0
    if not z_max > z_min:
        raise fail(component, f"'depth_range' must be [z_min, z_max] with z_min < z_max, got {value!r}",
                   hint="write depth_range: [-1.0, 1.0]")
    return z_min, z_max
