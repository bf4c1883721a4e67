"""Built-in plugin 'metrics': PCKh, PCK, AUC, RMSE, EPE, MPJPE, PA-MPJPE and COCO OKS AP.

Registered lazily; the implementations (and torch) load when a metric is first built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Registry


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.metric("pckh", "kitpose_plugins._metric_pck:PCKh")
    registry.metric("pck", "kitpose_plugins._metric_pck:PCK")
    registry.metric("auc", "kitpose_plugins._metric_pck:AUC")
    registry.metric("rmse", "kitpose_plugins._metric_distance:RMSE")
    registry.metric("epe", "kitpose_plugins._metric_distance:EPE")
    registry.metric("mpjpe", "kitpose_plugins._metric_distance:MPJPE")
    registry.metric("pa_mpjpe", "kitpose_plugins._metric_distance:PAMPJPE")
    registry.metric("oks_ap", "kitpose_plugins._metric_coco:OKSAP")
