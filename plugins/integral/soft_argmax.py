"""Soft-argmax (integral regression): expected coordinates under ``softmax(beta * h)``.

Differentiable end to end, so a loss on the coordinates trains the heatmaps (the Integral
Human Pose Regression paper). Two forms with the same value:

- direct: expectation of the cell coordinates over the whole normalised map or volume;
- marginal ("two-step" integral): sum the normalised volume down to 1D distributions over
  x, y (and z) first, then take each 1D expectation. This is the form the paper uses to let
  2D-only samples supervise x and y from the same volume.

On Gaussian-valued maps with ``beta = 1`` the softmax is nearly flat and the estimate is
pulled to the map centre (about 15 px off on 64x48): it is meant for learned logits.

``debias: true`` removes that pull in closed form (Gu, Yang, Yao, "Removing the Bias of
Integral Pose Regression", ICCV 2021). With ``C = sum(exp(beta * h))`` over the ``N``
cells, and a background of logit 0 that adds ``exp(0) = 1`` per cell, the expectation is
``J = (1 - N/C) J_peak + (N/C) c`` (``c``: the centre of the grid, ``(size - 1) / 2``
cells per axis); so ``J_peak = c + (J - c) * C / (C - N)``. The relation is exact when
``exp(beta * h) - 1`` is symmetric about the peak, whatever its shape or extent.

DSNT (Nibali et al., 2018; the ``dsntnn`` library's ``dsnt(flat_softmax(h))``) is this
decoder with ``beta = 1``: dsntnn reports the same expectation in normalised units, where
the centre of cell ``i`` of an axis of ``n`` cells is ``(2 i + 1) / n - 1`` (the map spans
[-1, 1]); in cells, ``x = ((x_norm + 1) n - 1) / 2``. Its regulariser is the loss
``dsnt_reg`` (see :mod:`kitpose_plugins.integral.dsnt`).
"""
from __future__ import annotations

import functools
from typing import Any

import torch

from kitpose_plugins.codecs.common import (axis_moments, coordinate_dtype, fail, flag, heatmap_batch,
                                           one_thread_if_small, positive, positive_int)


