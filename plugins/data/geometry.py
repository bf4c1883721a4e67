"""2x3 affine maps between image frames, and their exact inverse.

Conventions (DESIGN.md): points are (x, y) pixels and the centre of pixel (row i,
column j) is at (x=j, y=i), the convention ``cv2.warpAffine`` uses, so one matrix
moves the image and its keypoints together. A crop maps a box of ``size`` pixels
centred on ``center`` onto an output of ``out_size`` pixels edge to edge: the output
spans [-0.5, w - 0.5], its centre (w - 1) / 2 is the box centre and one output pixel
is ``size / out_size`` input pixels; a crop of the whole image is the identity.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from kitpose_plugins.data.joints import flip_permutation


def as_size(value: Any, what: str = "size") -> tuple[int, int]:
    """``(width, height)`` from an int or a ``[width, height]`` pair."""
    from kitpose.errors import KitposeError

    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        w = h = int(value)
    else:
        try:
            w, h = (int(v) for v in value)
        except (TypeError, ValueError):
            raise KitposeError(f"{what} must be an int or [width, height], not {value!r}") from None
    if w < 2 or h < 2:
        raise KitposeError(f"{what} must be at least 2 pixels, not {value!r}")
    return w, h


def compose(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The 2x3 map that applies ``before`` then ``after`` (float64)."""
    (a, b, c), (d, e, f) = np.asarray(after, dtype=np.float64).tolist()
    (p, q, r), (s, t, u) = np.asarray(before, dtype=np.float64).tolist()
    return np.array([[a * p + b * s, a * q + b * t, a * r + b * u + c],
                     [d * p + e * s, d * q + e * t, d * r + e * u + f]])


def crop_matrix(center: Sequence[float], size: Sequence[float], rotation: float,
                out_size: tuple[int, int]) -> np.ndarray:
    """Map the box (``center``, ``size`` = w, h, turned by ``rotation`` degrees) onto ``out_size``.

    A positive ``rotation`` turns the picture counter-clockwise on screen, as
    ``cv2.getRotationMatrix2D`` does.
    """
    w_out, h_out = out_size
    sx, sy = w_out / float(size[0]), h_out / float(size[1])
    theta = math.radians(rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    a, b, c, d = sx * cos, sx * sin, -sy * sin, sy * cos
    x, y = float(center[0]), float(center[1])
    return np.array([[a, b, (w_out - 1) / 2.0 - a * x - b * y],
                     [c, d, (h_out - 1) / 2.0 - c * x - d * y]])


def mirror_matrix(width: int) -> np.ndarray:
    """The horizontal mirror of an image ``width`` pixels wide: x -> width - 1 - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def box_hull(matrix: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """The axis-aligned box (x, y, w, h) around an (x, y, w, h) box's mapped corners."""
    (a, b, c), (d, e, f) = np.asarray(matrix, dtype=np.float64).tolist()
    x, y, w, h = np.asarray(bbox, dtype=np.float64).tolist()
    xs = [a * px + b * py + c for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))]
    ys = [d * px + e * py + f for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))]
    return np.array([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], dtype=np.float32)


def inverse_points(points: Any, matrix: Any, flip_pairs: Sequence[tuple[int, int]] | None = None) -> Any:
    """Map points from the model input back to the original image.

    ``points`` [..., K, 2] and ``matrix`` [..., 2, 3] (the ``matrix`` a geometric
    transform recorded: original image -> model input) are numpy arrays or torch
    tensors, batched or not. Where the matrix mirrors (negative determinant), joints
    were swapped by a flip; ``flip_pairs`` swaps them back. Works on any device.
    """
    torch_like = type(points).__module__.startswith("torch")
    if torch_like:
        import torch

        xp_stack, xp_where = torch.stack, torch.where
        matrix = matrix.to(points.dtype) if hasattr(matrix, "to") else torch.as_tensor(matrix, dtype=points.dtype)
    else:
        xp_stack, xp_where = np.stack, np.where
        points = np.asarray(points, dtype=np.float64)
        matrix = np.asarray(matrix, dtype=np.float64)
    a, b, tx = matrix[..., 0, 0, None], matrix[..., 0, 1, None], matrix[..., 0, 2, None]
    c, d, ty = matrix[..., 1, 0, None], matrix[..., 1, 1, None], matrix[..., 1, 2, None]
    det = a * d - b * c
    x, y = points[..., 0] - tx, points[..., 1] - ty
    out = xp_stack([(d * x - b * y) / det, (a * y - c * x) / det], -1)
    mirrored = det[..., 0] < 0
    if flip_pairs:
        perm = flip_permutation(out.shape[-2], flip_pairs)
        out = xp_where(mirrored[..., None, None], out[..., perm, :], out)
    elif bool(mirrored.any()):
        from kitpose.errors import KitposeError

        raise KitposeError("the matrix mirrors the image but no flip_pairs were given to undo the joint swap",
                           hint="pass the dataset's flip_pairs")
    return out


def inside(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """1.0 where a point lies on the image (pixel centres 0..w-1, edges at -0.5 and w-0.5)."""
    w, h = size
    half = np.array([w / 2.0, h / 2.0], dtype=np.float32)
    return (np.abs(points - (half - 0.5)) <= half).all(axis=-1).astype(np.float32)
