"""DARK for UDP maps, as mmpose decodes them (``refine_keypoints_dark_udp``).

The steps: (1) argmax on the raw map; (2) OpenCV's Gaussian blur of the whole map with zero
padding, rescaled to the map's maximum; (3) clip to ``[1e-3, 50]`` and take the log; (4)
pad the log map by one cell, repeating its edge; (5) one Newton step ``-(H + eps I)^-1 g`` at
the argmax from the 3x3 stencil (unit-step differences, ``eps`` float32's machine epsilon).

Unlike ``dark`` there is no guard: the step is taken wherever the matrix can be inverted,
at the border too (the edge padding supplies the missing neighbours), and it is not capped.
That is mmpose's behaviour, which is what this decoder is for; kitpose's ``dark`` is the
guarded one. All maps of a batch are blurred and stepped at once.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from kitpose_plugins.codecs.blur import MapBlur, rescaled
from kitpose_plugins.codecs.common import coordinate_dtype, positive_int
from kitpose_plugins.codecs.peak import PeakDecoder

#: mmpose's clip of the blurred map before the log
CLIP = (1e-3, 50.0)
#: added to the diagonal of H before it is inverted (numpy's float32 epsilon)
EPS = float(torch.finfo(torch.float32).eps)


class DarkUdpDecoder(PeakDecoder):
    """DARK as mmpose's UDP codec decodes: blur, clip, log, one unguarded Newton step (3x3).

    ``blur_kernel``: odd size of OpenCV's Gaussian blur (11 for 64x48 maps, as mmpose's
    ``blur_kernel_size``). Pair it with ``convention: udp`` encoders.
    """

    label = "decoder 'dark_udp'"
    spatial = (2,)

    def __init__(self, blur_kernel: int = 11) -> None:
        self.blur_kernel = positive_int(self.label, "blur_kernel", blur_kernel, odd=True)
        self.blur = MapBlur(self.blur_kernel)

    def refine(self, maps: torch.Tensor, flat: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        dtype = coordinate_dtype(maps.dtype)
        if maps.numel() == 0:
            return torch.zeros(cells.shape, dtype=dtype, device=maps.device)
        work = maps.to(dtype)
        logs = rescaled(self.blur(work), work).clamp_(*CLIP).log_()
        padded = F.pad(logs, (1, 1, 1, 1), mode="replicate")
        width = padded.shape[-1]
        centre = (cells[..., 1] + 1) * width + cells[..., 0] + 1
        steps = torch.tensor([-width - 1, -width, -1, 0, 1, width, width + 1], device=maps.device)
        values = padded.flatten(2).gather(2, centre[..., None] + steps)
        up_left, up, left, at, right, down, down_right = values.unbind(-1)
        dx, dy = 0.5 * (right - left), 0.5 * (down - up)
        dxx, dyy = right - 2 * at + left, down - 2 * at + up
        dxy = 0.5 * (down_right - right - down + 2 * at - left - up + up_left)
        a, d = dxx + EPS, dyy + EPS
        det = a * d - dxy * dxy
        safe = torch.where(det == 0, torch.ones_like(det), det)
        step = torch.stack([d * dx - dxy * dy, a * dy - dxy * dx], dim=-1) / safe[..., None]
        step = torch.where((det == 0)[..., None], torch.zeros_like(step), -step)
        return torch.where(torch.isfinite(step), step, torch.zeros_like(step))
