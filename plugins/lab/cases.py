"""The lab's test maps: Gaussian heatmaps whose true centre is known exactly.

A :class:`Case` fixes the Gaussian's width, the map size, where the centre lies (deep
inside, near the border so the Gaussian is cut, or within the outermost cell), the
additive noise and whether a second, lower peak is present. Maps are drawn in float64
from the formula (no encoder involved), so every decoder is judged against the truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: where a centre lies: its distance to the nearest edge of the map, in cells
PLACES = ("inside", "near", "on")


@dataclass(frozen=True)
class Case:
    sigma: float
    size: tuple[int, int]  # (w, h)
    place: str = "inside"
    noise: float = 0.0
    peaks: int = 1

    @property
    def name(self) -> str:
        w, h = self.size
        extra = ", two peaks" if self.peaks == 2 else ""
        return f"sigma {self.sigma:g}, {h}x{w}, {self.place}, noise {self.noise:g}{extra}"


def grid(sigmas: tuple[float, ...] = (1.0, 2.0, 3.0), sizes: tuple[tuple[int, int], ...] = ((48, 64), (24, 32)),
         noises: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1)) -> list[Case]:
    """Every combination of width, size, place and noise, and a two-peak case per width and size."""
    cases = [Case(s, size, place, noise) for s in sigmas for size in sizes for place in PLACES for noise in noises]
    cases += [Case(s, size, "inside", 0.0, peaks=2) for s in sigmas for size in sizes]
    return cases


def centres(case: Case, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` true centres ``[n, 2]`` (x, y in cells) placed as the case says."""
    w, h = case.size
    tops = np.array([w - 1.0, h - 1.0])
    margin = min(3 * case.sigma + 1, (min(w, h) - 1) / 2)
    points = rng.uniform(margin, tops - margin, size=(n, 2))
    if case.place == "inside":
        return points
    low, high = (1.0, 3.0 * case.sigma) if case.place == "near" else (0.0, 1.0)
    depth = rng.uniform(low, high, size=n)  # distance to the edge the point is moved to
    axis = rng.integers(2, size=n)
    far_side = rng.integers(2, size=n).astype(bool)
    rows = np.arange(n)
    points[rows, axis] = np.where(far_side, tops[axis] - depth, depth)
    return points


def border_distance(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Distance in cells from each centre to the nearest edge cell's centre."""
    tops = np.array([size[0] - 1.0, size[1] - 1.0])
    return np.minimum(points, tops - points).min(-1)


def draw(case: Case, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Maps ``[n, 1, h, w]`` (float32) of unit-peak Gaussians at ``points``, plus the case's
    second peak (height 0.6, 6 cells away, inside the map) and noise ``N(0, noise)``."""
    w, h = case.size
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)

    def gaussians(at: np.ndarray) -> np.ndarray:
        across = np.exp(-(xs - at[:, 0, None]) ** 2 / (2 * case.sigma ** 2))
        down = np.exp(-(ys - at[:, 1, None]) ** 2 / (2 * case.sigma ** 2))
        return down[:, :, None] * across[:, None, :]

    maps = gaussians(points)
    if case.peaks == 2:
        angle = rng.uniform(0, 2 * np.pi, size=len(points))
        other = points + 6.0 * np.stack([np.cos(angle), np.sin(angle)], -1)
        other = np.clip(other, 0, [w - 1, h - 1])
        maps = np.maximum(maps, 0.6 * gaussians(other))
    if case.noise:
        maps = maps + rng.normal(0.0, case.noise, size=maps.shape)
    return maps[:, None].astype(np.float32)
