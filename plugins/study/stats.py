"""Paired differences between the cells of a study, with bootstrap intervals and a verdict.

A side is one number of one run (a metric of one decoder), kept per test image as the
numerator and the count of its mean (:class:`Side`). Sides are compared on the test images
they share (matched by dataset index), so the noise they see in common, the same hard
images, cancels. Over seeds the interval comes from a crossed bootstrap: seeds and test
images are drawn with replacement, independently, and one image resample applies to every
drawn seed, since every seed was tested on the same images. With one seed only the test
images are resampled, and the interval says nothing about training noise; the caption of
every table says which.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: metric names (before any ``@threshold``) where a larger value is better, and smaller
HIGHER = ("PCK", "PCKh", "AUC", "OKS")
LOWER = ("RMSE", "EPE", "MPJPE", "PA-MPJPE", "NME")

HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell at this sample size"
NOVALUE = "no value (NaN: nothing counted, or NaN entries)"


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
        with np.errstate(invalid="ignore", divide="ignore"):  # nothing counted: NaN, said by the verdict
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
    differences), one list of ``(side, weight)`` per seed, every side scored on the test
    images all sides of all seeds share.

    The estimate is the mean over seeds. The interval is the percentile interval of a
    bootstrap that resamples seeds and test images independently (a crossed design: every
    seed was tested on the same images, so one image resample applies to all of them, and
    the images' own spread is not averaged away over seeds). The verdict is ``holds`` when
    the interval lies above 0, ``does not hold`` when below, ``cannot tell`` otherwise, and
    ``no value`` when a number is NaN (e.g. nothing counted).
    """
    if not per_seed:
        raise ValueError("nothing to compare")
    sign = -1.0 if lower_is_better else 1.0
    weights = [[w for _, w in terms] for terms in per_seed]
    every = paired(*(side for terms in per_seed for side, _ in terms))  # one image order for all seeds
    sizes = [len(terms) for terms in per_seed]
    sides = [every[sum(sizes[:s]):sum(sizes[:s + 1])] for s in range(len(per_seed))]
    n_seeds, images = len(sides), every[0].index.size

    def value(s: int, counts: np.ndarray | None = None) -> np.ndarray | float:
        return sum(w * side.number(counts) for side, w in zip(sides[s], weights[s]))

    point = sign * float(np.mean([value(s) for s in range(n_seeds)]))
    rng = np.random.default_rng(seed)
    draws = np.empty(replicates)
    chunk = max(1, CHUNK // images)  # replicates per block: the image counts stay small in memory
    for start in range(0, replicates, chunk):
        size = min(chunk, replicates - start)
        counts = rng.multinomial(images, np.full(images, 1.0 / images), size=size).astype(np.float64)
        drawn = rng.integers(n_seeds, size=(size, n_seeds)) if n_seeds > 1 else np.zeros((size, 1), dtype=int)
        multiplicity = np.stack([(drawn == s).sum(1) for s in range(n_seeds)], 1)  # [size, seeds]
        per_seed_values = np.stack([value(s, counts) for s in range(n_seeds)], 1)
        draws[start:start + size] = (multiplicity * per_seed_values).sum(1) / n_seeds
    draws *= sign
    tail = (1.0 - level) / 2
    low, high = (float(v) for v in np.quantile(draws, [tail, 1.0 - tail]))
    if not all(np.isfinite([point, low, high])):
        verdict = NOVALUE
    else:
        verdict = HOLDS if low > 0 else FAILS if high < 0 else UNSURE
    return Comparison(point, low, high, verdict, n_seeds, int(images))


#: bootstrap replicates are drawn in blocks of about this many image counts
CHUNK = 1 << 22


def caption(seeds: int, replicates: int = 2000, level: float = 0.95) -> str:
    """What the intervals of a claims table are, in one paragraph."""
    how = ("a bootstrap that draws seeds and test images with replacement, independently (every seed "
           "was tested on the same images)" if seeds > 1 else "a bootstrap over test images (one seed: "
           "training noise is not in these intervals)")
    return (f"Paired differences (the two sides scored on the same test images, matched by dataset "
            f"index), as the mean over the seeds (`seeds`: how many); {level:.0%} intervals from "
            f"{how}, {replicates} replicates. A claim holds when its interval lies above 0, does not hold "
            "when it lies below 0, and cannot be told otherwise. Positive differences favour the claim "
            "(for lower-is-better metrics the sign is flipped).")
