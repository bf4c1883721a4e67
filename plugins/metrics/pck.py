"""Percentage of correct keypoints: PCKh (head-normalised), PCK (box-normalised) and its AUC.

A joint is correct when its normalised distance to the ground truth is at most the
threshold. Normalisers:

- ``head``: Euclidean distance / ``head_size`` (MPII: 0.6 x the head-box diagonal; without
  a head box, the neck-to-head-top distance). Works in 2D and 3D.
- ``bbox``: each axis by its own box side, x by the width and y by the height:
  ``sqrt((dx / w)^2 + (dy / h)^2)``. 2D only.
- ``none``: the plain distance, in the coordinates' unit (pixels or millimetres).

A sample whose normaliser is not positive and finite counts for no joint. Ratios are
pooled over every counted (sample, joint) pair, as MPII's evaluation does.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from kitpose.errors import ComponentError
from kitpose.metric import Metric, PerSample
from kitpose_plugins.metrics.common import (
    NAN, checked_keypoints, is_empty, label, masked_mean, per_sample, thresholds_of,
)

NORMALIZERS = ("head", "bbox", "none")


def normalised_distance(metric: str, normalizer: str, pred: Tensor, target: Tensor, *,
                        head_size: Any = None, bbox: Any = None) -> tuple[Tensor, Tensor]:
    """(distance / normaliser ``[B, K]``, samples with a usable normaliser ``[B]``)."""
    batch = pred.shape[0]
    diff = pred - target
    if normalizer == "head":
        if head_size is None:
            raise ComponentError(f"metric '{metric}' needs head_size [B]", hint="add head_size to its in:")
        size = per_sample(metric, "head_size", head_size, batch, device=pred.device)
        ok = torch.isfinite(size) & (size > 0)
        dist = diff.norm(dim=-1) / torch.where(ok, size, 1.0).unsqueeze(-1)
    elif normalizer == "bbox":
        if bbox is None:
            raise ComponentError(f"metric '{metric}' needs bbox [B, 4] (x, y, w, h)", hint="add bbox to its in:")
        if pred.shape[-1] != 2:
            raise ComponentError(f"metric '{metric}': a box normaliser needs 2D keypoints, got "
                                 f"{pred.shape[-1]}D")
        box = per_sample(metric, "bbox", bbox, batch, (4,), device=pred.device)
        sides = box[:, 2:4]  # (w, h): x goes with the width, y with the height
        ok = torch.isfinite(sides).all(-1) & (sides > 0).all(-1)
        dist = (diff / torch.where(ok.unsqueeze(-1), sides, 1.0).unsqueeze(1)).norm(dim=-1)
    else:
        dist = diff.norm(dim=-1)
        ok = torch.ones(batch, dtype=torch.bool, device=pred.device)
    return dist, ok


class _ThresholdMetric(Metric):
    """Accumulates normalised distances of visible joints; subclasses say how to normalise."""

    normalizer = "none"
    name = "PCK"

    def _store(self, pred: Tensor, target: Tensor, visible: Tensor | None, **normalisers: Any) -> None:
        pred, target, vis = checked_keypoints(self.metric_name, pred, target, visible)
        dist, ok = normalised_distance(self.metric_name, self.normalizer, pred, target, **normalisers)
        self.accumulate(distance=dist, visible=vis & ok.unsqueeze(-1))

    @property
    def metric_name(self) -> str:
        return type(self).__name__.lower()

    def _gathered(self) -> tuple[Tensor, Tensor] | None:
        dist, vis = self.gathered("distance"), self.gathered("visible")  # collective: always both
        return None if is_empty(dist, vis) else (dist, vis)

    def _scores(self) -> dict[str, tuple[float, list[float]]]:
        state = self._gathered()
        if state is None:
            return {key: (NAN, []) for key in self.output_names()}
        return {key: masked_mean(values, counted) for key, (values, counted, _) in self._samples(*state).items()}

    def _samples(self, dist: Tensor, vis: Tensor) -> dict[str, PerSample]:
        """Every reported number's per-(sample, joint) values from the gathered state."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        return {key: pooled for key, (pooled, _) in self._scores().items()}

    def per_joint(self) -> dict[str, list[float]]:
        return {key: joints for key, (_, joints) in self._scores().items() if joints}

    def per_sample(self) -> dict[str, PerSample]:
        state = self._gathered()
        return {} if state is None else self._samples(*state)


