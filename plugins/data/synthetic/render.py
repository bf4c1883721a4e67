"""Drawing synthetic scenes with OpenCV: capsules, clutter, occluders, noise.

Shapes are convex polygons drawn with ``cv2.fillConvexPoly`` at 1/16-pixel
precision (``shift=4``) and anti-aliased edges, so a limb ends where its joint
projects, to a fraction of a pixel. Scenes are painted far to near. Anti-aliasing in
OpenCV needs 8-bit images, so depth is painted as 8-bit codes (255 = ``max_depth``)
and turned into float metres / ``max_depth`` afterwards, where sensor noise and
holes are added.
"""
from __future__ import annotations

import cv2
import numpy as np

SHIFT = 4
_ONE = 1 << SHIFT
_ARC = 8  # polygon points per capsule end
_HALF = np.linspace(-np.pi / 2, np.pi / 2, _ARC)
_COS, _SIN = np.cos(_HALF), np.sin(_HALF)


def capsules(a: np.ndarray, b: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Polygons [P, 16, 2] outlining capsules from ``a`` [P, 2] to ``b`` [P, 2] with ``radius`` [P].

    Half a circle around ``b`` then half a circle around ``a``, counter-clockwise.
    """
    d = b - a
    length = np.sqrt((d * d).sum(axis=1, keepdims=True))
    unit = np.where(length > 1e-9, d / np.maximum(length, 1e-9), np.array([1.0, 0.0]))
    ux, uy = unit[:, :1], unit[:, 1:]
    arc = np.stack([ux * _COS - uy * _SIN, uy * _COS + ux * _SIN], axis=-1) * radius[:, None, None]
    return np.concatenate([b[:, None] + arc, a[:, None] - arc], axis=1)


def fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates as OpenCV fixed-point integers (``shift=SHIFT``)."""
    return np.rint(points * _ONE).astype(np.int32)


def fill(canvas: np.ndarray, polygons: np.ndarray, colours: np.ndarray) -> None:
    """Paint polygons [P, N, 2] (fixed point) in order, each with its colour row."""
    for poly, colour in zip(polygons, colours.tolist()):
        cv2.fillConvexPoly(canvas, poly, colour, cv2.LINE_AA, SHIFT)


def random_shapes(u: np.ndarray, regions: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, ...]:
    """Random convex shapes (bars, boxes, blobs) from uniforms ``u`` [count, 6].

    Shape ``i`` has its centre in ``regions[i]`` (x0, y0, x1, y1) and a size of
    ``scales[i]`` (low, high) times ``regions``' reference length (column 4).
    Returns capsule ends ``a``, ``b`` [count, 2], ``radius`` [count] and ``boxy``
    [count] (draw the capsule's bounding rectangle instead).
    """
    lo, hi = regions[:, 0:2], regions[:, 2:4]
    centre = lo + (hi - lo) * u[:, 0:2]
    extent = regions[:, 4] * (scales[:, 0] + (scales[:, 1] - scales[:, 0]) * u[:, 2])
    angle = np.pi * u[:, 3]
    aspect = 0.15 + 0.85 * u[:, 4]  # thin bars look like limbs: hard negatives
    half = np.stack([np.cos(angle), np.sin(angle)], axis=1) * (0.5 * extent * (1.0 - aspect))[:, None]
    return centre - half, centre + half, 0.5 * extent * aspect, u[:, 5] < 0.35


def make_boxy(outlines: np.ndarray, boxy: np.ndarray) -> np.ndarray:
    """Turn the chosen capsule outlines into their rectangles (same point count)."""
    if boxy.any():
        corners = outlines[boxy][:, [0, _ARC - 1, _ARC, 2 * _ARC - 1]]
        outlines[boxy] = np.repeat(corners, _ARC // 2, axis=1)
    return outlines


class NoiseBank:
    """A pre-drawn noise texture; each sample uses a window at a random offset (cheap, seeded).

    ``colour``: int16 additive noise of standard deviation ``amplitude`` grey levels.
    ``depth``: float32 multiplicative noise ``1 + amplitude * N(0, 1)``, zero in
    blotches covering ``holes`` of the area (missing sensor readings).
    """

    def __init__(self, seed: int, size: tuple[int, int], kind: str, amplitude: float, holes: float = 0.0) -> None:
        w, h = size
        rng = np.random.default_rng([int(seed), 0x4E015E])
        self.size = size
        normal = rng.standard_normal((2 * h, 2 * w, 3 if kind == "colour" else 1), dtype=np.float32)
        if kind == "colour":
            self.table = np.rint(normal * amplitude).astype(np.int16)
        else:
            table = 1.0 + np.float32(amplitude) * normal[..., 0]
            if holes > 0:
                blotches = cv2.GaussianBlur(rng.standard_normal((2 * h, 2 * w), dtype=np.float32), (0, 0), 1.5)
                table[blotches > np.quantile(blotches, 1.0 - holes)] = 0.0
            self.table = table.astype(np.float32)

    def window(self, u: np.ndarray) -> np.ndarray:
        """The window at offsets given by two uniforms ``u``."""
        w, h = self.size
        ox, oy = int(u[0] * w), int(u[1] * h)
        return self.table[oy:oy + h, ox:ox + w]


def colour_background(u: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A smooth two-way colour gradient from 12 uniforms ``u``, H x W x 3 uint8."""
    corners = (20 + 215 * u[:12]).astype(np.uint8).reshape(2, 2, 3)
    return cv2.resize(corners, size, interpolation=cv2.INTER_LINEAR)


def depth_background(u: np.ndarray, size: tuple[int, int], focal: float, max_depth: float) -> np.ndarray:
    """Depth codes (uint8, 255 = max_depth) of a tilted back wall and a floor from 5 uniforms, H x W."""
    w, h = size
    wall = 0.55 + 0.3 * u[0]  # fraction of max_depth
    tx, ty = (u[1:3] - 0.5) * 0.3
    corners = np.rint(255.0 * np.array([[wall - tx - ty, wall + tx - ty],
                                        [wall - tx + ty, wall + tx + ty]])).astype(np.uint8)
    plane = cv2.resize(corners, size, interpolation=cv2.INTER_LINEAR)
    rows = np.arange(h, dtype=np.float64) - h * (0.35 + 0.4 * u[3])
    reach = 255.0 * focal * (900.0 + 700.0 * u[4]) / max_depth
    floor = np.where(rows > 0, np.clip(reach / np.maximum(rows, 1e-3), 1.0, 255.0), 255.0).astype(np.uint8)
    return np.minimum(plane, floor[:, None])
