"""Percentiles of the keypoint error: how bad the typical and the worst joints are.

Mean errors (EPE, RMSE) mix the many small errors with the few large ones; a decoder that
is better on average can still be worse on the hard joints. ``percentile_error`` reports
the error below which a given share of the visible joints fall, e.g. the median
(``EPE@p50``) and the 90th percentile (``EPE@p90``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from kitpose.errors import ComponentError
from kitpose.metric import Metric


class PercentileError(Metric):
    """Percentiles of the distance between predicted and true visible keypoints (EPE@p50, EPE@p90).

    ``percentiles``: which ones, each in (0, 100] (default 50 and 90). Distances are in the
    keypoints' unit (pixels). NaN until a visible joint has been seen.
    """

    def __init__(self, percentiles: Sequence[float] = (50, 90)) -> None:
        super().__init__()
        try:
            values = tuple(float(p) for p in percentiles)
        except (TypeError, ValueError):
            values = ()
        if not values or not all(0 < p <= 100 for p in values):
            raise ComponentError(f"metric 'percentile_error': percentiles must be numbers in (0, 100], "
                                 f"got {percentiles!r}", hint="write percentiles: [50, 90]")
        self.percentiles = values

    def output_names(self) -> tuple[str, ...]:
        """Result names, one per percentile: ``EPE@p50`` ... (``kitpose check`` reads them, so a
        ``val.metric`` naming none of them is refused before training)."""
        return tuple(f"EPE@p{p:g}" for p in self.percentiles)

    def update(self, pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None = None,
               **extras: Any) -> None:
        """Store a batch's distances ``[B, K]``; other tensors of a metrics group are ignored."""
        if pred.shape != target.shape or pred.dim() != 3:
            raise ComponentError(f"metric 'percentile_error': pred {tuple(pred.shape)} and target "
                                 f"{tuple(target.shape)} must both be [B, K, 2|3]")
        distance = (pred.double() - target.double()).norm(dim=-1)
        shown = torch.ones_like(distance, dtype=torch.bool) if visible is None else visible.to(pred.device) > 0
        self.accumulate(distance=distance, visible=shown)

    def _quantiles(self, dim: int | None) -> torch.Tensor:
        """Percentiles over all visible joints (``dim=None``) or per joint (``dim=0``)."""
        distance, visible = self.gathered("distance"), self.gathered("visible")
        q = torch.tensor(self.percentiles, dtype=torch.float64) / 100
        if distance.numel() == 0:
            return torch.full((len(q),), float("nan"), dtype=torch.float64)
        masked = torch.where(visible, distance, torch.full_like(distance, float("nan")))
        values = masked.flatten() if dim is None else masked
        return torch.nanquantile(values, q, dim=0 if dim is not None else None)

    def compute(self) -> dict[str, float]:
        return dict(zip(self.output_names(), self._quantiles(None).tolist()))

    def per_joint(self) -> dict[str, list[float]]:
        if self.gathered("distance").numel() == 0:
            return {}
        return dict(zip(self.output_names(), self._quantiles(0).tolist()))
