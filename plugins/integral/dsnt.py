"""DSNT's losses (Nibali et al., 2018, "Numerical Coordinate Regression with Convolutional
Neural Networks"; the reference library is ``dsntnn``).

DSNT trains ``dsnt(flat_softmax(logits))`` - the soft-argmax with ``beta = 1``, decoder
``soft_argmax`` here - with a Euclidean loss on the coordinates plus ``lambda`` times a
regulariser that pulls each normalised map towards a Gaussian centred on the target:

- ``dsnt_reg``: the Jensen-Shannon (or Kullback-Leibler) divergence between
  ``softmax(logits)`` over the whole map and the target Gaussian of ``sigma`` cells,
  normalised to sum 1 (dsntnn's ``js_reg_losses`` / ``kl_reg_losses``, whose ``sigma_t`` is
  in pixels: the same number as cells here, its normalised-unit Gaussian ``2 sigma / n``
  is this one drawn in cells);
- ``joint_euclidean``: the distance between predicted and target keypoints (dsntnn's
  ``euclidean_losses``), in cells or, given ``heatmap_size``, in dsntnn's normalised units
  (a cell is ``2 / n`` of them on an axis of ``n`` cells).

Both average over the weighted joints as dsntnn's ``average_loss`` does:
``sum(weight * loss) / max(sum(weight), 1)``. Everything is batched; maps and volumes
(``[B, K, h, w]``, ``[B, K, d, h, w]``) alike, computed in float32 (float64 stays).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kitpose.errors import ComponentError
from kitpose_plugins.codecs.common import (choice, coordinate_dtype, fail, one_thread_if_small, outer, positive,
                                           positive_int)
from kitpose_plugins.integral.soft_argmax import BLOCK
from kitpose_plugins.losses.common import check_pair, joint_weights

#: dsntnn's guard inside its logarithms and Gaussian normalisation.
EPS = 1e-24


def average(losses: Tensor, weights: Tensor) -> Tensor:
    """dsntnn's ``average_loss``: ``sum(w * loss) / max(sum(w), 1)``."""
    return (losses * weights).sum() / weights.sum().clamp(min=1.0)


def target_gaussians(centres: Tensor, spatial: torch.Size, sigma: float) -> Tensor:
    """Gaussians of ``sigma`` cells at ``centres [B, K, n]`` (x, y[, z]) over ``spatial``, each
    normalised to sum 1 as dsntnn's ``make_gauss``; separable, so drawn as an outer product
    of per-axis profiles."""
    profiles = []
    for axis, size in enumerate(reversed(spatial)):
        cells = torch.arange(size, dtype=centres.dtype, device=centres.device)
        profiles.append(torch.exp(-0.5 * ((cells - centres[..., axis, None]) / sigma) ** 2))
    total = torch.ones_like(centres[..., 0])
    for profile in profiles:
        total = total * profile.sum(-1)
    profiles[0] = profiles[0] / (total + EPS).unsqueeze(-1)
    return outer(profiles).flatten(2)


def kl(p: Tensor, log_p: Tensor, q: Tensor) -> Tensor:
    """``sum p (log p - log(q + eps))`` over the last dimension (dsntnn's ``_kl``)."""
    return (p * (log_p - torch.log(q + EPS))).sum(-1)


