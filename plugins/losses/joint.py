"""Coordinate losses (the Integral paper's integral loss and its L2 variant).

``pred`` and ``target`` are joint coordinates ``[B, K, 2|3]``; ``weights`` is the
visibility ``[B, K]`` (or one weight per axis, ``[B, K, D]``). As in the Integral
reference, the loss is summed over joints and axes and averaged over the batch, so
invisible joints (weight 0) neither add to it nor receive a gradient.
"""
from __future__ import annotations

from torch import Tensor, nn

from kitpose_plugins.losses.common import check_pair, joint_weights


def _weighted_sum(name: str, error: Tensor, pred: Tensor, weights: Tensor | None) -> Tensor:
    w = joint_weights(name, weights, pred, per_axis=True)
    return (error * w).sum() / max(pred.shape[0], 1)


class JointL1(nn.Module):
    """Integral loss: visibility-weighted |pred - target| summed over joints and axes, batch mean."""

    outputs = ("loss",)

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
        check_pair("joint_l1", pred, target, coordinates=True)
        error = (pred.float() - target.float()).abs()
        return {"loss": _weighted_sum("joint_l1", error, pred, weights)}


class JointL2(nn.Module):
    """Squared coordinate error weighted by visibility, summed over joints and axes, batch mean."""

    outputs = ("loss",)

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
        check_pair("joint_l2", pred, target, coordinates=True)
        error = (pred.float() - target.float()).pow(2)
        return {"loss": _weighted_sum("joint_l2", error, pred, weights)}
