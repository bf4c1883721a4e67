"""Built-in plugin 'losses': heatmap losses H1-H3, UDP's combined-target MSE, coordinate losses
and multi-stage supervision.

Registered lazily; the implementations (and torch) load when a loss is first built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Registry


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.loss("heatmap_mse", "kitpose_plugins.losses.heatmap:HeatmapMSE")
    registry.loss("heatmap_ce", "kitpose_plugins.losses.heatmap:HeatmapCE")
    registry.loss("heatmap_bce", "kitpose_plugins.losses.heatmap:HeatmapBCE")
    registry.loss("combined_mse", "kitpose_plugins.losses.heatmap:CombinedMSE")
    registry.loss("joint_l1", "kitpose_plugins.losses.joint:JointL1")
    registry.loss("joint_l2", "kitpose_plugins.losses.joint:JointL2")
    registry.loss("multi_stage", "kitpose_plugins.losses.multi_stage:MultiStage")