class SoftArgmax:
    """Soft-argmax (integral regression) over 2D maps or 3D volumes; differentiable, optionally debiased.

    ``beta``: softmax temperature (logits are multiplied by it). ``depth_bins``: read
    ``[B, K * d, h, w]`` logits as volumes ``[B, K, d, h, w]`` (a ``[B, K, d, h, w]``
    input must then have ``d == depth_bins``). ``marginal``: use the two-step marginal form.
    ``debias``: remove the pull towards the map centre that the background's share of the
    softmax causes (Gu et al., 2021), assuming background logits of 0; the gain
    ``C / (C - N)`` is capped at ``N`` (where the peak's excess ``C - N`` is below one
    background cell's worth, such as flat or all-negative maps) and the result is kept on
    the map. Scores are the largest probability of each distribution (``1 / cells`` when flat).
    """

    outputs = ("keypoints", "scores")
    differentiable = True
    spatial = (2, 3)
    label = "decoder 'soft_argmax'"

    def __init__(self, beta: float = 1.0, depth_bins: int | None = None, marginal: bool = False,
                 debias: bool = False) -> None:
        self.beta = positive(self.label, "beta", beta)
        self.depth_bins = None if depth_bins is None else positive_int(self.label, "depth_bins", depth_bins)
        self.marginal = flag(self.label, "marginal", marginal)
        self.debias = flag(self.label, "debias", debias)

    def volumes(self, heatmaps: Any) -> torch.Tensor:
        """The input as ``[B, K, h, w]`` maps or ``[B, K, d, h, w]`` volumes (checked)."""
        maps = heatmap_batch(self.label, heatmaps, (2, 3))
        bins = self.depth_bins
        if bins is None:
            return maps
        if maps.dim() == 4:
            if maps.shape[1] % bins:
                raise fail(self.label, f"{maps.shape[1]} channels are not joints x depth_bins "
                           f"({bins})", hint="set depth_bins to the model's depth resolution")
            return maps.unflatten(1, (maps.shape[1] // bins, bins))
        if maps.shape[2] != bins:
            raise fail(self.label, f"volumes have {maps.shape[2]} depth bins, depth_bins is {bins}",
                       hint=f"set depth_bins: {maps.shape[2]}")
        return maps

    def __call__(self, heatmaps: Any) -> dict[str, torch.Tensor]:
        """Expected ``keypoints [B, K, 2|3]`` (cells; z in depth bins) and ``scores [B, K]``."""
        maps = self.volumes(heatmaps)
        per = max(1, BLOCK // max(1, maps[0].numel())) if maps.shape[0] else 1
        with one_thread_if_small(maps.numel(), maps.device):  # decided by the whole batch's size
            if maps.device.type == "cpu" and maps.shape[0] > 2 * per:  # in cache-sized blocks of samples
                parts = [self.expectation(block) for block in maps.split(per)]
                return {key: torch.cat([part[key] for part in parts]) for key in self.outputs}
            return self.expectation(maps)

    def expectation(self, maps: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`__call__`'s work on checked ``[B, K, (d,) h, w]`` maps (one block)."""
        maps = maps.to(coordinate_dtype(maps.dtype))
        logits = maps.flatten(2) * self.beta
        if self.debias:
            return debiased(logits, maps.shape, self.marginal)
        prob = torch.softmax(logits, dim=-1)
        return {"keypoints": moments(prob, maps.shape, self.marginal), "scores": prob.amax(dim=-1)}


#: CPU work is done in blocks of about this many cells: the softmax, its sums and moments
#: make several passes over the maps, which stay in the cache only when the block does
BLOCK = 1 << 19


def moments(weights: torch.Tensor, shape: torch.Size, marginal: bool, *, centred: bool = False) -> torch.Tensor:
    """``sum(weight * cell coordinate)`` ``[B, K, n]`` of flat ``[B, K, N]`` weights over ``shape``.

    ``centred``: coordinates relative to the grid's centre, ``x - (size - 1) / 2``.
    """
    if marginal:
        out = axis_moments(weights.view(shape))
        if centred:
            out = out - 0.5 * grid_top(shape[2:], weights) * weights.sum(-1, keepdim=True)
        return out
    return weights @ cell_grid(shape[2:], weights, centred=centred)


def debiased(logits: torch.Tensor, shape: torch.Size, marginal: bool) -> dict[str, torch.Tensor]:
    """The debiased expectation ``c + (J - c) C / (C - N)`` of flat ``[B, K, N]`` logits, and scores.

    Written as the centre of mass of the excess over the background, ``exp(l) - 1``:
    ``C (J - c) = sum(exp(l) (x - c)) = sum((exp(l) - 1) (x - c))`` since the cells' offsets
    from the centre sum to 0, so ``J_peak = c + sum((exp(l) - 1)(x - c)) / (C - N)``. The
    background then adds (near) nothing instead of a large share that cancels, which keeps
    float32 accurate. All sums are scaled by ``exp(-s)``, ``s = max(max(l), 0)``, so nothing
    overflows for large logits (where the result tends to the plain expectation). The gain
    ``C / (C - N)`` is capped at ``N``, i.e. ``C - N >= C / N``, and the result is clamped
    to the grid, ``[0, size - 1]`` per axis: where ``C <= N`` (flat, all-negative or shifted
    logits) the background assumption does not hold.
    """
    cells = logits.shape[-1]
    peak = logits.amax(dim=-1, keepdim=True)
    shift = peak.clamp(min=0)
    scaled = torch.exp(logits - shift)  # exp(l) exp(-s)
    excess = scaled - torch.exp(-shift)  # (exp(l) - 1) exp(-s)
    total = scaled.sum(-1, keepdim=True)  # C exp(-s)
    mass = excess.sum(-1, keepdim=True)  # (C - N) exp(-s)
    offset = moments(excess, shape, marginal, centred=True) / torch.maximum(mass, total / cells)
    top = grid_top(shape[2:], logits)
    keypoints = torch.clamp(offset + 0.5 * top, min=torch.zeros_like(top), max=top)
    scores = (torch.exp(peak - shift) / total).squeeze(-1)  # the softmax's maximum
    return {"keypoints": keypoints, "scores": scores}


def cell_grid(spatial: torch.Size, like: torch.Tensor, *, centred: bool = False) -> torch.Tensor:
    """Coordinates ``[N, n]`` (x, y[, z]) of every cell of a ``spatial`` grid in flattened order
    (relative to the grid's centre with ``centred``); cached per shape, dtype and device."""
    return _grid(tuple(spatial), like.dtype, like.device, centred)


def grid_top(spatial: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """The last cell of each axis, ``size - 1``, as ``[n]`` (x, y[, z])."""
    return _top(tuple(spatial), like.dtype, like.device)


@functools.lru_cache(maxsize=32)
def _top(spatial: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):  # a cached tensor must serve training calls too
        return torch.tensor([size - 1 for size in reversed(spatial)], dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def _grid(spatial: tuple[int, ...], dtype: torch.dtype, device: torch.device, centred: bool) -> torch.Tensor:
    with torch.inference_mode(False):  # a cached tensor must serve training calls too
        axes = [torch.arange(size, dtype=dtype, device=device) - (0.5 * (size - 1) if centred else 0.0)
                for size in spatial]
        grids = torch.meshgrid(*axes, indexing="ij")
        return torch.stack([g.reshape(-1) for g in reversed(grids)], dim=-1)
