"""``kitpose preview``: a PNG grid of a recipe's samples with keypoints and skeleton drawn.

Samples come out of the recipe's own data pipeline (dataset and transforms, seeded
as in a run), so the picture shows exactly what a model is fed. Left joints and
limbs are orange, right ones blue, middle ones yellow; joints that are not visible
are left out; the person box is a thin grey frame.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kitpose.errors import KitposeError
from kitpose_plugins.monitors.figures.draw import to_bgr as figure_bgr

SHIFT = 4
_ONE = 1 << SHIFT
# BGR
LEFT, RIGHT, MIDDLE, BOX = (0, 140, 255), (255, 120, 0), (0, 220, 255), (170, 170, 170)


def side_of(name: str) -> str:
    """'left', 'right' or 'middle' from a joint name (``l_knee``, ``left_eye``, ``r_hip`` ...)."""
    low = name.lower()
    if low.startswith(("l_", "left")):
        return "left"
    if low.startswith(("r_", "right")):
        return "right"
    return "middle"


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A sample's image (uint8 RGB or grey, float depth) as a viewable H x W x 3 uint8 BGR picture.

    The figures' :func:`~kitpose_plugins.monitors.figures.draw.to_bgr`, told that a
    single-channel float image of a dataset is a depth map.
    """
    return figure_bgr(image, depth=True)


def draw_sample(sample: Mapping[str, Any], skeleton: Sequence[tuple[int, int]], joint_names: Sequence[str],
                tile: int = 192, label: str = "") -> np.ndarray:
    """One sample drawn into a ``tile`` x ``tile`` picture (image scaled to fit, keypoints with it)."""
    picture = to_bgr(sample["image"])
    h, w = picture.shape[:2]
    s = tile / max(w, h)
    picture = cv2.resize(picture, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((tile, tile, 3), 32, np.uint8)
    canvas[:picture.shape[0], :picture.shape[1]] = picture
    # pixel-centre convention: x' = (x + 0.5) * s - 0.5
    points = (np.asarray(sample["keypoints"], dtype=np.float64)[:, :2] + 0.5) * s - 0.5
    visible = np.asarray(sample.get("visible", np.ones(len(points))), dtype=np.float64) > 0
    sides = [side_of(n) for n in joint_names] if joint_names else ["middle"] * len(points)
    colour = {"left": LEFT, "right": RIGHT, "middle": MIDDLE}
    fixed = np.rint(points * _ONE).astype(np.int64)
    if "bbox" in sample:
        x, y, bw, bh = (float(v) for v in np.asarray(sample["bbox"]).reshape(4))
        corners = np.rint((np.array([[x, y], [x + bw, y + bh]]) + 0.5) * s * _ONE - 0.5 * _ONE).astype(np.int64)
        cv2.rectangle(canvas, tuple(corners[0].tolist()), tuple(corners[1].tolist()), BOX, 1, cv2.LINE_AA, SHIFT)
    width = max(2, round(tile / 80))
    for i, j in skeleton:
        if i < len(points) and j < len(points) and visible[i] and visible[j]:
            side = sides[j] if sides[j] != "middle" else sides[i]
            cv2.line(canvas, tuple(fixed[i].tolist()), tuple(fixed[j].tolist()), colour[side], width,
                     cv2.LINE_AA, SHIFT)
    radius = max(2.5, tile / 64)
    for k in np.flatnonzero(visible):  # a dark rim, then the joint's colour
        centre = tuple(fixed[k].tolist())
        cv2.circle(canvas, centre, round((radius + 1) * _ONE), (0, 0, 0), -1, cv2.LINE_AA, SHIFT)
        cv2.circle(canvas, centre, round(radius * _ONE), colour[sides[k]], -1, cv2.LINE_AA, SHIFT)
    if label:
        cv2.putText(canvas, label, (4, tile - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def grid(tiles: Sequence[np.ndarray], cols: int | None = None, gap: int = 2) -> np.ndarray:
    """Tiles of one size laid out in rows of ``cols`` (about square by default)."""
    if not tiles:
        raise KitposeError("nothing to draw: the split has no sample")
    cols = cols or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    th, tw = tiles[0].shape[:2]
    out = np.zeros((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        out[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw] = t
    return out


def preview(recipe_path: str, overrides: Sequence[str] = (), split: str = "train", count: int = 16,
            output: str | Path = "preview.png", tile: int = 192) -> tuple[Path, int]:
    """Draw ``count`` samples of a recipe's split into ``output``; returns (path, samples drawn)."""
    import kitpose
    from kitpose.data import INVALID_KEY, build_split, parse_split
    from kitpose.recipe import load_recipe

    if count < 1:
        raise KitposeError(f"-n must be at least 1, not {count}")
    recipe = load_recipe(recipe_path, overrides)
    registry = kitpose.get_registry()
    spec = parse_split(recipe, registry, split)
    dataset = build_split(spec, registry, seed=int(recipe.select("seed", 0) or 0))
    n = min(count, len(dataset))
    skeleton = tuple(getattr(dataset, "skeleton", ()) or ())
    names = tuple(getattr(dataset, "joint_names", ()) or ())
    samples = ((i, dataset[i]) for i in range(n))  # an unreadable one (skip_invalid) is not drawn
    tiles = [draw_sample(sample, skeleton, names, tile, label=f"#{i}") for i, sample in samples
             if INVALID_KEY not in sample]
    if not tiles:
        raise KitposeError(f"none of the first {n} samples of the {split} split can be read", file=recipe.file,
                           path=f"data.{split}", hint="see the skipped files named above")
    path = Path(output)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), grid(tiles)):
        raise KitposeError("cannot write the picture", file=str(path),
                           hint="give a writable path ending in .png with -o")
    return path, len(tiles)


def run(args: argparse.Namespace) -> int:
    """The ``kitpose preview`` handler."""
    path, n = preview(args.recipe, args.overrides, split=args.split, count=args.count, output=args.output,
                      tile=args.tile)
    print(f"wrote {path} ({n} samples of split '{args.split}')")
    return 0
