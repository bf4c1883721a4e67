"""SimCC's loss: KL divergence between each label vector and the softmax of its logits."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kitpose.errors import ComponentError
from kitpose_plugins.codecs.common import choice, flag, positive
from kitpose_plugins.losses.common import joint_weights

NAME = "simcc_kl"


class SimCCKL(nn.Module):
    """SimCC's KL loss (mmpose's KLDiscretLoss): KL(labels || softmax(beta * logits)) per vector.

    For each joint and axis: ``p = log_softmax(beta * pred)``, ``t = target`` (or
    ``softmax(label_beta * target)`` with ``label_softmax``), and the mean over the bins of
    ``t (log t - p)`` (``0 log 0 = 0``). Each joint's x and y terms are multiplied by its
    weight (``target_weight: true``) and summed over the batch, the joints and both axes;
    ``reduction: mmpose`` divides the sum by K as mmpose does (so the loss grows with the
    batch), ``mean`` by B x K. Computed in float32, also under autocast.

    Called as ``loss(pred_x=, pred_y=, target_x=, target_y=, weights=[B, K])``.
    """

    outputs = ("loss",)

    def __init__(self, beta: float = 1.0, label_softmax: bool = False, label_beta: float = 10.0,
                 target_weight: bool = True, reduction: Literal["mmpose", "mean"] = "mmpose") -> None:
        super().__init__()
        label = f"loss '{NAME}'"
        self.beta, self.label_beta = positive(label, "beta", beta), positive(label, "label_beta", label_beta)
        self.label_softmax = flag(label, "label_softmax", label_softmax)
        self.target_weight = flag(label, "target_weight", target_weight)
        self.reduction = choice(label, "reduction", reduction, ("mmpose", "mean"))

    def divergence(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[B, K]``: the mean over bins of ``t (log t - log_softmax(beta pred))``."""
        log_p = F.log_softmax(pred.float() * self.beta, dim=-1)
        t = target.float()
        if self.label_softmax:
            t = F.softmax(t * self.label_beta, dim=-1)
        return (torch.xlogy(t, t) - t * log_p).mean(dim=-1)

    def forward(self, pred_x: Tensor, pred_y: Tensor, target_x: Tensor, target_y: Tensor,
                weights: Tensor | None = None) -> dict[str, Tensor]:
        for axis, pred, target in (("x", pred_x, target_x), ("y", pred_y, target_y)):
            if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
                raise ComponentError(f"loss '{NAME}' takes tensors for pred_{axis} and target_{axis}, got "
                                     f"{type(pred).__name__} and {type(target).__name__}")
            if pred.dim() != 3 or pred.shape != target.shape:
                raise ComponentError(f"loss '{NAME}': pred_{axis} {tuple(pred.shape)} and target_{axis} "
                                     f"{tuple(target.shape)} must be [B, K, L] vectors of the same shape")
        if pred_x.shape[:2] != pred_y.shape[:2]:
            raise ComponentError(f"loss '{NAME}': pred_x {tuple(pred_x.shape)} and pred_y "
                                 f"{tuple(pred_y.shape)} must share [B, K]")
        per_joint = self.divergence(pred_x, target_x) + self.divergence(pred_y, target_y)  # [B, K]
        if self.target_weight:
            per_joint = per_joint * joint_weights(NAME, weights, pred_x)
        batch, joints = per_joint.shape
        return {"loss": per_joint.sum() / (joints * (batch if self.reduction == "mean" else 1))}
