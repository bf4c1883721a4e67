"""Distance metrics over visible joints: RMSE, EPE (2D, pixels), MPJPE, N-MPJPE and PA-MPJPE (3D, mm).

- ``RMSE`` = sqrt(mean of squared distances): penalises large errors more than EPE.
- ``EPE`` = mean Euclidean distance (end-point error).
- ``MPJPE`` = mean per-joint position error, optionally after moving both skeletons so
  that a root joint coincides (Human3.6M protocol #1).
- ``N-MPJPE`` = MPJPE after scaling each prediction by the least-squares factor to its target.
- ``PA-MPJPE`` = MPJPE after a similarity Procrustes alignment of each prediction.

All accept 2D or 3D coordinates; the value is in the coordinates' unit. Means pool every
visible (sample, joint) pair; a joint never visible is NaN in ``per_joint()`` only.

With ``groups`` (names, e.g. the 15 Human3.6M actions) each batch also gives ``group``
``[B]`` (an index into ``groups``), and ``per_group()`` reports the number per group plus
``(mean)``, the unweighted mean over the groups that have samples (the "Avg" column of
per-action tables; the headline number pools every sample instead).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
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

    def __init__(self, groups: Sequence[str] | None = None, group_by: str = "group") -> None:
        super().__init__()
        if groups is not None and (isinstance(groups, str) or not all(isinstance(g, str) for g in groups)
                                   or not groups):
            raise ComponentError(f"metric '{self.key}': groups must be a list of names, got {groups!r}")
        self.groups = None if groups is None else tuple(groups)
        self.group_by = str(group_by)

    def update(self, pred: Tensor, target: Tensor, visible: Tensor | None = None, group: Tensor | None = None,
               **extras: Any) -> None:
        """Accumulate a batch (``group`` [B]: each sample's index into ``groups``); other keyword
        tensors (for other metrics of a group) are ignored."""
        pred, target, vis = checked_keypoints(self.key, pred, target, visible)
        dist, vis = self._distances(pred, target, vis)
        if self.groups is None:
            self.accumulate(distance=dist, visible=vis)
            return
        if group is None:
            raise ComponentError(f"metric '{self.key}' has groups but was given no 'group'",
                                 hint="add group: FIELD (e.g. group: action) to the metrics node's in:")
        index = torch.as_tensor(group, device=dist.device).reshape(-1).long()
        if index.shape[0] != dist.shape[0] or (index.numel() and not (0 <= int(index.min())
                                                                      and int(index.max()) < len(self.groups))):
            raise ComponentError(f"metric '{self.key}': group must hold one index per sample within "
                                 f"0..{len(self.groups) - 1} (its {len(self.groups)} groups)")
        self.accumulate(distance=dist, visible=vis, group=index)

    def per_group(self) -> dict[str, dict[str, float]]:
        """``{"MPJPE by action": {group: value, ..., "(mean)": value}}``; empty without groups."""
        if self.groups is None:
            return {}
        samples, group = self.per_sample().get(self.name), self.gathered("group")
        if samples is None or not group.numel():
            return {}
        counted = samples.counted.double()
        values = torch.where(samples.counted, samples.values.double(), torch.zeros((), dtype=torch.float64))
        sums = torch.zeros(len(self.groups), dtype=torch.float64).index_add_(0, group, values.sum(1))
        counts = torch.zeros(len(self.groups), dtype=torch.float64).index_add_(0, group, counted.sum(1))
        means = sums / counts.clamp_min(1)
        if samples.root:
            means = means.sqrt()
        row = {name: float(v) for name, v, n in zip(self.groups, means, counts) if n > 0}
        if row:
            row["(mean)"] = sum(row.values()) / len(row)
        return {f"{self.name} by {self.group_by}": row}

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
    samples whose root is not visible then count for nothing. ``groups``, ``group_by``: the
    number per group as well (Human3.6M's actions: see the module).
    """

    name = "MPJPE"
    key = "mpjpe"

    def __init__(self, root: int | None = None, groups: Sequence[str] | None = None, group_by: str = "group") -> None:
        super().__init__(groups, group_by)
        if root is not None and (isinstance(root, bool) or int(root) != root or root < 0):
            raise ComponentError(f"metric 'mpjpe': root must be a joint index, got {root!r}")
        self.root = None if root is None else int(root)

    def _distances(self, pred: Tensor, target: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:
        pred, target, vis = self.rooted(pred, target, vis)
        return (pred - target).norm(dim=-1), vis

    def rooted(self, pred: Tensor, target: Tensor, vis: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Both skeletons relative to their ``root`` joint (unchanged without one), and which
        joints count: those visible in samples whose root is visible."""
        if self.root is None:
            return pred, target, vis
        if self.root >= pred.shape[1]:
            raise ComponentError(f"metric '{self.key}': root {self.root} is not one of the {pred.shape[1]} joints")
        r = self.root
        return pred - pred[:, r:r + 1], target - target[:, r:r + 1], vis & vis[:, r:r + 1]


class NMPJPE(MPJPE):
    """N-MPJPE: MPJPE after scaling each prediction to fit its target, optionally root-relative.

    The scale is the least-squares one over the sample's visible joints,
    ``sum(p . t) / sum(p . p)`` (Rhodin et al., 2018, as VideoPose3D computes it), after
    ``root`` is subtracted; a sample whose prediction is all zero gets scale 0. It measures
    the pose without the person's size, which a single image does not fix.
    """

    name = "N-MPJPE"
    key = "n_mpjpe"

    def _distances(self, pred: Tensor, target: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:
        pred, target, vis = self.rooted(pred, target, vis)
        p, t, mask = pred.double(), target.double(), vis.unsqueeze(-1)
        power = torch.where(mask, p * p, 0.0).sum((1, 2))
        fit = torch.where(mask, p * t, 0.0).sum((1, 2))
        scale = torch.where(power > 0, fit / power.clamp_min(torch.finfo(p.dtype).tiny), torch.zeros_like(power))
        return (scale[:, None, None] * p - t).norm(dim=-1), vis


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
