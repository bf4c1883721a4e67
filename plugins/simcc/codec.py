"""SimCC labels (Li et al., 2022): one 1-D classification vector per axis and joint.

A keypoint at input pixel ``x`` belongs to label bin ``x * r`` (``r``: the split ratio), so
an input of ``W x H`` px has ``round(W * r)`` x-bins and ``round(H * r)`` y-bins. Both
:class:`SimCCEncoder` and :class:`SimCCDecoder` work on whole batches at once (no loop over
samples or joints), on the device of their input; the decoder returns label bins, and the
encoder's ``to_image`` turns them into input pixels, as heatmap codecs do with cells.

The behaviour is mmpose 1.x's ``SimCCLabel`` codec; ``docs/codecs.md`` lists the few
places where kitpose differs.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from kitpose_plugins.codecs.blur import MapBlur
from kitpose_plugins.codecs.common import (as_tensor, choice, coordinate_dtype, fail, first_argmax,
                                           flag, on_numpy, one_thread_if_small, positive, size_pair)
from kitpose_plugins.codecs.encode import VISIBILITY, visibility_rule

#: the label shapes an encoder draws
LABEL_TYPES = ("gaussian", "standard")
#: how a decoder refines the arg-max of each vector
REFINEMENTS = ("none", "dark")
#: the sigma of mmpose's 256x192 RTMPose configs, in label bins (x, y)
SIGMA = (4.9, 5.66)


def label_sizes(component: str, input_size: Any, split_ratio: Any) -> tuple[tuple[int, int], float, tuple[int, int]]:
    """``(input (W, H), r, bins (round(W r), round(H r)))``, checked: at least 2 bins per axis."""
    width, height = size_pair(component, "input_size", input_size)
    ratio = positive(component, "split_ratio", split_ratio)
    bins = (round(width * ratio), round(height * ratio))  # as numpy's around: halves to even
    if min(bins) < 2:
        raise fail(component, f"split_ratio {ratio:g} leaves {bins[0]} x {bins[1]} label bins for an "
                   f"input of {width} x {height} px; at least 2 per axis are needed",
                   hint="set split_ratio: 2.0")
    return (width, height), ratio, bins


def axis_pair(component: str, name: str, value: Any) -> tuple[float, float]:
    """A positive number for both axes, or an ``[x, y]`` pair of them."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise fail(component, f"'{name}' must be a number or [x, y], got {value!r}",
                       hint=f"write {name}: [4.9, 5.66]")
        return positive(component, name, value[0]), positive(component, name, value[1])
    number = positive(component, name, value)
    return number, number