class _PCKBase(_ThresholdMetric):
    """PCK at a list of thresholds, one reported value per threshold."""

    def __init__(self, thresholds: Sequence[float]) -> None:
        super().__init__()
        self.thresholds = thresholds_of(self.metric_name, thresholds)

    def output_names(self) -> tuple[str, ...]:
        return tuple(label(self.name, t) for t in self.thresholds)

    def _samples(self, dist: Tensor, vis: Tensor) -> dict[str, PerSample]:
        return {label(self.name, t): PerSample((dist <= t).double(), vis) for t in self.thresholds}


class PCKh(_PCKBase):
    """PCKh@a: fraction of visible joints within a * head size of the ground truth (2D or 3D).

    ``thresholds``: the values of a (default 0.1 and 0.5), reported as ``PCKh@0.1`` ...
    ``update`` takes ``head_size`` ``[B]`` in the keypoints' unit.
    """

    normalizer = "head"
    name = "PCKh"

    def __init__(self, thresholds: Sequence[float] = (0.1, 0.5)) -> None:
        super().__init__(thresholds)

    def update(self, pred: Tensor, target: Tensor, visible: Tensor | None = None, *,
               head_size: Tensor, **extras: Any) -> None:
        """Accumulate a batch; other keyword tensors (for other metrics of a group) are ignored."""
        self._store(pred, target, visible, head_size=head_size)


class PCK(_PCKBase):
    """PCK@a: fraction of visible joints within a box-normalised distance a (x by width, y by height).

    ``update`` takes ``bbox`` ``[B, 4]`` as (x, y, w, h); the normalised distance is
    ``sqrt((dx / w)^2 + (dy / h)^2)``. Reported as ``PCK@0.05``, ``PCK@0.1`` ...
    """

    normalizer = "bbox"
    name = "PCK"

    def __init__(self, thresholds: Sequence[float] = (0.05, 0.1, 0.2)) -> None:
        super().__init__(thresholds)

    def update(self, pred: Tensor, target: Tensor, visible: Tensor | None = None, *,
               bbox: Tensor, **extras: Any) -> None:
        """Accumulate a batch; other keyword tensors are ignored."""
        self._store(pred, target, visible, bbox=bbox)


class AUC(_ThresholdMetric):
    """AUC: mean PCK over evenly spaced thresholds 0 .. max_threshold (both included).

    ``normalizer``: ``head`` (default; distance / ``head_size``, so the default 0..0.5 is
    the area under the PCKh curve), ``bbox`` (x by box width, y by height) or ``none``
    (plain distance, e.g. 0..150 mm in 31 steps for 3D PCK). ``update`` takes the
    ``head_size`` [B] or ``bbox`` [B, 4] that the normaliser needs. Reported as ``AUC``.
    """

    name = "AUC"
    names = ("AUC",)

    def __init__(self, max_threshold: float = 0.5, steps: int = 51, normalizer: str = "head") -> None:
        super().__init__()
        if normalizer not in NORMALIZERS:
            raise ComponentError(f"metric 'auc': unknown normalizer '{normalizer}'",
                                 hint="use one of: " + ", ".join(NORMALIZERS))
        thresholds_of("auc", [max_threshold])
        if int(steps) != steps or steps < 2:
            raise ComponentError(f"metric 'auc': steps must be an integer >= 2, got {steps}")
        self.normalizer = normalizer
        self.max_threshold = float(max_threshold)
        self.steps = int(steps)

    def update(self, pred: Tensor, target: Tensor, visible: Tensor | None = None, *,
               head_size: Tensor | None = None, bbox: Tensor | None = None, **extras: Any) -> None:
        """Accumulate a batch; ``head_size``/``bbox`` are needed by the matching normaliser only."""
        self._store(pred, target, visible, head_size=head_size, bbox=bbox)

    def _samples(self, dist: Tensor, vis: Tensor) -> dict[str, PerSample]:
        grid = torch.linspace(0.0, self.max_threshold, self.steps, dtype=torch.float64)
        # thresholds t with dist <= t, counted by binary search: memory stays [N, K]
        below = torch.searchsorted(grid, dist.contiguous(), side="left")
        correct = (self.steps - below).double() / self.steps  # [N, K]: PCK averaged over the grid
        return {"AUC": PerSample(correct, vis)}
