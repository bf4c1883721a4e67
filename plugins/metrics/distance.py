"""Distance metrics over visible joints: RMSE, EPE (2D, pixels), MPJPE and PA-MPJPE (3D, mm).

- ``RMSE`` = sqrt(mean of squared distances): penalises large errors more than EPE.
- ``EPE`` = mean Euclidean distance (end-point error).
- ``MPJPE`` = mean per-joint position error, optionally after moving both skeletons so
  that a root joint coincides (Human3.6M protocol #1).
- ``PA-MPJPE`` = MPJPE after a similarity Procrustes alignment of each prediction.

All accept 2D or 3D coordinates; the value is in the coordinates' unit. Means pool every
visible (sample, joint) pair; a joint never visible is NaN in ``per_joint()`` only.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from kitpose.errors import ComponentError
from kitpose.metric import Metric, PerSample
from kitpose_plugins.metrics.common import NAN, checked_keypoints, is_empty, masked_mean
from kitpose_plugins.metrics.procrustes import similarity_align


class _DistanceMetric(Metric):
    """Stores the distance of every joint and its visibility; subclasses name and reduce."""

    name = "EPE"  # the reported key
    key = "epe"  # the registered name, for error messages
    squared = False  # True: root of the mean squared distance

    def update(self, pred: Tensor, target: Tensor, visible: Tensor | None = None, **extras: Any) -> None:
        """Accumulate a batch; other keyword tensors (for other metrics of a group) are ignored."""
        pred, target, vis = checked_keypoints(self.key, pred, target, visible)
        dist, vis = self._distances(pred, target, vis)
        self.accumulate(distance=dist, visible=vis)

    def _distances(self, pred: Tensor, target: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:
        return (pred - target).norm(dim=-1), vis

    def per_sample(self) -> dict[str, PerSample]:
        dist, vis = self.gathered("distance"), self.gathered("visible")  # collective: always both
        if is_empty(dist, vis):
            return {}
        return {self.name: PerSample(dist.pow(2) if self.squared else dist, vis, root=self.squared)}

    def _reduce(self) -> tuple[float, list[float]]:
        samples = self.per_sample().get(self.name)
        if samples is None:
            return NAN, []
        pooled, joints = masked_mean(samples.values, samples.counted)
        if not samples.root:
            return pooled, joints
        return pooled ** 0.5, [j ** 0.5 for j in joints]

    def compute(self) -> dict[str, float]:
        return {self.name: self._reduce()[0]}

    def output_names(self) -> tuple[str, ...]:
        return (self.name,)

    def per_joint(self) -> dict[str, list[float]]:
        joints = self._reduce()[1]
        return {self.name: joints} if joints else {}


class RMSE(_DistanceMetric):
    """RMSE: square root of the mean squared distance over visible joints (pixels)."""

    name = "RMSE"
    key = "rmse"
    squared = True


class EPE(_DistanceMetric):
    """EPE: mean Euclidean distance over visible joints (end-point error, pixels)."""

    name = "EPE"


class MPJPE(_DistanceMetric):
    """MPJPE: mean per-joint position error over visible joints (mm), optionally root-relative.

    ``root``: index of a joint (e.g. the pelvis) subtracted from both skeletons first;
    samples whose root is not visible then count for nothing.
    """

    name = "MPJPE"
    key = "mpjpe"

    def __init__(self, root: int | None = None) -> None:
        super().__init__()
        if root is not None and (isinstance(root, bool) or int(root) != root or root < 0):
            raise ComponentError(f"metric 'mpjpe': root must be a joint index, got {root!r}")
        self.root = None if root is None else int(root)

    def _distances(self, pred: Tensor, target: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:
        if self.root is None:
            return super()._distances(pred, target, vis)
        if self.root >= pred.shape[1]:
            raise ComponentError(f"metric 'mpjpe': root {self.root} is not one of the {pred.shape[1]} joints")
        r = self.root
        pred, target = pred - pred[:, r:r + 1], target - target[:, r:r + 1]
        return (pred - target).norm(dim=-1), vis & vis[:, r:r + 1]


class PAMPJPE(_DistanceMetric):
    """PA-MPJPE: MPJPE after aligning each prediction by similarity Procrustes (no reflection).

    Rotation, translation and uniform scale are fitted per sample on its visible joints
    with one batched SVD; a reflection is never used (the sign of det fixes it).
    """

    name = "PA-MPJPE"
    key = "pa_mpjpe"

    def _distances(self, pred: Tensor, target: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:
        aligned = similarity_align(pred, target, vis)
        return (aligned - target).norm(dim=-1), vis
