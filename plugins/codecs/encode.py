"""The shared body of every heatmap encoder: input checks, visibility, coordinate maps, flip.

A concrete encoder says whether a joint at given heatmap cells ``[B, K, n]`` can be
represented on its maps (:meth:`HeatmapEncoder.representable`) and draws them
(:meth:`HeatmapEncoder.draw`). Everything is batched over samples and joints and runs on
the device of the keypoints; half-precision keypoints are drawn in float32 and returned
in their own dtype.

Visibility (``visibility``), as each codebase reads a visibility value ``v``:

- ``any`` (kitpose): a joint is drawn when ``v > 0``, with weight 1;
- ``darkpose`` (DarkPose, HRNet): the weight is ``v``, 0 when the joint cannot be drawn;
  the joint is drawn when ``v > 0.5``;
- ``mmpose`` (mmpose 1.x): a joint with ``v < 0.5`` is skipped and keeps weight ``v``; the
  others are drawn with weight ``v``, or get weight 0 when they cannot be drawn.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from kitpose_plugins.codecs.common import (CPU, SMALL_WORK, as_tensor, choice, coordinate_dtype, defined_together, fail,
                                           on_numpy, one_thread_if_small)
from kitpose_plugins.codecs.flip import flip_back
from kitpose_plugins.codecs.grid import Grid


class HeatmapEncoder:
    """Base class: ``enc(keypoints=[B, K, n], visible=[B, K])`` -> ``heatmaps``, ``weights``."""

    outputs = ("heatmaps", "weights")
    flow_methods = ("to_heatmap", "to_image")
    label = "encoder"

    visibility = "any"

    def __init__(self, grid: Grid, visibility: str = "any") -> None:
        self.grid = grid
        self.set_visibility(visibility)

    def set_visibility(self, visibility: str) -> None:
        """Check and keep the visibility rule (see the module docstring)."""
        self.visibility = choice(self.label, "visibility", visibility, VISIBILITY)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """``(w, h)`` of the maps."""
        return self.grid.sizes[0], self.grid.sizes[1]

    def to_heatmap(self, xy: Any) -> torch.Tensor:
        """Input-image coordinates ``[..., 2|3]`` -> heatmap cells (the convention's map)."""
        return self.grid.to_heatmap(xy)

    def to_image(self, xy: Any) -> torch.Tensor:
        """Heatmap cells ``[..., 2|3]`` -> input-image coordinates; ``to_image(to_heatmap(x)) == x``."""
        return self.grid.to_image(xy)

    def flip_back(self, heatmaps: torch.Tensor, flip_pairs: Any) -> torch.Tensor:
        """Heatmaps predicted on the horizontally flipped image, aligned with the original.

        Mirrors along x, swaps the ``(left, right)`` joint pairs and removes the convention's
        shift exactly (0.75 cells for MSRA at stride 4, none for UDP).
        """
        return flip_back(self.label, heatmaps, flip_pairs, self.flip_shift)

    @property
    def flip_shift(self) -> float:
        """Cells a mirrored map moves towards +x to line up: the grid's, for encoders that
        put a keypoint at its heatmap coordinate ``u`` (a cell's index is its position)."""
        return self.grid.flip_shift

    def representable(self, centres: torch.Tensor) -> torch.Tensor:
        """Bool ``[B, K]``: whether a joint at heatmap cells ``centres [B, K, n]`` fits the map."""
        raise NotImplementedError

    def draw(self, centres: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Maps ``[B, K, (d,) h, w]`` for ``centres``, all zero where ``keep`` is False."""
        raise NotImplementedError

    def representable_numpy(self, centres: np.ndarray) -> np.ndarray:
        """:meth:`representable` in numpy, for small CPU batches; an encoder that does not
        override it always runs in torch."""
        raise NotImplementedError

    def draw_numpy(self, centres: np.ndarray, keep: np.ndarray) -> np.ndarray | torch.Tensor | None:
        """:meth:`draw` from numpy centres where it gives the same numbers (the maps as an
        array or a CPU tensor); None: draw in torch."""
        return None

    #: whether the numpy path is the faster one for large batches too (see :meth:`encode_numpy`)
    numpy_at_any_size = False

    @property
    def numpy_path(self) -> bool:
        """Whether small CPU batches may take :meth:`encode_numpy`: the encoder's class (not
        only a parent whose :meth:`representable` it overrides) offers :meth:`representable_numpy`."""
        return (type(self).representable_numpy is not HeatmapEncoder.representable_numpy
                and defined_together(type(self), "representable_numpy", NUMPY_MIRRORS["representable_numpy"]))

    def encode_numpy(self, points: np.ndarray, vis: np.ndarray, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The small-batch CPU path: the per-joint bookkeeping (a few dozen tiny operations) in
        numpy, where each costs a fraction of a torch call; the same arithmetic, so the same
        targets as the torch path."""
        finite = np.isfinite(points).all(-1)
        if not finite.all():
            points = np.where(finite[..., None], points, 0).astype(points.dtype, copy=False)
        scale, offset = self.grid_numpy(points.dtype)
        centres = points * scale + offset
        keep, weights = visibility_rule(self.visibility, vis, finite & self.representable_numpy(centres))
        together = defined_together(type(self), "draw_numpy", NUMPY_MIRRORS["draw_numpy"])
        maps = self.draw_numpy(centres, keep) if together else None
        if maps is None:
            with one_thread_if_small(0, CPU):
                out = self.draw(torch.from_numpy(centres), torch.from_numpy(keep))
        else:
            out = maps if isinstance(maps, torch.Tensor) else torch.from_numpy(maps)
        weights = torch.from_numpy(weights)
        return {"heatmaps": out if out.dtype == dtype else out.to(dtype),
                "weights": weights if weights.dtype == dtype else weights.to(dtype)}

    def grid_numpy(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """The grid's per-axis ``scale`` and ``offset`` as numpy arrays of ``dtype``, made once."""
        cache = self.__dict__.setdefault("_grid_numpy", {})
        key = (dtype, self.grid.scale, self.grid.offset)  # a grid replaced later gets its own
        if key not in cache:
            cache[key] = (np.asarray(self.grid.scale, dtype=dtype), np.asarray(self.grid.offset, dtype=dtype))
        return cache[key]

    def __call__(self, keypoints: Any, visible: Any = None) -> dict[str, torch.Tensor]:
        """Targets for ``keypoints`` ``[B, K, n]`` in input px; ``visible`` ``[B, K]`` (default: all)."""
        points = as_tensor(self.label, "keypoints", keypoints)
        n = self.grid.dims
        if points.dim() != 3 or points.shape[-1] != n:
            raise fail(self.label, f"keypoints must be [B, K, {n}] input-image coordinates, "
                       f"got shape {tuple(points.shape)}",
                       hint="connect the dataset's keypoints" + ("_3d" if n == 3 else ""))
        dtype = points.dtype if points.is_floating_point() else torch.float32
        if points.dtype not in (torch.float32, torch.float64):
            points = points.to(coordinate_dtype(points.dtype))  # half precision is drawn in float32
        vis = None if visible is None else as_tensor(self.label, "visible", visible)
        if vis is not None and vis.shape != points.shape[:2]:
            raise fail(self.label, f"visible must be [B, K] = {list(points.shape[:2])}, "
                       f"got shape {tuple(vis.shape)}")
        cells = points.shape[0] * points.shape[1] * math.prod(self.grid.sizes)
        if on_numpy(points) and self.numpy_path and (cells < SMALL_WORK or self.numpy_at_any_size):
            array = points.numpy()
            if vis is None:
                return self.encode_numpy(array, np.ones(array.shape[:2], dtype=array.dtype), dtype)
            same = vis.dtype == points.dtype and vis.is_cpu
            return self.encode_numpy(array, (vis if same else vis.to("cpu", points.dtype)).numpy(), dtype)
        if vis is None:
            vis = torch.ones(points.shape[:2], dtype=points.dtype, device=points.device)
        vis = vis.to(points.device)
        finite = torch.isfinite(points).all(dim=-1)
        with one_thread_if_small(cells, points.device):
            centres = self.grid.to_heatmap(torch.where(finite[..., None], points, torch.zeros_like(points)))
            keep, weights = visibility_rule(self.visibility, vis.to(points.dtype),
                                            finite & self.representable(centres))
            return {"heatmaps": self.draw(centres, keep).to(dtype), "weights": weights.to(dtype)}


#: the torch methods each numpy twin mirrors: overriding one of them turns the twin off
NUMPY_MIRRORS = {"representable_numpy": ("representable", "window_centres", "centre_cells"),
                 "draw_numpy": ("draw", "centre_cells", "profile", "representable", "window_centres")}

#: the visibility rules an encoder offers (see the module docstring)
VISIBILITY = ("any", "darkpose", "mmpose")


def visibility_rule(rule: str, vis: Any, drawable: Any) -> tuple[Any, Any]:
    """Which joints are drawn, and their weights, for visibility values ``vis`` ``[B, K]``
    and whether each joint can be drawn on the map at all (``drawable``); torch tensors or
    numpy arrays alike."""
    xp = np if isinstance(vis, np.ndarray) else torch
    if rule == "any":
        keep = drawable & (vis > 0)
        return keep, keep.astype(vis.dtype) if xp is np else keep.to(vis.dtype)
    if rule == "darkpose":
        return drawable & (vis > 0.5), xp.where(drawable, vis, xp.zeros_like(vis))
    skipped = vis < 0.5  # mmpose: never drawn, never checked against the map, weight kept
    return ~skipped & drawable, xp.where(skipped | drawable, vis, xp.zeros_like(vis))


def cell_axes_numpy(sizes: tuple[int, ...], dtype: np.dtype) -> list[np.ndarray]:
    """``arange`` of every axis (x, y[, z]) in ``dtype``."""
    return [np.arange(size, dtype=dtype) for size in sizes]


def cell_axes(sizes: tuple[int, ...], like: torch.Tensor) -> list[torch.Tensor]:
    """``arange`` of every axis (x, y[, z]) in the dtype and on the device of ``like``."""
    return [torch.arange(size, dtype=like.dtype, device=like.device) for size in sizes]

