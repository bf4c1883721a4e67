"""Sample transforms: top-down crop, random affine, flip, photometric jitter, quantize.

A transform is called ``t(sample, rng)`` and returns a new sample; ``rng`` is the
per-sample :class:`numpy.random.Generator` that :class:`kitpose.data.PipelineDataset`
seeds from (seed, epoch, index). Nothing here touches global random state.

Geometric transforms warp the image once with OpenCV and move everything with it
through the same 2x3 matrix: ``keypoints`` (exact, float), ``visible`` (0 once a
point leaves the image, never back to 1), ``head_size`` (by the map's scale),
``bbox`` (box around the mapped corners), ``keypoints_3d`` and ``camera`` (turned or
mirrored with the picture, see :func:`warp_sample`), and they record ``matrix``:
the accumulated map from the dataset's image to the current one. COCO's ``area``
stays as annotated: OKS is scored in the dataset's image, after predictions are
mapped back (COCOeval's convention). A flip also
swaps left and right joints; :func:`~kitpose_plugins.data.geometry.inverse_points`
(or a geometric transform's ``inverse`` flow method) maps predictions back.

Flip pairs come from the ``flip_pairs`` parameter (a joint-set name such as
``mpii`` / ``coco``, or a list of ``[left, right]`` pairs) or, when omitted, from a
``flip_pairs`` entry of the sample.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from kitpose.errors import KitposeError
from kitpose_plugins.data.geometry import (as_size, box_hull, compose, crop_matrix, inside, inverse_points,
                                            mirror_matrix)
from kitpose_plugins.data.joints import flip_permutation, resolve_pairs

Sample = dict[str, Any]
Transform = Callable[..., Sample]


class TransformError(KitposeError):
    """A transform cannot apply to a sample (missing key, wrong joint count)."""


def _image_size(image: np.ndarray) -> tuple[int, int]:
    return int(image.shape[1]), int(image.shape[0])


def warp_image(image: np.ndarray, matrix: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Bilinear warp; float (depth) images interpolate among valid (non-zero) pixels only.

    Zero means "no reading" in a depth map; averaging it with its neighbours would
    invent near surfaces around every hole, so float images are renormalised by the
    warped validity mask and stay 0 where most of the neighbourhood was empty.
    """
    flags, border = cv2.INTER_LINEAR, cv2.BORDER_CONSTANT
    if image.dtype == np.uint8:
        if image.ndim == 3 and image.shape[2] == 3:  # OpenCV warps 4 channels about twice as fast as 3
            four = cv2.warpAffine(cv2.cvtColor(image, cv2.COLOR_RGB2RGBA), matrix, out_size, flags=flags,
                                  borderMode=border, borderValue=0)
            return cv2.cvtColor(four, cv2.COLOR_RGBA2RGB)
        return cv2.warpAffine(image, matrix, out_size, flags=flags, borderMode=border, borderValue=0)
    image = image.astype(np.float32, copy=False).reshape(image.shape[0], image.shape[1], -1)
    if image.shape[2] != 1:  # several float channels: plain interpolation
        return cv2.warpAffine(image, matrix, out_size, flags=flags, borderMode=border, borderValue=0)
    image = image[..., 0]
    total = cv2.warpAffine(image, matrix, out_size, flags=flags, borderMode=border, borderValue=0)
    valid = (image > 0).astype(np.float32)  # single-channel warps are OpenCV's fast path
    weight = cv2.warpAffine(valid, matrix, out_size, flags=flags, borderMode=border, borderValue=0)
    _, keep = cv2.threshold(weight, 0.4999, 1.0, cv2.THRESH_BINARY)  # 1 where half the weight is valid
    return cv2.multiply(cv2.divide(total, cv2.max(weight, 0.5)), keep)


