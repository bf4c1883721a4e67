"""Built-in plugin 'metrics': PCKh, PCK, AUC, RMSE, EPE, MPJPE, N-MPJPE, PA-MPJPE and COCO OKS AP.

Registered lazily; the implementations (and torch) load when a metric is first built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Registry


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.metric("pckh", "kitpose_plugins.metrics.pck:PCKh")
    registry.metric("pck", "kitpose_plugins.metrics.pck:PCK")
    registry.metric("auc", "kitpose_plugins.metrics.pck:AUC")
    registry.metric("rmse", "kitpose_plugins.metrics.distance:RMSE")
    registry.metric("epe", "kitpose_plugins.metrics.distance:EPE")
    registry.metric("mpjpe", "kitpose_plugins.metrics.distance:MPJPE")
    registry.metric("n_mpjpe", "kitpose_plugins.metrics.distance:NMPJPE")
    registry.metric("pa_mpjpe", "kitpose_plugins.metrics.distance:PAMPJPE")
    registry.metric("oks_ap", "kitpose_plugins.metrics.coco:OKSAP")