def mmpose_blur_kernel(sigma: float) -> int:
    """The blur mmpose's SimCC DARK uses for labels of ``sigma`` bins: ``(20 sigma - 7) // 3``,
    made odd by taking one off (29 for sigma 4.9, 35 for 5.66, 37 for 6)."""
    size = int((sigma * 20 - 7) // 3)
    return max(1, size - (size % 2 == 0))


class SimCCEncoder:
    """SimCC labels: per joint an x-vector of ``round(W r)`` and a y-vector of ``round(H r)`` bins.

    ``enc(keypoints=[B, K, 2] input px, visible=[B, K])`` -> ``simcc_x [B, K, Wr]``,
    ``simcc_y [B, K, Hr]``, ``weights [B, K]``. The centre is the rounded bin
    ``mu = round(x r)`` (halves to even, as numpy's ``around``), or with ``unbiased`` the
    exact ``x r`` (not in mmpose: Gaussian labels that ``refine: dark`` decodes to within
    1e-5 px).

    - ``label_type: gaussian``: ``exp(-(i - mu)^2 / 2 sigma^2)`` over every bin ``i``
      (``sigma`` in bins, one number or ``[x, y]``), divided by ``sigma sqrt(2 pi)`` with
      ``normalize`` (so it sums to about 1). The weight is 0 when
      ``mu - 3 sigma >= bins`` or ``mu + 3 sigma + 1 < 0`` on either axis (mmpose's rule).
    - ``label_type: standard``: ``1 - label_smooth_weight`` at ``mu``, and
      ``label_smooth_weight / (bins - 1)`` everywhere else (a one-hot without smoothing;
      it sums to 1, ``normalize`` does not apply). The weight is 0 when ``mu`` is off the
      vector.

    ``visibility``: ``mmpose`` (default: a joint with ``v < 0.5`` is skipped and keeps
    weight ``v``), ``darkpose`` or ``any`` (see :mod:`kitpose_plugins.codecs.encode`).
    Non-finite keypoints get weight 0. ``to_heatmap`` / ``to_image`` map input px to label
    bins and back (``bin = px * r``).
    """

    outputs = ("simcc_x", "simcc_y", "weights")
    flow_methods = ("to_heatmap", "to_image")
    label = "encoder 'simcc'"

    def __init__(self, input_size: Any = (192, 256), split_ratio: float = 2.0, sigma: Any = SIGMA,
                 label_type: Literal["gaussian", "standard"] = "gaussian", label_smooth_weight: float = 0.0,
                 normalize: bool = True, visibility: Literal["any", "darkpose", "mmpose"] = "mmpose",
                 unbiased: bool = False) -> None:
        self.input_size, self.split_ratio, self.bins = label_sizes(self.label, input_size, split_ratio)
        self.sigma = axis_pair(self.label, "sigma", sigma)
        self.label_type = choice(self.label, "label_type", label_type, LABEL_TYPES)
        self.normalize = flag(self.label, "normalize", normalize)
        self.visibility = choice(self.label, "visibility", visibility, VISIBILITY)
        self.unbiased = flag(self.label, "unbiased", unbiased)
        smooth = label_smooth_weight
        if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not 0.0 <= smooth <= 1.0:
            raise fail(self.label, f"'label_smooth_weight' must be a number in [0, 1], got {smooth!r}",
                       hint="set label_smooth_weight: 0.0")
        if smooth > 0 and self.label_type == "gaussian":
            raise fail(self.label, "'label_smooth_weight' applies to label_type: standard only",
                       hint="set label_type: standard, or label_smooth_weight: 0.0")
        self.label_smooth_weight = float(smooth)
        if self.unbiased and self.label_type == "standard":
            raise fail(self.label, "'unbiased' applies to label_type: gaussian only (a one-hot label "
                       "sits on one bin)", hint="set unbiased: false")
        self._axes: dict[tuple[Any, ...], list[torch.Tensor]] = {}

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """``(x-bins, y-bins)``: the label lengths, the "map" a SimCC keypoint lives on."""
        return self.bins

    def _xy(self, xy: Any) -> torch.Tensor:
        xy = as_tensor(self.label, "xy", xy)
        if xy.dim() == 0 or xy.shape[-1] != 2:
            raise fail(self.label, f"'xy' must end in 2 coordinates (x, y), got shape {tuple(xy.shape)}")
        return xy if xy.is_floating_point() else xy.to(torch.float32)

    def to_heatmap(self, xy: Any) -> torch.Tensor:
        """Input px ``[..., 2]`` -> label bins (``px * r``)."""
        return self._xy(xy) * self.split_ratio

    def to_image(self, xy: Any) -> torch.Tensor:
        """Label bins ``[..., 2]`` -> input px (``bins / r``); ``to_image(to_heatmap(x)) == x``."""
        return self._xy(xy) / self.split_ratio

    def bin_axes(self, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """``arange`` of the x and y bins, made once per dtype and device."""
        key = ("bins", dtype, device)
        if key not in self._axes:
            self._axes[key] = [torch.arange(n, dtype=dtype, device=device) for n in self.bins]
        return self._axes[key]

    def drawable(self, mu: torch.Tensor) -> torch.Tensor:
        """Bool ``[B, K]``: whether a joint at the bins ``mu [B, K, 2]`` keeps its weight."""
        low, high = self.bounds(mu.dtype, mu.device)
        return ((mu >= low) & (mu <= high)).all(dim=-1)

    def bounds(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per axis, the lowest and highest centre that keeps its weight (made once per dtype
        and device): ``[0, bins - 1]`` for standard labels; ``mu + 3 sigma + 1 >= 0`` and
        ``mu - 3 sigma < bins`` for Gaussians (centres are whole bins unless unbiased, so
        the high bound is the largest float below ``bins + 3 sigma``)."""
        key = ("bounds", dtype, device)
        if key not in self._axes:
            sizes = torch.tensor(self.bins, dtype=dtype, device=device)
            if self.label_type == "standard":
                bounds = [torch.zeros_like(sizes), sizes - 1]
            else:
                reach = 3.0 * torch.tensor(self.sigma, dtype=dtype, device=device)
                bounds = [-reach - 1, torch.nextafter(sizes + reach, torch.full_like(sizes, -math.inf))]
            self._axes[key] = bounds
        low, high = self._axes[key]
        return low, high

    def draw(self, mu: torch.Tensor, keep: torch.Tensor) -> list[torch.Tensor]:
        """The x and y labels ``[B, K, bins]`` for centres ``mu``; all zero where ``keep`` is False."""
        shown = keep.to(mu.dtype)[..., None]
        floor = math.log(torch.finfo(mu.dtype).tiny) + 1.0  # exp stays a normal float above it
        labels = []
        for axis, bins in enumerate(self.bin_axes(mu.dtype, mu.device)):
            d = bins - mu[..., axis, None]
            if self.label_type == "standard":
                low = self.label_smooth_weight / (bins.numel() - 1)
                labels.append(torch.full_like(d, low).masked_fill_(d == 0, 1.0 - self.label_smooth_weight) * shown)
                continue
            s = self.sigma[axis]
            peak = 1.0 / (s * math.sqrt(2 * math.pi)) if self.normalize else 1.0
            exponent = d.square_().mul_(-0.5 / (s * s))
            # far tails are set to 0 (below e times float's smallest normal): exp of large
            # negative arguments and subnormal results take slow paths on CPUs, ten times the
            # cost of the whole label
            tail = exponent < floor
            labels.append(exponent.clamp_(min=floor).exp_().masked_fill_(tail, 0.0).mul_(shown * peak))
        return labels

    def __call__(self, keypoints: Any, visible: Any = None) -> dict[str, torch.Tensor]:
        """Labels for ``keypoints [B, K, 2]`` in input px; ``visible [B, K]`` (default: all)."""
        points = as_tensor(self.label, "keypoints", keypoints)
        if points.dim() != 3 or points.shape[-1] != 2:
            raise fail(self.label, f"keypoints must be [B, K, 2] input-image coordinates, got shape "
                       f"{tuple(points.shape)}", hint="connect the dataset's keypoints")
        dtype = points.dtype if points.is_floating_point() else torch.float32
        points = points.to(coordinate_dtype(points.dtype))
        if visible is None:
            vis = torch.ones(points.shape[:2], dtype=points.dtype, device=points.device)
        else:
            vis = as_tensor(self.label, "visible", visible).to(device=points.device, dtype=points.dtype)
            if vis.shape != points.shape[:2]:
                raise fail(self.label, f"visible must be [B, K] = {list(points.shape[:2])}, got shape "
                           f"{tuple(vis.shape)}")
        with one_thread_if_small(points.shape[0] * points.shape[1] * sum(self.bins), points.device):
            simcc_x, simcc_y, weights = self.encode(points, vis)
        return {"simcc_x": simcc_x.to(dtype), "simcc_y": simcc_y.to(dtype), "weights": weights.to(dtype)}

    def encode(self, points: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``simcc_x``, ``simcc_y`` and ``weights`` for checked ``points`` and visibilities."""
        finite = torch.isfinite(points).all(dim=-1)
        mu = torch.where(finite[..., None], points, torch.zeros_like(points)) * self.split_ratio
        if not self.unbiased:
            mu = torch.round(mu)
        keep, weights = visibility_rule(self.visibility, vis, finite & self.drawable(mu))
        simcc_x, simcc_y = self.draw(mu, keep)
        return simcc_x, simcc_y, weights


class SimCCDecoder:
    """SimCC decoding: the arg-max bin of each vector (mmpose's ``get_simcc_maximum``).

    ``dec(simcc_x=[B, K, Lx], simcc_y=[B, K, Ly])`` -> ``keypoints [B, K, 2]`` in label bins
    (x, y; ``encoder.to_image`` gives input px) and ``scores [B, K]``: the smaller of the
    two maxima. The first bin holding the maximum wins ties, on every device. Where that
    score is not positive mmpose returns the keypoint -1; kitpose keeps the arg-max and
    gives score 0.

    ``refine: dark`` is mmpose's 1-D DARK (``use_dark``): each vector is blurred with
    OpenCV's Gaussian of size ``blur_kernel`` (zero padding), scaled back to its own
    maximum, clipped to [1e-3, 50] and its log taken, edge-padded by two bins; then one
    Newton step ``x -= f' / f''`` at the arg-max, with ``f' = (f[x+1] - f[x-1]) / 2`` and
    ``f'' = (f[x+2] - 2 f[x] + f[x-2]) / 4 + 1e-9``, unguarded as in mmpose (``max_step``:
    at most that many bins either way; null: no cap), except that a vector without a peak
    (flat, or nothing positive) is not stepped and no step leaves the vector. On an exact
    Gaussian the log is a parabola and the step lands on its centre. ``blur_kernel``:
    an odd size, ``[x, y]`` sizes, or null for mmpose's choice from the training labels'
    ``sigma`` (bins): ``(20 sigma - 7) // 3``, made odd.
    """

    outputs = ("keypoints", "scores")
    label = "decoder 'simcc_peak'"

    def __init__(self, refine: Literal["none", "dark"] = "none", sigma: Any = SIGMA,
                 blur_kernel: Any = None, max_step: float | None = None) -> None:
        self.refine = choice(self.label, "refine", refine, REFINEMENTS)
        self.max_step = None if max_step is None else positive(self.label, "max_step", max_step)
        self.sigma = axis_pair(self.label, "sigma", sigma)
        if blur_kernel is None:
            sizes: Any = tuple(mmpose_blur_kernel(s) for s in self.sigma)
        elif isinstance(blur_kernel, Sequence) and not isinstance(blur_kernel, str):
            sizes = tuple(blur_kernel)
        else:
            sizes = (blur_kernel, blur_kernel)
        if len(sizes) != 2 or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2
                                      for k in sizes):
            raise fail(self.label, f"'blur_kernel' must be an odd integer >= 1, [x, y] of them or null, "
                       f"got {blur_kernel!r}", hint="set blur_kernel: null (mmpose's size from sigma)")
        self.blur_kernel: tuple[int, int] = (int(sizes[0]), int(sizes[1]))
        # OpenCV's blur, zero padding; made (and OpenCV imported) only when DARK refines
        self.blurs = {size: MapBlur(size) for size in self.blur_kernel} if self.refine == "dark" else {}

    def vectors(self, name: str, value: Any) -> torch.Tensor:
        """``value`` checked as a floating ``[B, K, L]`` tensor."""
        vec = as_tensor(self.label, name, value)
        if vec.dim() != 3 or vec.shape[-1] == 0:
            raise fail(self.label, f"{name} must be [B, K, L] label vectors, got shape {tuple(vec.shape)}",
                       hint="connect the simcc head's simcc_x and simcc_y")
        return vec if vec.is_floating_point() else vec.to(torch.float32)

    def dark_offsets(self, vec: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
        """mmpose's 1-D DARK step for vectors ``[B, K, L]`` at their arg-max ``index [B, K]``."""
        length = vec.shape[-1]
        blurred = vec @ self.blurs[size].bands(1, length, vec.device, vec.dtype)[1].T  # the blur along x
        top, blurred_top = vec.amax(dim=-1), blurred.amax(dim=-1)
        scale = top / torch.where(blurred_top == 0, torch.ones_like(blurred_top), blurred_top)
        taps = (index[..., None] + torch.arange(-2, 3, device=vec.device)).clamp_(0, length - 1)  # edge padding
        f = torch.log((blurred.gather(-1, taps) * scale[..., None]).clamp_(1e-3, 50.0))
        slope = 0.5 * (f[..., 3] - f[..., 1])
        curvature = 1e-9 + 0.25 * (f[..., 4] - 2 * f[..., 2] + f[..., 0])
        step = -slope / curvature
        return step if self.max_step is None else step.clamp(-self.max_step, self.max_step)

    def __call__(self, simcc_x: Any, simcc_y: Any) -> dict[str, torch.Tensor]:
        """Decode the two vectors; returns ``keypoints [B, K, 2]`` in label bins and ``scores [B, K]``."""
        vx, vy = self.vectors("simcc_x", simcc_x), self.vectors("simcc_y", simcc_y)
        if vx.shape[:2] != vy.shape[:2]:
            raise fail(self.label, f"simcc_x {tuple(vx.shape)} and simcc_y {tuple(vy.shape)} must share [B, K]")
        dtype = coordinate_dtype(vx.dtype)
        vx, vy = vx.detach().to(dtype), vy.detach().to(dtype)
        with one_thread_if_small(vx.shape[0] * vx.shape[1] * (vx.shape[2] + vy.shape[2]), vx.device):
            keypoints, scores, (index_x, index_y), peaked = arg_max(vx, vy)
            if self.refine == "dark":  # not on a vector without a peak; never off the vectors
                offsets = torch.stack([self.dark_offsets(vx, index_x, self.blur_kernel[0]),
                                       self.dark_offsets(vy, index_y, self.blur_kernel[1])], -1)
                offsets = torch.where(peaked, offsets, torch.zeros_like(offsets))
                last = torch.tensor([vx.shape[-1] - 1, vy.shape[-1] - 1], dtype=dtype, device=vx.device)
                keypoints = torch.minimum((keypoints + offsets).clamp(min=0), last)
            return {"keypoints": keypoints, "scores": scores}


def arg_max(vx: torch.Tensor, vy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor],
                                                      torch.Tensor]:
    """The FIRST arg-max bin of each vector as ``keypoints [B, K, 2]``, the smaller of the two
    maxima as ``scores`` (0 where not positive), the two index tensors, and whether each
    vector has a peak (``[B, K, 2]``: not flat, maximum positive); :func:`first_argmax` does
    the search (numpy on the CPU, an explicit tie-break elsewhere)."""
    if on_numpy(vx) and on_numpy(vy):  # one image costs a few numpy calls, not a dozen torch ones
        ax, ay = vx.numpy(), vy.numpy()
        ix, iy = ax.argmax(axis=-1), ay.argmax(axis=-1)
        tx, ty = ax.max(axis=-1), ay.max(axis=-1)
        top = np.minimum(tx, ty)
        keypoints = np.stack([ix, iy], axis=-1).astype(ax.dtype)
        peaked = np.stack([(tx > 0) & (tx > ax.min(axis=-1)), (ty > 0) & (ty > ay.min(axis=-1))], axis=-1)
        return (torch.from_numpy(keypoints), torch.from_numpy(np.where(top > 0, top, 0).astype(ax.dtype)),
                (torch.from_numpy(ix), torch.from_numpy(iy)), torch.from_numpy(peaked))
    top_x, index_x, level_x = first_argmax(vx)
    top_y, index_y, level_y = first_argmax(vy)
    score = torch.minimum(top_x, top_y)
    keypoints = torch.stack([index_x, index_y], dim=-1).to(vx.dtype)
    peaked = torch.stack([(top_x > 0) & ~level_x, (top_y > 0) & ~level_y], dim=-1)
    return keypoints, torch.where(score > 0, score, torch.zeros_like(score)), (index_x, index_y), peaked
