"""2D target encoders: Gaussian (quantised or unbiased), one-hot and disk heatmaps.

Gaussian and one-hot maps are separable, so each is drawn as the outer product of per-axis
profiles ``[B, K, w]`` x ``[B, K, h]``: no loop over samples or joints and no per-joint
window copies, on whatever device the keypoints are on.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from kitpose import memory
from kitpose_plugins.codecs.common import choice, defined_together, flag, outer, outer_numpy, positive
from kitpose_plugins.codecs.encode import HeatmapEncoder, cell_axes, cell_axes_numpy, visibility_rule
from kitpose_plugins.codecs.grid import Grid


#: when a joint near the edge of the map still counts (see :class:`GaussianEncoder`)
BORDERS = ("window", "reference")

#: Maps of this many bytes or more come from glibc's allocator as fresh pages on every call
#: (it maps blocks above its 32 MiB threshold straight from the kernel), and each page costs
#: a fault when first written: quantised maps that large are pasted window by window into
#: zeros, which leaves most pages untouched (17.2 -> 9.4 ms at B=256). Not where
#: :func:`kitpose.memory.keep_freed_memory` ran: blocks are then reused, and the outer product
#: is faster (2.2 ms).
FRESH_PAGES = 1 << 25


class GaussianEncoder(HeatmapEncoder):
    """Gaussian heatmaps, quantised ("w/ quant") or at the exact centre ("w/o quant", DARK).

    Quantised (``unbiased: false``, the standard): centre ``floor(x / s + 0.5)``, values
    ``exp(-d^2 / 2 sigma^2)`` with peak 1 inside the square window of radius ``3 sigma``,
    0 outside. Unbiased: centre exactly at the keypoint's heatmap coordinate, the whole
    map filled. Either way the weight is 0 when the ``3 sigma`` window misses the map.
    ``convention`` is ``msra`` or ``udp`` (see :mod:`kitpose_plugins.codecs.grid`);
    ``input_size`` (w, h) defaults to ``heatmap_size * stride``; ``visibility`` is ``any``
    (kitpose), ``darkpose`` or ``mmpose`` (see :mod:`kitpose_plugins.codecs.encode`).
    ``border``: when a joint near the edge still counts. ``window`` (kitpose): its ``3 sigma``
    window reaches the map. ``reference`` (HRNet, DarkPose, mmpose): ``mu - 3 sigma < size``
    and ``mu + 3 sigma + 1 >= 0`` on every axis, which keeps joints up to a cell further out
    on the low side, where the map may be all zero. ``cut``: whether an unbiased Gaussian
    is set to 0 outside the ``3 sigma`` window around the rounded centre, as mmpose's UDP
    targets are (null: no; quantised maps are always cut).
    """

    label = "encoder 'gaussian'"
    border = "window"
    _cut: bool | None = None

    def __init__(self, sigma: float = 2.0, stride: float = 4, heatmap_size: Any = (48, 64),
                 unbiased: bool = False, convention: str = "msra", input_size: Any = None,
                 visibility: Literal["any", "darkpose", "mmpose"] = "any", border: Literal["window", "reference"] = "window", cut: bool | None = None) -> None:
        super().__init__(Grid(self.label, heatmap_size=heatmap_size, stride=stride,
                              convention=convention, input_size=input_size), visibility)
        self.sigma = positive(self.label, "sigma", sigma)
        self.unbiased = flag(self.label, "unbiased", unbiased)
        self.border = choice(self.label, "border", border, BORDERS)
        self._cut = None if cut is None else flag(self.label, "cut", cut)

    @property
    def cut(self) -> bool:
        """Whether values outside the ``3 sigma`` window are 0: always for quantised maps."""
        return not self.unbiased or bool(self._cut)

    def centre_cells(self, centres: torch.Tensor) -> torch.Tensor:
        """Where the peak goes: the exact centre, or the nearest cell when quantised."""
        return centres if self.unbiased else torch.floor(centres + 0.5)

    def window_centres(self, centres: torch.Tensor) -> torch.Tensor:
        """Where the ``3 sigma`` window is centred: the peak, or the rounded centre when an
        unbiased Gaussian is cut."""
        return torch.floor(centres + 0.5) if self.cut else centres

    def representable(self, centres: torch.Tensor) -> torch.Tensor:
        mu = self.window_centres(centres)
        low, high = (torch.from_numpy(b).to(mu.device, mu.dtype) for b in self.window_bounds(np.dtype(np.float64)))
        if self.border == "reference":
            return ((mu >= low) & (mu < high)).all(dim=-1)
        return ((mu >= low) & (mu <= high)).all(dim=-1)

    def representable_numpy(self, centres: np.ndarray) -> np.ndarray:
        """:meth:`representable` in numpy, against per-axis bounds made once."""
        mu = np.floor(centres + 0.5) if self.cut else centres
        low, high = self.window_bounds(mu.dtype)
        if self.border == "reference":
            return ((mu >= low) & (mu < high)).all(-1)
        return ((mu >= low) & (mu <= high)).all(-1)

    def window_bounds(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Where a window centre ``mu`` may lie, per axis: ``mu >= low`` and ``mu <= high``
        (``window`` border: the ``3 sigma`` window reaches the map) or ``mu < high``
        (``reference``: ``mu + 3 sigma + 1 >= 0`` and ``mu - 3 sigma < size``); worked out in
        float64, rounded to ``dtype`` once and cached, the same numbers for both paths."""
        cache = self.__dict__.setdefault("_bounds", {})
        key = (dtype, self.sigma, self.border, self.grid.sizes)  # settings changed later get their own
        if key not in cache:
            reach, sizes = 3.0 * self.sigma, np.asarray(self.grid.sizes, dtype=np.float64)
            if self.border == "reference":
                low, high = np.full_like(sizes, -reach - 1), sizes + reach
            else:
                low, high = np.full_like(sizes, -reach), sizes - 1 + reach
            cache[key] = (low.astype(dtype), high.astype(dtype))
        return cache[key]

    @property
    def numpy_at_any_size(self) -> bool:
        """Quantised 2D maps: the numpy path wins at every batch size (see :meth:`draw_numpy`)."""
        return not self.unbiased and self.grid.dims == 2

    def draw_numpy(self, centres: np.ndarray, keep: np.ndarray) -> np.ndarray | torch.Tensor | None:
        """Quantised maps only: a joint's profile along an axis is one row of a table of every
        whole-cell peak position (:meth:`profile_bank`), picked by index, and the map is their
        product: torch's outer product, as in :meth:`draw`, or, for 2D maps of
        :data:`FRESH_PAGES` bytes or more from fresh pages, only the window's rows written
        into zeros (:meth:`paste_windows`). Either way the numbers are the torch path's."""
        if self.unbiased:
            return None
        # a kept joint's window reaches the map (either border rule), so its peak has a row;
        # the others take row 0, a peak out of reach: an all-zero profile
        reach = math.floor(3.0 * self.sigma)
        rows = np.where(keep[..., None], np.floor(centres + 0.5) + (reach + 1), 0).astype(np.intp)
        large = keep.size * math.prod(self.grid.sizes) * centres.itemsize >= FRESH_PAGES
        if self.grid.dims == 2 and large and not memory.large_blocks_reused():
            return self.paste_windows(rows, keep, reach, centres.dtype)
        return outer_numpy([self.profile_bank(axis, centres.dtype)[rows[..., axis]]
                            for axis in range(len(self.grid.sizes))])

    def paste_windows(self, rows: np.ndarray, keep: np.ndarray, reach: int, dtype: np.dtype) -> np.ndarray:
        """2D maps of zeros with each kept joint's ``2R + 1`` rows around its peak written in
        (the rows of the profile bank ``rows`` picks): about a fifth of the cells at 64x48."""
        width, height = self.grid.sizes
        span = min(2 * reach + 1, height)
        maps = np.zeros(keep.shape + (height, width), dtype=dtype)
        joints = np.flatnonzero(keep)
        picked = rows.reshape(-1, 2)[joints]
        top = np.clip(picked[:, 1] - (2 * reach + 1), 0, height - span)  # bank row r is the peak at r - R - 1
        ys = top[:, None] + np.arange(span)
        down = self.profile_bank(1, dtype)[picked[:, 1, None], ys]
        across = self.profile_bank(0, dtype)[picked[:, 0]]
        maps.reshape(-1, height, width)[joints[:, None], ys] = down[:, :, None] * across[:, None, :]
        return maps

    def profile_bank(self, axis: int, dtype: np.dtype) -> np.ndarray:
        """Every quantised profile along ``axis``: row ``i`` is the peak at cell ``i - R - 1``
        (``R = floor(3 sigma)``), from one cell beyond reach on the low side to ``R`` cells past
        the high end; computed by :meth:`profile`, as :meth:`draw` computes them, and cached
        per axis and dtype."""
        banks = self.__dict__.setdefault("_banks", {})
        key = (axis, dtype, self.sigma, self.grid.sizes)
        if key not in banks:
            size, reach = self.grid.sizes[axis], math.floor(3.0 * self.sigma)
            torch_dtype = torch.from_numpy(np.zeros(0, dtype)).dtype
            peaks = torch.arange(-reach - 1, size + reach + 1, dtype=torch_dtype)
            d = torch.arange(size, dtype=torch_dtype) - peaks[:, None]
            banks[key] = torch.where(d.abs() <= reach, self.profile(d), torch.zeros_like(d)).numpy()
        return banks[key]

    def profile(self, d: torch.Tensor) -> torch.Tensor:
        """``exp(-d^2 / 2 sigma^2)``, its argument clamped just below what the tails keep."""
        floor = 2 * torch.finfo(d.dtype).tiny ** (1 / self.grid.dims)
        return torch.exp((d * d * (-0.5 / self.sigma ** 2)).clamp(min=math.log(floor) - 1.0))

    def draw(self, centres: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        mu, reach = self.centre_cells(centres), 3.0 * self.sigma
        # Far tails are set to 0 before the outer product: products of tiny values would be
        # subnormal floats, which are exact to drop and very slow to compute with on CPUs
        # (so is exp near underflow: its argument is clamped just below the floor first).
        floor = 2 * torch.finfo(centres.dtype).tiny ** (1 / centres.shape[-1])
        window = self.window_centres(centres)
        profiles = []
        for axis, cells in enumerate(cell_axes(self.grid.sizes, centres)):
            d = cells - mu[..., axis, None]
            profile = self.profile(d)
            use = (cells - window[..., axis, None]).abs() <= reach if self.cut else profile >= floor
            profiles.append(torch.where(use, profile, torch.zeros_like(profile)))
        profiles[0] = profiles[0] * keep[..., None].to(centres.dtype)
        return outer(profiles)


#: what the one-hot encoder's own numpy path stands for: overriding one of them turns it off
ONE_HOT_MIRRORS = ("representable", "representable_numpy", "centre_cells", "draw", "draw_numpy")


class OneHotEncoder(HeatmapEncoder):
    """One-hot heatmaps (H2, for softmax cross-entropy): 1 at the quantised centre cell.

    With ``unbiased: true`` the unit mass is split bilinearly over the four cells around
    the exact centre, so its centre of mass (and a soft-argmax) is the keypoint itself.
    The weight is 0 when the centre lies outside the map.
    """

    label = "encoder 'one_hot'"

    def __init__(self, stride: float = 4, heatmap_size: Any = (48, 64), unbiased: bool = False,
                 convention: str = "msra", input_size: Any = None, visibility: Literal["any", "darkpose", "mmpose"] = "any") -> None:
        super().__init__(Grid(self.label, heatmap_size=heatmap_size, stride=stride,
                              convention=convention, input_size=input_size), visibility)
        self.unbiased = flag(self.label, "unbiased", unbiased)

    def centre_cells(self, centres: torch.Tensor) -> torch.Tensor:
        """Where the mass goes: the exact centre (split bilinearly), or the nearest cell."""
        return centres if self.unbiased else torch.floor(centres + 0.5)

    def representable(self, centres: torch.Tensor) -> torch.Tensor:
        mu = self.centre_cells(centres)
        sizes = torch.tensor(self.grid.sizes, dtype=mu.dtype, device=mu.device)
        return ((mu >= 0) & (mu <= sizes - 1)).all(dim=-1)

    @property
    def numpy_at_any_size(self) -> bool:
        """Quantised maps are a one per joint written into zeros: numpy's zeroed pages cost
        nothing until read, so that path wins at every batch size."""
        return not self.unbiased

    def representable_numpy(self, centres: np.ndarray) -> np.ndarray:
        """:meth:`representable` in numpy."""
        mu = centres if self.unbiased else np.floor(centres + 0.5)
        return ((mu >= 0) & (mu <= self.last_cells(mu.dtype))).all(-1)

    def encode_numpy(self, points: np.ndarray, vis: np.ndarray, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Quantised maps in a dozen numpy steps: the nearest cell once, in place; a joint is on
        the map when moving its cell onto the map leaves it where it was (NaN and infinity
        move); a one per kept joint."""
        if self.unbiased or not defined_together(type(self), "encode_numpy", ONE_HOT_MIRRORS):
            return super().encode_numpy(points, vis, dtype)
        scale, offset = self.grid_numpy(points.dtype)
        cells = points * scale
        cells += offset
        cells += 0.5
        np.floor(cells, out=cells)
        placed = self.onto_map(cells)
        keep, weights = visibility_rule(self.visibility, vis, (placed == cells).all(-1))
        maps, weights = torch.from_numpy(self.ones_at(placed, keep)), torch.from_numpy(weights)
        return {"heatmaps": maps if maps.dtype == dtype else maps.to(dtype),
                "weights": weights if weights.dtype == dtype else weights.to(dtype)}

    def onto_map(self, cells: np.ndarray) -> np.ndarray:
        """Whole ``cells`` moved onto the map: beyond an edge to that edge, NaN to 0 (``fmax``
        and ``fmin`` take the number over NaN, without a warning)."""
        return np.fmin(np.fmax(cells, 0), self.last_cells(cells.dtype))

    def ones_at(self, placed: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Maps ``[B, K, (d,) h, w]`` of zeros with a one at each kept joint's cell (``placed``:
        on the map, see :meth:`onto_map`), written through flat indices (``map * cells per map
        + cell``, whole numbers in float64); each map's one write is ``keep``, 1 or 0."""
        sizes = self.grid.sizes
        per_map = math.prod(sizes)
        flat = placed.reshape(-1, len(sizes)) @ self.cell_strides
        flat += np.arange(0, keep.size * per_map, per_map, dtype=np.float64)  # where each map starts
        maps = np.zeros(keep.size * per_map, dtype=placed.dtype)
        maps[flat.astype(np.intp)] = keep.reshape(-1)
        return maps.reshape(keep.shape + tuple(reversed(sizes)))

    @property
    def cell_strides(self) -> np.ndarray:
        """How far the flat index moves per cell along x, y[, z] (float64: whole cells of one map
        multiply exactly); made once per map size."""
        cache = self.__dict__.setdefault("_strides", {})
        if self.grid.sizes not in cache:
            cache[self.grid.sizes] = np.cumprod((1.0,) + self.grid.sizes[:-1])
        return cache[self.grid.sizes]

    def last_cells(self, dtype: np.dtype) -> np.ndarray:
        """The last cell of every axis, ``sizes - 1``, as a numpy array of ``dtype``, made once."""
        cache = self.__dict__.setdefault("_last_cells", {})
        key = (dtype, self.grid.sizes)
        if key not in cache:
            cache[key] = np.asarray(self.grid.sizes, dtype=dtype) - 1
        return cache[key]

    def draw_numpy(self, centres: np.ndarray, keep: np.ndarray) -> np.ndarray | torch.Tensor:
        """:meth:`draw` in numpy: a one per kept joint into zeros, or the bilinear split."""
        if not self.unbiased:
            return self.ones_at(self.onto_map(np.floor(centres + 0.5)), keep)
        profiles = []
        for axis, cells in enumerate(cell_axes_numpy(self.grid.sizes, centres.dtype)):
            profiles.append(np.maximum(1.0 - np.abs(cells - centres[..., axis, None]), 0).astype(centres.dtype, copy=False))
        profiles[0] = profiles[0] * keep[..., None].astype(centres.dtype)
        return outer_numpy(profiles)

    def draw(self, centres: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        mu = self.centre_cells(centres)
        profiles = []
        for axis, cells in enumerate(cell_axes(self.grid.sizes, centres)):
            d = cells - mu[..., axis, None]
            profiles.append((1.0 - d.abs()).clamp(min=0) if self.unbiased else (d == 0).to(d.dtype))
        profiles[0] = profiles[0] * keep[..., None].to(centres.dtype)
        return outer(profiles)


class DiskEncoder(HeatmapEncoder):
    """Binary disk heatmaps (H3, for binary cross-entropy): 1 within a radius in input px.

    The paper uses a 15 px radius in the input image. Distances are measured in input
    pixels (so a disk stays round under anisotropic UDP scaling); the cell nearest to the
    keypoint is always set, so a small radius never yields an empty target. The weight is
    0 when no cell of the disk lies on the map.
    """

    label = "encoder 'disk'"

    def __init__(self, radius: float = 15.0, stride: float = 4, heatmap_size: Any = (48, 64),
                 convention: str = "msra", input_size: Any = None, visibility: Literal["any", "darkpose", "mmpose"] = "any") -> None:
        super().__init__(Grid(self.label, heatmap_size=heatmap_size, stride=stride,
                              convention=convention, input_size=input_size), visibility)
        self.radius = positive(self.label, "radius", radius)

    def representable(self, centres: torch.Tensor) -> torch.Tensor:
        nearest = torch.floor(centres + 0.5)
        sizes = torch.tensor(self.grid.sizes, dtype=centres.dtype, device=centres.device)
        scale = torch.tensor(self.grid.scale, dtype=centres.dtype, device=centres.device)
        on_map = ((nearest >= 0) & (nearest <= sizes - 1)).all(dim=-1)
        closest = torch.minimum(nearest.clamp(min=0), sizes - 1)  # the map cell nearest the point
        gap = (((closest - centres) / scale) ** 2).sum(dim=-1)
        return on_map | (gap <= self.radius ** 2)

    def representable_numpy(self, centres: np.ndarray) -> np.ndarray:
        """:meth:`representable` in numpy."""
        nearest = np.floor(centres + 0.5)
        sizes = np.asarray(self.grid.sizes, dtype=centres.dtype)
        scale = np.asarray(self.grid.scale, dtype=centres.dtype)
        on_map = ((nearest >= 0) & (nearest <= sizes - 1)).all(-1)
        closest = np.minimum(np.maximum(nearest, 0), sizes - 1)
        gap = (((closest - centres) / scale) ** 2).sum(-1)
        return on_map | (gap <= self.radius ** 2)

    def draw_numpy(self, centres: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """:meth:`draw` in numpy, step for step."""
        (xs, ys), (sx, sy) = cell_axes_numpy(self.grid.sizes, centres.dtype), self.grid.scale
        cx, cy = centres[..., 0, None], centres[..., 1, None]
        across = np.abs((xs - cx) / sx)
        down = ((ys - cy) / sy) ** 2
        room = self.radius ** 2 - down
        reach = np.where(room >= 0, np.sqrt(np.maximum(room, 0)), -1.0).astype(centres.dtype)
        nearest = np.floor(centres + 0.5)
        on_map = ((nearest >= 0) & (nearest <= np.asarray(self.grid.sizes, dtype=centres.dtype) - 1)).all(-1)
        gap = np.abs((nearest[..., 0] - centres[..., 0]) / sx)
        widen = (ys == nearest[..., 1, None]) & on_map[..., None]
        reach = np.where(widen, np.maximum(reach, gap[..., None]), reach)
        reach = np.where(keep[..., None], reach, -1.0).astype(centres.dtype)
        return (across[..., None, :] <= reach[..., :, None]).astype(centres.dtype)

    def draw(self, centres: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # Row by row a disk is an interval: cell (y, x) is set when |dx| <= reach(y), with
        # reach(y) = sqrt(r^2 - dy^2) in input px; one broadcast comparison draws the map.
        (xs, ys), (sx, sy) = cell_axes(self.grid.sizes, centres), self.grid.scale
        cx, cy = centres[..., 0, None], centres[..., 1, None]
        across = ((xs - cx) / sx).abs()  # [B, K, w] input px
        down = ((ys - cy) / sy) ** 2  # [B, K, h]
        room = self.radius ** 2 - down
        reach = torch.where(room >= 0, room.clamp(min=0).sqrt(), torch.full_like(room, -1.0))
        # the cell nearest to the keypoint is always set: widen its row just enough
        nearest = torch.floor(centres + 0.5)
        on_map = ((nearest >= 0) & (nearest <= torch.tensor(self.grid.sizes, dtype=centres.dtype,
                                                             device=centres.device) - 1)).all(dim=-1)
        gap = ((nearest[..., 0] - centres[..., 0]) / sx).abs()
        widen = (ys == nearest[..., 1, None]) & on_map[..., None]
        reach = torch.where(widen, torch.maximum(reach, gap[..., None]), reach)
        reach = torch.where(keep[..., None], reach, torch.full_like(reach, -1.0))
        # written straight into a float map: a bool map converted afterwards costs 5x more
        out = torch.empty((*reach.shape, across.shape[-1]), dtype=centres.dtype, device=centres.device)
        return torch.le(across[..., None, :], reach[..., :, None], out=out)


class UdpEncoder(GaussianEncoder):
    """UDP Gaussian heatmaps as mmpose draws them (its UDPHeatmap codec).

    A ``gaussian`` encoder with mmpose's choices: the UDP convention, an exact-centre
    Gaussian cut at ``3 sigma`` around the rounded centre, mmpose's visibility rule (a joint
    with ``v < 0.5`` is skipped and keeps weight ``v``) and its border rule. Decode with
    ``dark_udp`` (mmpose) or any decoder; ``docs/codecs.md`` lists the differences.
    """

    label = "encoder 'udp'"

    def __init__(self, sigma: float = 2.0, stride: float = 4, heatmap_size: Any = (48, 64),
                 input_size: Any = None, visibility: Literal["any", "darkpose", "mmpose"] = "mmpose", border: Literal["window", "reference"] = "reference") -> None:
        super().__init__(sigma=sigma, stride=stride, heatmap_size=heatmap_size, unbiased=True, convention="udp",
                         input_size=input_size, visibility=visibility, border=border, cut=True)
