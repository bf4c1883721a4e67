"""Intermediate supervision: one registered loss applied to every stage of a model.

Stacked Hourglass and the Integral paper's multi-stage ResNet return one output per
stage; every stage is supervised with the same loss and the stage losses are summed with
one weight per stage. The wrapped loss is a component spec like any other in a recipe
(:func:`kitpose.components.parse_spec`), so any registered loss (including another
plugin's) can be wrapped.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from kitpose.components import build_inner
from kitpose.errors import ComponentError


def _inner(loss: Any) -> Any:
    """Build the wrapped loss from ``"name"`` or ``{use: name, **params}``."""
    return build_inner(loss, "loss", "multi_stage", "loss")


class MultiStage(nn.Module):
    """Sum of a wrapped loss over every stage's output, one weight per stage.

    ``loss`` names the wrapped loss (``heatmap_mse`` or ``{use: heatmap_mse, ...}``);
    ``stage_weights`` gives one weight per stage (default: 1 for every stage, whatever
    their number). ``pred`` is the list of stage outputs; ``target`` is one tensor shared
    by every stage or a list with one per stage. Returns the weighted sum as ``loss`` and
    the unweighted per-stage losses as ``stages`` ``[S]``.
    """

    outputs = ("loss", "stages")

    def __init__(self, loss: str | Mapping[str, Any], stage_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.inner = _inner(loss)
        if stage_weights is not None:
            if isinstance(stage_weights, (str, bytes)) or not isinstance(stage_weights, Sequence) \
                    or not stage_weights:
                raise ComponentError("multi_stage: stage_weights must be a non-empty list of numbers")
            stage_weights = [float(w) for w in stage_weights]
        self.stage_weights: list[float] | None = stage_weights

    def forward(self, pred: Sequence[Tensor], target: Tensor | Sequence[Tensor],
                weights: Tensor | None = None) -> dict[str, Tensor]:
        if isinstance(pred, Tensor) or not isinstance(pred, Sequence) or not pred:
            raise ComponentError("multi_stage: pred must be the non-empty list of stage outputs, got "
                                 f"{type(pred).__name__}",
                                 hint="map the model's list of stage outputs to pred")
        stages = len(pred)
        if self.stage_weights is not None and len(self.stage_weights) != stages:
            raise ComponentError(f"multi_stage: {len(self.stage_weights)} stage weights given but pred "
                                 f"holds {stages} stage outputs",
                                 hint="give one weight per stage in stage_weights")
        if isinstance(target, Tensor):
            targets: Sequence[Tensor] = [target] * stages
        else:
            targets = target
            if len(targets) != stages:
                raise ComponentError(f"multi_stage: {len(targets)} targets given but pred holds "
                                     f"{stages} stage outputs", hint="give one target, or one per stage")
        losses = torch.stack([self.inner(pred=p, target=t, weights=weights)["loss"]
                              for p, t in zip(pred, targets)])
        w = losses.new_tensor(self.stage_weights) if self.stage_weights is not None \
            else losses.new_ones(stages)
        return {"loss": (losses * w).sum(), "stages": losses}
