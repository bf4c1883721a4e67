"""Heatmap losses of the Integral paper's naming: H1 (MSE), H2 (softmax CE), H3 (BCE), and
the MSE of UDP's combined targets (class and offset maps).

All three accept 2D maps ``[B, K, h, w]`` and 3D volumes ``[B, K, d, h, w]`` alike (every
dimension after the joints is one map) and reduce as the reference H1 does: the mean over
batch and joints of ``weight * per-map loss``, so a joint with weight 0 adds nothing but
still counts in the mean. Inputs are computed in float32, also under autocast.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kitpose.errors import ComponentError
from kitpose_plugins.losses.common import check_pair, joint_weights

_EPS = 1e-12


class HeatmapMSE(nn.Module):
    """H1: 0.5 * mean over joints of the target-weighted mean squared error of each heatmap.

    As in the SimpleBaseline/HRNet references, both maps are multiplied by the joint's
    weight before the squared error, so a weight ``w`` scales that joint's error by ``w**2``
    (the same for the usual 0/1 weights). ``target_weight=False`` ignores ``weights``.
    """

    outputs = ("loss",)

    def __init__(self, target_weight: bool = True) -> None:
        super().__init__()
        self.target_weight = bool(target_weight)

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
        check_pair("heatmap_mse", pred, target)
        per_map = (pred.float() - target.float()).flatten(2).pow(2).mean(-1)  # [B, K]
        if self.target_weight:
            per_map = per_map * joint_weights("heatmap_mse", weights, pred).pow(2)
        return {"loss": 0.5 * per_map.mean()}


class HeatmapCE(nn.Module):
    """H2: softmax cross-entropy over each whole map against a one-hot or normalised target.

    ``pred`` holds logits; each target map is divided by its sum, so one-hot maps and
    Gaussians both become distributions. A target map summing to zero (the joint is not
    on the map) contributes nothing.
    """

    outputs = ("loss",)

    def __init__(self, target_weight: bool = True) -> None:
        super().__init__()
        self.target_weight = bool(target_weight)

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
        check_pair("heatmap_ce", pred, target)
        log_p = F.log_softmax(pred.float().flatten(2), dim=-1)
        t = target.float().flatten(2).clamp_min(0)
        mass = t.sum(-1)  # [B, K]
        dist = t / mass.clamp_min(_EPS).unsqueeze(-1)
        per_map = -(dist * log_p).sum(-1) * (mass > 0)
        if self.target_weight:
            per_map = per_map * joint_weights("heatmap_ce", weights, pred)
        return {"loss": per_map.mean()}


class HeatmapBCE(nn.Module):
    """H3: per-pixel binary cross-entropy of each map against a 0..1 target such as a disk.

    ``pred`` holds logits (``logits=True``, numerically stable) or probabilities
    (``logits=False``, clamped away from 0 and 1). Each map's loss is its pixel mean.
    """

    outputs = ("loss",)

    def __init__(self, target_weight: bool = True, logits: bool = True) -> None:
        super().__init__()
        self.target_weight = bool(target_weight)
        self.logits = bool(logits)

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
        check_pair("heatmap_bce", pred, target)
        p, t = pred.float(), target.float()
        if self.logits:
            per_pixel = F.binary_cross_entropy_with_logits(p, t, reduction="none")
        else:
            p = p.clamp(1e-7, 1 - 1e-7)
            per_pixel = -(t * torch.log(p) + (1 - t) * torch.log1p(-p))
        per_map = per_pixel.flatten(2).mean(-1)
        if self.target_weight:
            per_map = per_map * joint_weights("heatmap_bce", weights, pred)
        return {"loss": per_map.mean()}


class CombinedMSE(nn.Module):
    """MSE for UDP's combined targets ``[B, 3K, h, w]`` (class disk, x offset, y offset per joint).

    As mmpose's ``CombinedTargetMSELoss``: per joint, ``0.5 * MSE`` of the classification
    maps (both multiplied by the joint's weight, as H1 does) plus ``0.5 * MSE`` of each offset
    map, both masked by the target's disk times that weight, so only cells near a weighted
    keypoint learn an offset; the mean over joints. ``target_weight=False`` ignores ``weights``.
    """

    outputs = ("loss",)

    def __init__(self, target_weight: bool = True) -> None:
        super().__init__()
        self.target_weight = bool(target_weight)

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
        """``{"loss": scalar}`` for ``[B, 3K, h, w]`` maps and ``[B, K]`` weights."""
        check_pair("combined_mse", pred, target)
        if pred.dim() != 4 or pred.shape[1] % 3:
            raise ComponentError(f"loss 'combined_mse': pred {tuple(pred.shape)} must be [B, 3K, h, w] "
                                 "combined maps (class, x offset, y offset per joint)",
                                 hint="connect an encoder like udp_combined and a head with joints: 3K")
        b, c = pred.shape[:2]
        p = pred.float().reshape(b, c // 3, 3, -1)
        t = target.float().reshape(b, c // 3, 3, -1)
        cls_p, cls_t = p[:, :, 0], t[:, :, 0]
        if self.target_weight:
            w = joint_weights("combined_mse", weights, cls_p)[..., None]
            cls_p, cls_t = cls_p * w, cls_t * w
        classification = (cls_p - cls_t).pow(2).mean(-1)  # [B, K]
        offsets = (cls_t[:, :, None] * (p[:, :, 1:] - t[:, :, 1:])).pow(2).mean(-1).sum(-1)  # [B, K]
        return {"loss": 0.5 * (classification + offsets).mean(0).mean()}
