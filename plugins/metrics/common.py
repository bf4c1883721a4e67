"""Input checks and masked reductions shared by the built-in keypoint metrics.

Conventions every metric follows:

- ``visible`` ``[B, K]`` marks the labelled joints; only those count (``None``: all).
- Means over joints are pooled over every counted (sample, joint) pair, so a joint that
  is never visible simply adds nothing: it cannot turn a mean into NaN. Its entry in
  ``per_joint()`` is NaN, meaning "no sample" rather than a value.
- A metric that has counted nothing at all reports NaN (COCO AP reports -1, as
  pycocotools does).
- Values are computed in float64; ratios (PCK, AUC, AP) are fractions in [0, 1].
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from kitpose.errors import ComponentError

NAN = float("nan")


def checked_keypoints(metric: str, pred: Tensor, target: Tensor, visible: Tensor | None, *,
                      dims: tuple[int, ...] = (2, 3)) -> tuple[Tensor, Tensor, Tensor]:
    """``pred``, ``target`` as float64 ``[B, K, D]`` and ``visible`` as bool ``[B, K]``."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise ComponentError(f"metric '{metric}' takes tensors for pred and target")
    if pred.dim() != 3 or pred.shape[-1] not in dims or target.shape != pred.shape:
        want = "|".join(str(d) for d in dims)
        raise ComponentError(f"metric '{metric}': pred {tuple(pred.shape)} and target "
                             f"{tuple(target.shape)} must both be [B, K, {want}]")
    batch, joints = pred.shape[:2]
    if visible is None:
        vis = torch.ones((batch, joints), dtype=torch.bool, device=pred.device)
    else:
        vis = visible.to(pred.device)
        if vis.dim() == 3 and vis.shape[-1] == 1:
            vis = vis.squeeze(-1)
        if vis.shape != (batch, joints):
            raise ComponentError(f"metric '{metric}': visible {tuple(visible.shape)} must be "
                                 f"[B, K] = [{batch}, {joints}]")
        vis = vis > 0
    return pred.double(), target.double(), vis


def per_sample(metric: str, name: str, value: Any, batch: int, trailing: tuple[int, ...] = (),
               device: torch.device | None = None) -> Tensor:
    """A required per-sample input as a float64 tensor of shape ``[B, *trailing]``."""
    tensor = torch.as_tensor(value, dtype=torch.float64, device=device)
    if tensor.dim() == 2 and not trailing and tensor.shape[-1] == 1:
        tensor = tensor.squeeze(-1)
    if tuple(tensor.shape) != (batch, *trailing):
        shape = ", ".join(["B", *map(str, trailing)])
        raise ComponentError(f"metric '{metric}': {name} {tuple(tensor.shape)} must be [{shape}] "
                             f"with B = {batch}")
    return tensor


def thresholds_of(metric: str, thresholds: Sequence[float] | float) -> tuple[float, ...]:
    """Validated, positive, finite thresholds (one number is accepted as a list of one)."""
    if isinstance(thresholds, (int, float)):
        thresholds = [thresholds]
    try:
        values = tuple(float(t) for t in thresholds)
    except (TypeError, ValueError):
        raise ComponentError(f"metric '{metric}': thresholds must be a list of numbers") from None
    if not values or any(not (t > 0 and t < float("inf")) for t in values):
        raise ComponentError(f"metric '{metric}': thresholds must be positive numbers, got {list(values)}")
    return values


def label(prefix: str, threshold: float) -> str:
    """``PCKh@0.1``: the threshold exactly as written, never rounded to another value."""
    return f"{prefix}@{threshold:g}" if float(f"{threshold:g}") == threshold else f"{prefix}@{threshold!r}"


def masked_mean(values: Tensor, mask: Tensor) -> tuple[float, list[float]]:
    """(pooled mean over masked entries, per-joint means) of ``values`` ``[N, K]``.

    Entries outside ``mask`` are ignored even when they are inf or NaN. The pooled mean
    is NaN only when nothing is counted; a joint without any counted entry is NaN.
    """
    m = mask.bool()
    v = torch.where(m, values.double(), torch.zeros((), dtype=torch.float64))
    counts = m.sum(0).double()
    sums = v.sum(0)
    total = counts.sum()
    pooled = float(sums.sum() / total) if total > 0 else NAN
    per_joint = torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, NAN))
    return pooled, per_joint.tolist()


def is_empty(*tensors: Tensor) -> bool:
    """True when gathered state holds no sample (nothing was ever accumulated)."""
    return any(t.numel() == 0 or t.dim() < 2 for t in tensors)
