"""Pictures of what the model does, drawn with OpenCV on numpy arrays.

Used by the ``figures`` monitor (PNG files) and the ``visdom`` monitor (image panels),
so both show the same thing: predicted skeletons in red, ground truth in cyan,
heatmaps as a colour map over the image. Images are BGR ``uint8`` (OpenCV's order)
until :func:`to_rgb` turns them around for a viewer that expects RGB.

Coordinates follow the kitpose convention: the centre of pixel (row i, column j) is
at (x=j, y=i); an image shown ``scale`` times larger maps x to ``(x + 0.5) * scale - 0.5``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from kitpose_plugins.monitors.figures.series import branch_label

#: BGR colours: predictions red, ground truth cyan
RED = (0, 0, 255)
CYAN = (255, 255, 0)
WHITE = (255, 255, 255)
_SHIFT = 4  # sub-pixel bits for cv2 drawing
_DISPLAY = 192  # small images are enlarged to about this many pixels


def to_bgr(image: Any, *, depth: bool = False) -> np.ndarray:
    """One image as BGR uint8 ``[H, W, 3]``, the picture that skeletons are drawn on.

    Takes ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` (C = 1, 3 or 4, RGB order as kitpose
    images are; a fourth channel is dropped). uint8 is shown as it is. Other types are
    intensities: [0, 1] is scaled to [0, 255] (model inputs), and images outside [0, 1]
    (normalised inputs) are stretched to their own range so they stay visible whatever
    normalisation the recipe uses; non-finite values count as 0. With ``depth`` (a
    dataset's samples, where a non-uint8 single-channel image is a depth map) such an
    image is drawn by :func:`depth_to_grey` instead.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.transpose(array, (1, 2, 0))  # [C, H, W] -> [H, W, C]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype != np.uint8:
        array = array.astype(np.float32)
        finite = np.isfinite(array)
        array = np.where(finite, array, 0.0)
        if depth and array.shape[2] == 1:
            array = depth_to_grey(array)
        else:
            low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
            if low < 0.0 or high > 1.0:
                array = (array - low) / max(high - low, 1e-12)
            array = np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8)
    channels = array.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2))
    if channels == 4:
        array = array[:, :, :3]
    # kitpose images are RGB; OpenCV draws in BGR
    return np.ascontiguousarray(array[:, :, ::-1])


def depth_to_grey(depth: np.ndarray) -> np.ndarray:
    """A depth map (0 = no reading) as uint8 grey of the same shape: no reading is black and
    near is bright, from 40 to 255 between the 1st and 99th percentile of the readings, so
    a figure stands out from its background whatever the depth units."""
    valid = depth > 0
    if not valid.any():
        return np.zeros(depth.shape, np.uint8)
    lo, hi = np.percentile(depth[valid], [1, 99])
    scaled = 1.0 - (depth - lo) / max(float(hi - lo), 1e-6)
    return np.where(valid, np.clip(40 + 215 * scaled, 0, 255), 0).astype(np.uint8)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """BGR ``[H, W, 3]`` to RGB ``[H, W, 3]`` (a copy)."""
    return np.ascontiguousarray(image[:, :, ::-1])


def display_scale(height: int, width: int, target: int = _DISPLAY) -> int:
    """Integer enlargement that brings a small image near ``target`` pixels (1 for large ones)."""
    return max(1, int(round(target / max(1, height, width))))


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (keeps pixels honest)."""
    if scale == 1:
        return image.copy()
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def _fixed_point(xy: np.ndarray, scale: int) -> np.ndarray:
    shown = (np.asarray(xy, dtype=np.float64) + 0.5) * scale - 0.5
    return np.round(shown * (1 << _SHIFT)).astype(np.int64)


def draw_skeleton(image: np.ndarray, keypoints: Any, visible: Any = None,
                  skeleton: Sequence[tuple[int, int]] = (), color: tuple[int, int, int] = RED,
                  scale: int = 1) -> np.ndarray:
    """Draw joints and limbs on ``image`` (in place; also returned).

    ``keypoints`` [K, 2] in pixels of the image before enlargement by ``scale`` ([K, 3]
    (u, v, depth) draws u, v); joints with ``visible`` <= 0 or non-finite coordinates are
    left out, and so are limbs touching them.
    """
    points = np.asarray(keypoints, dtype=np.float64)
    points = points[:, :2] if points.ndim == 2 else points.reshape(-1, 2)
    shown = np.isfinite(points).all(axis=1)
    if visible is not None:
        shown &= np.asarray(visible, dtype=np.float64).reshape(-1)[: len(points)] > 0
    fixed = _fixed_point(np.where(np.isfinite(points), points, 0.0), scale)
    size = max(image.shape[:2])
    thickness = max(1, int(round(size / 160)))
    radius = max(2, int(round(size / 90)))
    for a, b in skeleton:
        if 0 <= a < len(points) and 0 <= b < len(points) and shown[a] and shown[b]:
            cv2.line(image, tuple(int(v) for v in fixed[a]), tuple(int(v) for v in fixed[b]),
                     color, thickness, cv2.LINE_AA, _SHIFT)
    for k in np.flatnonzero(shown):
        cv2.circle(image, tuple(int(v) for v in fixed[k]), radius << _SHIFT, color, -1,
                   cv2.LINE_AA, _SHIFT)
    return image


def heatmap_overlay(image: np.ndarray, heatmaps: Any, alpha: float = 0.55) -> np.ndarray:
    """The maximum over joints of ``heatmaps`` [K, h, w] as a colour map over ``image``.

    Each overlay is scaled to its own maximum, so a faint early prediction is as
    readable as a confident one; a heatmap that is all zero shows as the image.
    """
    maps = np.asarray(heatmaps, dtype=np.float32)
    if maps.ndim == 4:  # [K, d, h, w] volumes: look from the front
        maps = maps.max(axis=1)
    if maps.ndim == 3:
        maps = maps.max(axis=0)
    maps = np.where(np.isfinite(maps), maps, 0.0)
    maps = np.clip(maps, 0.0, None)
    peak = float(maps.max(initial=0.0))
    if peak > 0:
        maps = maps / peak
    gray = np.clip(maps * 255.0 + 0.5, 0, 255).astype(np.uint8)
    height, width = image.shape[:2]
    gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap(gray, cv2.COLORMAP_JET)
    dimmed = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(colored, alpha, dimmed, 1.0 - alpha, 0.0)


def caption(image: np.ndarray, text: str, color: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Write ``text`` in the top-left corner on a dark band (in place; also returned)."""
    if not text:
        return image
    height, width = image.shape[:2]
    font_scale = max(0.35, min(0.8, width / 420))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    band = min(height, th + base + 6)
    image[:band, : min(width, tw + 8)] = (image[:band, : min(width, tw + 8)] * 0.35).astype(np.uint8)
    cv2.putText(image, text, (4, th + 3), cv2.FONT_HERSHEY_SIMPLEX, font_scale, color, 1, cv2.LINE_AA)
    return image


def grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 4, background: int = 255) -> np.ndarray:
    """Tiles (BGR, any sizes) laid out in rows and columns on a plain background."""
    rows = [list(r) for r in rows if len(r)]
    if not rows:
        return np.full((8, 8, 3), background, np.uint8)
    n_cols = max(len(r) for r in rows)
    heights = [max(t.shape[0] for t in r) for r in rows]
    widths = [max((r[c].shape[1] for r in rows if c < len(r)), default=0) for c in range(n_cols)]
    canvas = np.full((sum(heights) + pad * (len(rows) + 1), sum(widths) + pad * (n_cols + 1), 3),
                     background, np.uint8)
    y = pad
    for r, row in enumerate(rows):
        x = pad
        for c, tile in enumerate(row):
            canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
            x += widths[c] + pad
        y += heights[r] + pad
    return canvas


def header(image: np.ndarray, parts: Sequence[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """``image`` with a white band on top holding coloured text parts (a legend)."""
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    (_, th), base = cv2.getTextSize("Ag", font, font_scale, 1)
    band = np.full((th + base + 10, image.shape[1], 3), 255, np.uint8)
    x = 6
    for text, color in parts:
        cv2.putText(band, text, (x, th + 5), font, font_scale, color, 1, cv2.LINE_AA)
        x += cv2.getTextSize(text + "  ", font, font_scale, 1)[0][0]
    return np.concatenate([band, image], axis=0)


def _take(array: Any, n: int) -> np.ndarray | None:
    if array is None:
        return None
    array = np.asarray(array)
    return array[:n] if array.ndim >= 1 else None


def snapshot_panels(snapshot: Any, samples: int = 4, skeleton: Sequence[tuple[int, int]] = (),
                    show: Mapping[str, str | None] | None = None) -> dict[str, np.ndarray]:
    """The pictures of one :class:`kitpose.monitor.Snapshot` as BGR images, by panel.

    ``input``: the images; ``target`` and ``heatmaps``: ground-truth and predicted
    heatmaps over the images; ``skeletons``: one row per sample, one column per
    decoder, ground truth cyan and prediction red. ``show`` names the tensors of the
    three pictures (:data:`~kitpose_plugins.monitors.figures.show.SHOW` by default).
    Panels whose data the snapshot lacks are left out.
    """
    from kitpose_plugins.monitors.figures.show import SHOW

    names = {**SHOW, **(show or {})}
    images = _take(snapshot.get("image"), samples)
    if images is None or images.ndim < 3 or len(images) == 0:
        return {}
    n = len(images)
    bases = [to_bgr(images[i]) for i in range(n)]
    scale = display_scale(*bases[0].shape[:2])
    bases = [enlarge(b, scale) for b in bases]
    pairs = tuple(tuple(int(v) for v in p) for p in (skeleton or ()))
    panels = {"input": grid([bases])}
    for key in ("target", "heatmaps"):
        maps = _take(snapshot.get(names[key]) if names[key] else None, n)
        if maps is not None and maps.ndim >= 3 and len(maps) == n:
            panels[key] = grid([[heatmap_overlay(bases[i], maps[i]) for i in range(n)]])
    keypoints = _take(snapshot.get("keypoints"), n)
    visible = _take(snapshot.get("visible"), n)
    predictions: Mapping[str, Any] = snapshot.per_branch(names["keypoints"]) if names["keypoints"] else {}
    rows = []
    for i in range(n):
        row = []
        for branch, pred in predictions.items():
            pred = _take(pred, n)
            tile = bases[i].copy()
            if keypoints is not None and i < len(keypoints):
                draw_skeleton(tile, keypoints[i], None if visible is None else visible[i], pairs, CYAN, scale)
            if pred is not None and i < len(pred):
                draw_skeleton(tile, pred[i], None, pairs, RED, scale)
            row.append(caption(tile, branch_label(branch)) if i == 0 else tile)
        if not row and keypoints is not None and i < len(keypoints):
            tile = bases[i].copy()
            row.append(draw_skeleton(tile, keypoints[i], None if visible is None else visible[i],
                                     pairs, CYAN, scale))
        rows.append(row)
    if any(rows):
        panels["skeletons"] = grid(rows)
    return panels


def limit_size(image: np.ndarray, longest: int = 1024) -> np.ndarray:
    """Shrink ``image`` so that its longer side is at most ``longest`` pixels."""
    height, width = image.shape[:2]
    factor = longest / max(height, width)
    if factor >= 1:
        return image
    size = (max(1, int(math.floor(width * factor))), max(1, int(math.floor(height * factor))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
