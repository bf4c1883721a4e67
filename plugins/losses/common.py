"""Shape checks and weight handling shared by the built-in losses.

Every loss takes ``pred``, ``target`` and optional per-joint ``weights``; these helpers
turn a shape mistake into one clear :class:`~kitpose.errors.ComponentError` line instead
of a broadcasting error deep inside torch.
"""
from __future__ import annotations

import torch
from torch import Tensor

from kitpose.errors import ComponentError


def check_pair(loss: str, pred: Tensor, target: Tensor, *, coordinates: bool = False) -> None:
    """Raise unless ``pred`` and ``target`` share one shape: maps ``[B, K, ...]`` (at least
    3 dims) or, with ``coordinates``, ``[B, K, D]``."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise ComponentError(f"loss '{loss}' takes tensors for pred and target, got "
                             f"{type(pred).__name__} and {type(target).__name__}")
    fits = pred.dim() == 3 if coordinates else pred.dim() >= 3
    if pred.shape != target.shape or not fits:
        want = "[B, K, D] coordinates" if coordinates else "[B, K, ...] maps"
        raise ComponentError(f"loss '{loss}': pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                             f"must be {want} of the same shape")


def joint_weights(loss: str, weights: Tensor | None, pred: Tensor, *, per_axis: bool = False) -> Tensor:
    """Per-joint weights as a float tensor broadcastable against ``pred``'s first dims.

    Returns ``[B, K]``; with ``per_axis`` (coordinate losses) returns ``[B, K, 1]`` or,
    when ``weights`` is ``[B, K, D]``, one weight per axis. ``None`` means all ones.
    """
    batch, joints = pred.shape[0], pred.shape[1]
    if weights is None:
        ones = pred.new_ones((batch, joints), dtype=torch.float32)
        return ones.unsqueeze(-1) if per_axis else ones
    w = weights.to(device=pred.device, dtype=torch.float32)
    if w.dim() == 3 and w.shape[-1] == 1:
        w = w.squeeze(-1)
    if w.shape == (batch, joints):
        return w.unsqueeze(-1) if per_axis else w
    if per_axis and w.shape == pred.shape:
        return w
    expected = "[B, K] or [B, K, D]" if per_axis else "[B, K]"
    raise ComponentError(f"loss '{loss}': weights {tuple(weights.shape)} do not fit pred "
                         f"{tuple(pred.shape)}; expected {expected}")
