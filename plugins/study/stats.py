"""Paired differences between two sides of a study, with bootstrap intervals and a verdict.

A side is one number of one run (a metric of one decoder), kept per test image as the
numerator and the count of its mean (:class:`Side`). Two sides are compared on the test
images they share (matched by dataset index), so the noise both see in common, the same
hard images, cancels. Over seeds the interval comes from a two-level bootstrap: seeds
are drawn with replacement, then test images within each drawn seed; the difference is
the mean over the drawn seeds. With one seed only the test images are resampled, and the
interval says nothing about training noise; the caption of every table says which.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: metric names (before any ``@threshold``) where a larger value is better, and smaller
HIGHER = ("PCK", "PCKh", "AUC", "AP", "AR", "OKS")
LOWER = ("RMSE", "EPE", "MPJPE", "PA-MPJPE", "NME")

HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell at this sample size"


def direction(metric: str) -> str | None:
    """``higher`` or ``lower`` (which is better) for a known metric name, else None."""
    stem = metric.split("@", 1)[0]
    if stem in HIGHER:
        return "higher"
    if stem in LOWER:
        return "lower"
    return None


@dataclass
class Side:
    """One number of one run per test image: the mean is ``sum(numerator) / sum(count)``
    (its square root when ``root``); ``index`` names each image."""

    index: np.ndarray
    numerator: np.ndarray
    count: np.ndarray
    root: bool = False

    @classmethod
    def from_entries(cls, index: np.ndarray, values: np.ndarray, counted: np.ndarray, root: bool = False) -> Side:
        """From per-(image, joint) ``values`` and ``counted`` ``[N, K]`` (entries outside
        ``counted`` are ignored, even when NaN)."""
        counted = np.asarray(counted, dtype=bool)
        kept = np.where(counted, np.asarray(values, dtype=np.float64), 0.0)
        return cls(np.asarray(index), kept.sum(-1), counted.sum(-1).astype(np.float64), root)

    def number(self, weights: np.ndarray | None = None) -> np.ndarray | float:
        """The pooled number, or one per row of image ``weights`` ``[R, N]`` (resampling counts)."""
        if weights is None:
            value = self.numerator.sum() / self.count.sum()
        else:
            value = (weights @ self.numerator) / (weights @ self.count)
        return np.sqrt(value) if self.root else value


@dataclass
class Comparison:
    """The paired difference ``better - than`` (sign flipped for lower-is-better metrics,
    so positive always means the claim's direction), its interval and verdict."""

    difference: float
    low: float
    high: float
    verdict: str
    seeds: int
    images: int


def paired(*sides: Side) -> list[Side]:
    """Every side restricted to the images all of them share, in the same order."""
    shared = sides[0].index
    for side in sides[1:]:
        shared = np.intersect1d(shared, side.index)
    if shared.size == 0:
        raise ValueError("the sides share no test image (compare runs scored on the same test split)")

    def take(side: Side) -> Side:
        order = np.argsort(side.index, kind="stable")
        rows = order[np.searchsorted(side.index, shared, sorter=order)]
        return Side(side.index[rows], side.numerator[rows], side.count[rows], side.root)

    return [take(side) for side in sides]


def compare(pairs: Sequence[tuple[Side, Side]], *, lower_is_better: bool = False, replicates: int = 2000,
            level: float = 0.95, seed: int = 0) -> Comparison:
    """Compare ``better`` with ``than`` over seeds: one ``(better, than)`` pair per seed
    (see :func:`contrast`)."""
    return contrast([[(a, 1.0), (b, -1.0)] for a, b in pairs], lower_is_better=lower_is_better,
                    replicates=replicates, level=level, seed=seed)


def contrast(per_seed: Sequence[Sequence[tuple[Side, float]]], *, lower_is_better: bool = False,
             replicates: int = 2000, level: float = 0.95, seed: int = 0) -> Comparison:
    """A weighted sum of numbers (``+1, -1``: a difference; ``+1, -1, -1, +1``: a difference of
    differences), one list of ``(side, weight)`` per seed, every side scored on shared images.

    The estimate is the mean over seeds; the interval is the percentile interval of the
    two-level bootstrap (seeds, then images, resampled together for every side of a seed);
    the verdict is ``holds`` when it lies above 0, ``does not hold`` when below, else
    ``cannot tell``.
    """
    if not per_seed:
        raise ValueError("nothing to compare")
    sign = -1.0 if lower_is_better else 1.0
    matched = [(paired(*(side for side, _ in terms)), [w for _, w in terms]) for terms in per_seed]
    rng = np.random.default_rng(seed)
    point = sign * float(np.mean([sum(w * s.number() for s, w in zip(sides, weights)) for sides, weights in matched]))
    n_seeds = len(matched)
    draws = np.zeros(replicates)
    for _ in range(n_seeds):  # each draw: a seed with replacement, then its images with replacement
        chosen = rng.integers(n_seeds, size=replicates) if n_seeds > 1 else np.zeros(replicates, dtype=int)
        per = np.empty((n_seeds, replicates))
        for s, (sides, weights) in enumerate(matched):
            images = sides[0].index.size
            counts = rng.multinomial(images, np.full(images, 1.0 / images), size=replicates).astype(np.float64)
            per[s] = sum(w * side.number(counts) for side, w in zip(sides, weights))
        draws += per[chosen, np.arange(replicates)]
    draws = sign * draws / n_seeds
    tail = (1.0 - level) / 2
    low, high = (float(v) for v in np.quantile(draws, [tail, 1.0 - tail]))
    verdict = HOLDS if low > 0 else FAILS if high < 0 else UNSURE
    return Comparison(point, low, high, verdict, n_seeds, int(min(sides[0].index.size for sides, _ in matched)))


def caption(seeds: int, replicates: int = 2000, level: float = 0.95) -> str:
    """What the intervals of a claims table are, in one paragraph."""
    how = ("a two-level bootstrap: seeds drawn with replacement, then test images within each "
           "drawn seed" if seeds > 1 else "a bootstrap over test images (one seed: training noise "
           "is not in these intervals)")
    return (f"Paired differences (the two sides scored on the same test images, matched by dataset "
            f"index), as the mean over {seeds} seed{'s' if seeds != 1 else ''}; {level:.0%} intervals from "
            f"{how}, {replicates} replicates. A claim holds when its interval lies above 0, does not hold "
            "when it lies below 0, and cannot be told otherwise. Positive differences favour the claim "
            "(for lower-is-better metrics the sign is flipped).")