def warp_sample(sample: Mapping[str, Any], matrix: np.ndarray, out_size: tuple[int, int], *,
                perm: Sequence[int] | None = None, mirror_only: bool = False) -> Sample:
    """Apply one 2x3 ``matrix`` to a sample (image, points, sizes, boxes); record it.

    ``perm`` reorders per-joint arrays after a mirror. ``mirror_only`` says the map is
    an exact horizontal mirror, done by reversing columns instead of interpolating.
    ``keypoints_3d`` (camera frame) turn with the picture: the linear part divided by
    its scale (a rotation, or a mirror that negates X) is applied to (X, Y), and the
    pinhole ``camera`` (fx, fy, cx, cy) takes the rest: focal lengths times the scale,
    principal point through the map. For the similarity maps these transforms make,
    ``keypoints`` stay the exact projections of ``keypoints_3d`` through ``camera``.
    """
    out = dict(sample)
    image = np.asarray(sample["image"])
    warped = cv2.flip(image, 1) if mirror_only else warp_image(image, matrix, out_size)
    out["image"] = warped[..., None] if image.ndim == 3 and warped.ndim == 2 else warped
    (a, b, _), (c, d, _) = matrix.tolist()
    det = a * d - b * c
    scale = math.sqrt(abs(det))
    linear = np.array([[a, b], [c, d]], dtype=np.float32)
    keypoints = (np.asarray(sample["keypoints"], dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
    visible = np.asarray(sample["visible"], dtype=np.float32) * inside(keypoints, out_size)
    out["keypoints"], out["visible"] = keypoints, visible
    if "keypoints_3d" in sample:
        k3 = np.array(sample["keypoints_3d"], dtype=np.float32)
        k3[:, :2] = k3[:, :2] @ (linear.T / np.float32(scale))
        out["keypoints_3d"] = k3
    if "camera" in sample:
        fx, fy, cx, cy = np.asarray(sample["camera"], dtype=np.float64).tolist()
        out["camera"] = np.array([fx * scale, fy * scale, a * cx + b * cy + matrix[0, 2],
                                  c * cx + d * cy + matrix[1, 2]], dtype=np.float32)
    if perm is not None:
        for key in ("keypoints", "visible", "keypoints_3d"):
            if key in out:
                out[key] = out[key][perm]
    if "head_size" in sample:
        out["head_size"] = np.float32(float(sample["head_size"]) * scale)
    if "bbox" in sample:
        out["bbox"] = box_hull(matrix, sample["bbox"])
    previous = sample.get("matrix")
    total = matrix if previous is None else compose(matrix, previous)
    out["matrix"] = np.asarray(total, dtype=np.float32)
    return out


def _is_identity(matrix: np.ndarray) -> bool:
    (a, b, c), (d, e, f) = matrix.tolist()
    return max(abs(a - 1.0), abs(b), abs(c), abs(d), abs(e - 1.0), abs(f)) < 1e-9


def unchanged(sample: Mapping[str, Any]) -> Sample:
    """A copy of ``sample`` that records the identity map when it has no ``matrix`` yet.

    Geometric transforms return it when their random draw leaves the image alone, so
    every sample of a batch carries the key they declare.
    """
    out = dict(sample)
    if "matrix" not in out:
        out["matrix"] = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
    return out


class _Geometric:
    """Shared by geometric transforms: the recorded matrix and its inverse."""

    provides = ("matrix",)
    flow_methods = ("inverse",)
    flip_pairs: tuple[tuple[int, int], ...] | None = None

    def inverse(self, keypoints: Any, matrix: Any) -> Any:
        """Map points from the model input back to the dataset's image (numpy or torch)."""
        return inverse_points(keypoints, matrix, self.flip_pairs)


def _range(value: Any, what: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TransformError(f"{what} must be [low, high], not {value!r}") from None
    if not 0 < lo <= hi:
        raise TransformError(f"{what} must satisfy 0 < low <= high, not {value!r}")
    return lo, hi


def _probability(value: float, what: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise TransformError(f"{what} must be between 0 and 1, not {value}")
    return value


class _Jitter:
    """Random zoom / rotation / shift of a crop box."""

    def __init__(self, scale: Sequence[float], rotation: float, rotation_prob: float, shift: float) -> None:
        self.scale = _range(scale, "scale")
        self.rotation = float(rotation)
        self.rotation_prob = _probability(rotation_prob, "rotation_prob")
        self.shift = float(shift)
        self.active = self.scale != (1.0, 1.0) or self.rotation != 0.0 or self.shift != 0.0

    def draw(self, rng: np.random.Generator) -> tuple[float, float, np.ndarray]:
        """(zoom, degrees, shift as a fraction of the box) for one sample."""
        u = rng.random(5)
        lo, hi = self.scale
        zoom = lo + (hi - lo) * u[0]
        turn = self.rotation * (2.0 * u[2] - 1.0) if self.rotation and u[1] < self.rotation_prob else 0.0
        shift = self.shift * (2.0 * u[3:5] - 1.0)
        return float(zoom), float(turn), shift


def _crop(sample: Mapping[str, Any], center: np.ndarray, size: np.ndarray, rotation: float,
          out_size: tuple[int, int], jitter: _Jitter, rng: np.random.Generator) -> Sample:
    if jitter.active:
        zoom, turn, shift = jitter.draw(rng)
        center = center + shift * size
        size = size / zoom
        rotation = rotation + turn
    matrix = crop_matrix(center, size, rotation, out_size)
    if out_size == _image_size(sample["image"]) and _is_identity(matrix):
        return unchanged(sample)  # nothing to move: skip the interpolation
    return warp_sample(sample, matrix, out_size)


class TopDownAffine(_Geometric):
    """Crop the person box (bbox x padding, at the model's aspect) to input_size with one affine warp.

    ``box: bbox`` crops around the sample's ``bbox`` (x, y, w, h), widened to the
    aspect of ``input_size`` and multiplied by ``padding``; ``box: image`` crops the
    whole image. ``rotation`` turns the crop by a fixed angle (degrees,
    counter-clockwise). ``random_scale`` / ``random_rotation`` / ``random_shift``
    jitter the box before the single warp (no second interpolation, no lost corners),
    which is how top-down datasets (COCO, MPII) are augmented.
    """

    def __init__(self, input_size: int | Sequence[int] = 128, padding: float = 1.25, rotation: float = 0.0,
                 box: str = "bbox", random_scale: Sequence[float] = (1.0, 1.0), random_rotation: float = 0.0,
                 rotation_prob: float = 1.0, random_shift: float = 0.0) -> None:
        self.input_size = as_size(input_size, "input_size")
        if box not in ("bbox", "image"):
            raise TransformError(f"box must be 'bbox' or 'image', not {box!r}")
        if float(padding) <= 0:
            raise TransformError(f"padding must be positive, not {padding}")
        self.padding, self.rotation, self.box = float(padding), float(rotation), box
        self.jitter = _Jitter(random_scale, random_rotation, rotation_prob, random_shift)

    def box_of(self, sample: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(centre, size) of the crop box before jitter, at the aspect of ``input_size``."""
        if self.box == "image":
            w, h = _image_size(sample["image"])
            center, size = np.array([(w - 1) / 2.0, (h - 1) / 2.0]), np.array([float(w), float(h)])
        else:
            if "bbox" not in sample:
                raise TransformError("top_down_affine with box: bbox needs a 'bbox' in the sample",
                                     hint="use a dataset that provides bbox, or set box: image")
            x, y, w, h = (float(v) for v in sample["bbox"])
            if not (w > 0 and h > 0 and math.isfinite(x + y + w + h)):
                raise TransformError(f"bbox {[x, y, w, h]} is empty or not finite",
                                     hint="the dataset should drop such instances")
            center, size = np.array([x + w / 2.0, y + h / 2.0]), np.array([w, h])
        aspect = self.input_size[0] / self.input_size[1]
        if size[0] > aspect * size[1]:
            size = np.array([size[0], size[0] / aspect])
        else:
            size = np.array([size[1] * aspect, size[1]])
        return center, size * self.padding

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator) -> Sample:
        center, size = self.box_of(sample)
        return _crop(sample, center, size, self.rotation, self.input_size, self.jitter, rng)


class RandomAffine(_Geometric):
    """Randomly zoom, rotate and shift the whole image about its centre, keeping its size.

    ``scale``: [low, high] zoom of the content (1.2 = 20 % larger); ``rotation``:
    largest angle in degrees, drawn uniformly in [-rotation, rotation] with
    probability ``rotation_prob``; ``shift``: largest shift as a fraction of the
    image size. For full-size images with a box, prefer ``top_down_affine``'s random
    options, which crop and augment in one warp.
    """

    def __init__(self, scale: Sequence[float] = (0.75, 1.25), rotation: float = 30.0,
                 rotation_prob: float = 0.6, shift: float = 0.0) -> None:
        self.jitter = _Jitter(scale, rotation, rotation_prob, shift)

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator) -> Sample:
        w, h = _image_size(sample["image"])
        center, size = np.array([(w - 1) / 2.0, (h - 1) / 2.0]), np.array([float(w), float(h)])
        if not self.jitter.active:
            return unchanged(sample)
        return _crop(sample, center, size, 0.0, (w, h), self.jitter, rng)


class RandomFlip(_Geometric):
    """Mirror the image left-right with probability prob, swapping left and right joints.

    ``flip_pairs``: a joint-set name (``mpii`` for MPII and the synthetic data,
    ``coco``) or a list of ``[left, right]`` index pairs; when omitted the sample's
    own ``flip_pairs`` entry is used.
    """

    def __init__(self, flip_pairs: str | Sequence[Sequence[int]] | None = None, prob: float = 0.5) -> None:
        self.flip_pairs = resolve_pairs(flip_pairs) if flip_pairs is not None else None
        self.prob = _probability(prob, "prob")

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator) -> Sample:
        if not rng.random() < self.prob:
            return unchanged(sample)
        pairs = self.flip_pairs
        if pairs is None:
            if "flip_pairs" not in sample:
                raise TransformError("random_flip needs flip_pairs",
                                     hint="set flip_pairs: mpii | coco | [[left, right], ...]")
            pairs = resolve_pairs(np.asarray(sample["flip_pairs"]).tolist())
        perm = flip_permutation(len(sample["keypoints"]), pairs)
        w, h = _image_size(sample["image"])
        return warp_sample(sample, mirror_matrix(w), (w, h), perm=perm, mirror_only=True)


class PhotometricJitter:
    """Random brightness, contrast, saturation and Gaussian noise (colour, grey or depth images).

    Factors are drawn uniformly: contrast in [1 - contrast, 1 + contrast], brightness
    shift in [-brightness, brightness] (a fraction of the full range), saturation in
    [1 - saturation, 1 + saturation] (colour only); ``noise`` is the standard
    deviation as a fraction of the full range. For float (depth) images the shifts
    apply to valid pixels only; zeros (no reading) stay zero.
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2,
                 noise: float = 0.0, prob: float = 1.0) -> None:
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation),
                            ("noise", noise)):
            if not 0.0 <= float(value) <= 1.0:
                raise TransformError(f"{name} must be between 0 and 1, not {value}")
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.noise = float(saturation), float(noise)
        self.prob = _probability(prob, "prob")

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator) -> Sample:
        out = dict(sample)
        if not rng.random() < self.prob:
            return out
        gain = 1.0 + rng.uniform(-self.contrast, self.contrast)
        bias = rng.uniform(-self.brightness, self.brightness)
        sat = 1.0 + rng.uniform(-self.saturation, self.saturation)
        image = np.asarray(sample["image"])
        if image.dtype == np.uint8:
            levels = np.arange(256, dtype=np.float32)
            table = np.clip((levels - 127.5) * gain + 127.5 + 255.0 * bias, 0, 255).astype(np.uint8)
            result = cv2.LUT(image, table).reshape(image.shape)
            if result.ndim == 3 and result.shape[2] == 3 and self.saturation:
                grey = cv2.cvtColor(result, cv2.COLOR_RGB2GRAY)
                result = cv2.addWeighted(result, sat, cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), 1.0 - sat, 0.0)
            if self.noise:
                noisy = result.astype(np.float32) + rng.normal(0.0, 255.0 * self.noise, result.shape).astype(np.float32)
                result = np.clip(noisy, 0, 255).astype(np.uint8)
        else:
            image = image.astype(np.float32)
            valid = image > 0
            result = image * np.float32(gain) + np.float32(bias)
            if self.noise:
                result += rng.normal(0.0, self.noise, image.shape).astype(np.float32)
            result = np.where(valid, np.maximum(result, 0.0), 0.0).astype(np.float32)
        out["image"] = result
        return out


class Quantize:
    """Round keypoints to the input (stride 1) or heatmap grid ("w/ quant"); enabled: false is "w/o quant".

    A heatmap index k sits at input coordinate k * stride (MSRA convention), so the
    rounded point is ``floor(x / stride + 0.5) * stride``: with stride = the
    encoder's stride this is the standard quantised target. Use it in the training
    split only, so that evaluation compares against exact coordinates.
    """

    def __init__(self, enabled: bool = True, stride: float = 1.0) -> None:
        if float(stride) <= 0:
            raise TransformError(f"stride must be positive, not {stride}")
        self.enabled, self.stride = bool(enabled), float(stride)

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator | None = None) -> Sample:
        out = dict(sample)
        if self.enabled:
            kp = np.asarray(sample["keypoints"], dtype=np.float64)
            out["keypoints"] = (np.floor(kp / self.stride + 0.5) * self.stride).astype(np.float32)
        return out