class DsntRegulariser(nn.Module):
    """DSNT's regulariser: JS (or KL) divergence of softmax(logits) from a target Gaussian of sigma cells.

    ``pred``: logits ``[B, K, h, w]`` (or ``[B, K, d, h, w]``), normalised by a softmax over
    each whole map; ``target``: keypoints ``[B, K, 2|3]`` in heatmap cells (x, y[, z]), or
    target maps of ``pred``'s shape (each normalised to sum 1; an empty map adds nothing);
    ``weights``: ``[B, K]``. ``sigma``: the target Gaussian's standard deviation in cells
    (dsntnn's ``sigma_t`` in pixels). ``divergence``: ``js`` (Jensen-Shannon, the paper's
    choice, bounded by ln 2) or ``kl`` (``KL(p || q)``, dsntnn's ``kl_reg_losses``).
    Returns ``{"loss": mean divergence over the weighted joints}``.
    """

    outputs = ("loss",)
    label = "loss 'dsnt_reg'"

    def __init__(self, sigma: float = 1.0, divergence: str = "js") -> None:
        super().__init__()
        self.sigma = positive(self.label, "sigma", sigma)
        self.divergence = choice(self.label, "divergence", divergence, ("js", "kl"))

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
        """``{"loss": the weighted mean divergence}`` (see the class docstring)."""
        if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
            raise ComponentError(f"{self.label} takes tensors for pred and target, got "
                                 f"{type(pred).__name__} and {type(target).__name__}")
        n = pred.dim() - 2
        if n not in (2, 3) or 0 in pred.shape[2:]:
            raise fail(self.label, f"pred must be logits [B, K, h, w] or [B, K, d, h, w], got shape "
                       f"{tuple(pred.shape)}", hint="connect the model's heatmaps to pred")
        maps = target.shape == pred.shape
        if not maps and not (target.dim() == 3 and target.shape[:2] == pred.shape[:2] and target.shape[-1] == n):
            raise fail(self.label, f"target {tuple(target.shape)} does not fit pred {tuple(pred.shape)}: "
                       f"expected keypoints [B, K, {n}] in heatmap cells or maps of pred's shape",
                       hint="pass encoder.to_heatmap(keypoints) as target")
        per = max(1, BLOCK // max(1, pred[0].numel())) if pred.shape[0] else 1
        with one_thread_if_small(pred.numel(), pred.device):  # decided by the whole batch's size
            if pred.device.type == "cpu" and pred.shape[0] > 2 * per:  # in cache-sized blocks of samples
                per_joint = torch.cat([self.divergences(p, t, maps) for p, t in zip(pred.split(per), target.split(per))])
            else:
                per_joint = self.divergences(pred, target, maps)
            w = joint_weights("dsnt_reg", weights, pred).to(per_joint.dtype)
            return {"loss": average(per_joint, w)}

    def divergences(self, pred: Tensor, target: Tensor, maps: bool) -> Tensor:
        """``[B, K]``: each map's divergence from its target (Gaussians at keypoints, or maps)."""
        dtype = coordinate_dtype(pred.dtype)
        log_p = F.log_softmax(pred.to(dtype).flatten(2), dim=-1)
        p = log_p.exp()
        present = None
        if maps:
            t = target.to(dtype).flatten(2).clamp_min(0)
            mass = t.sum(-1)
            present = (mass > 0).to(dtype)
            q = t / mass.clamp_min(EPS).unsqueeze(-1)
        else:
            q = target_gaussians(target.to(dtype), pred.shape[2:], self.sigma)
        if self.divergence == "kl":
            per_joint = kl(p, log_p, q)
        else:  # 0.5 KL(p || m) + 0.5 KL(q || m) = 0.5 (sum p log p + sum q log q) - sum m log m
            m = 0.5 * (p + q)
            per_joint = (0.5 * ((p * log_p).sum(-1) + torch.special.xlogy(q, q + EPS).sum(-1))
                         - torch.special.xlogy(m, m + EPS).sum(-1))
        return per_joint if present is None else per_joint * present


class JointEuclidean(nn.Module):
    """Euclidean distance per joint averaged over the weighted joints (dsntnn's Euclidean loss).

    ``pred``, ``target``: keypoints ``[B, K, D]`` in heatmap cells; ``weights``: ``[B, K]``.
    ``heatmap_size``: ``[w, h]`` (``[w, h, d]`` for 3D) measures the distance in dsntnn's
    normalised units (a cell is ``2 / n`` on an axis of ``n`` cells); ``null`` keeps cells.
    The loss is ``sum(weight * distance) / max(sum(weight), 1)``, dsntnn's ``average_loss``.
    """

    outputs = ("loss",)
    label = "loss 'joint_euclidean'"

    def __init__(self, heatmap_size: list[int] | None = None) -> None:
        super().__init__()
        if heatmap_size is None:
            self.scale = None
        else:
            ok = isinstance(heatmap_size, (list, tuple)) and len(heatmap_size) in (2, 3)
            if not ok:
                raise fail(self.label, f"'heatmap_size' must be [w, h] or [w, h, d] in cells, got "
                           f"{heatmap_size!r}", hint="write heatmap_size: [48, 64]")
            sizes = [positive_int(self.label, "heatmap_size", s) for s in heatmap_size]
            self.scale = tuple(2.0 / s for s in sizes)

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> dict[str, Tensor]:
        """``{"loss": the weighted mean distance}``."""
        check_pair("joint_euclidean", pred, target, coordinates=True)
        dtype = coordinate_dtype(pred.dtype)
        diff = pred.to(dtype) - target.to(dtype)
        if self.scale is not None:
            if len(self.scale) != diff.shape[-1]:
                raise fail(self.label, f"heatmap_size has {len(self.scale)} sizes for "
                           f"{diff.shape[-1]}D keypoints", hint="give one size per axis: [w, h(, d)]")
            diff = diff * diff.new_tensor(self.scale)
        distance = torch.linalg.vector_norm(diff, dim=-1)
        return {"loss": average(distance, joint_weights("joint_euclidean", weights, pred).to(dtype))}
