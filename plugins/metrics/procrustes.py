"""Batched similarity Procrustes alignment (rotation, uniform scale, translation).

Umeyama's closed form, solved for every sample at once with one batched SVD: the
rotation is ``V diag(1, .., 1, sign det(V U^T)) U^T`` so it never contains a reflection,
the scale is ``trace(S diag(..)) / sum |x|^2`` and the translation maps centroids.
Only the masked (visible) joints take part in the fit.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _det(m: Tensor) -> Tensor:
    """Determinants of a batch of small matrices; closed form for 2x2 and 3x3, which is much
    faster on CPU than the general LU path of :func:`torch.linalg.det`."""
    if m.shape[-1] == 2:
        return m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    if m.shape[-1] == 3:
        return (m[:, 0] * torch.linalg.cross(m[:, 1], m[:, 2], dim=-1)).sum(-1)
    return torch.linalg.det(m)


def similarity_align(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """``pred`` ``[B, K, D]`` moved by the similarity that best fits it to ``target`` on ``mask``.

    A sample with fewer than two masked joints, or all of them at one point, gets scale 0:
    every joint lands on the target's centroid.
    """
    p, t = pred.double(), target.double()
    keep = torch.ones(p.shape[:2], dtype=torch.bool, device=p.device) if mask is None else mask.bool()
    keep = keep.unsqueeze(-1)  # [B, K, 1]; masked joints may hold anything, even NaN
    n = keep.sum(1, keepdim=True).clamp_min(1)
    p0, t0 = torch.where(keep, p, 0.0), torch.where(keep, t, 0.0)
    mu_p, mu_t = p0.sum(1, keepdim=True) / n, t0.sum(1, keepdim=True) / n
    x, y = torch.where(keep, p - mu_p, 0.0), torch.where(keep, t - mu_t, 0.0)
    cov = x.transpose(1, 2) @ y  # [B, D, D] = sum_k x_k y_k^T
    u, s, vh = torch.linalg.svd(cov)
    v = vh.transpose(1, 2)
    sign = torch.sign(_det(v @ u.transpose(1, 2)))
    fix = torch.ones_like(s)
    fix[:, -1] = torch.where(sign == 0, torch.ones_like(sign), sign)
    rotation = v @ torch.diag_embed(fix) @ u.transpose(1, 2)
    spread = x.pow(2).sum((1, 2))
    scale = torch.where(spread > 0, (s * fix).sum(-1) / spread.clamp_min(torch.finfo(p.dtype).tiny),
                        torch.zeros_like(spread))
    return scale[:, None, None] * (p - mu_p) @ rotation.transpose(1, 2) + mu_t
