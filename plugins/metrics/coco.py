"""COCO OKS AP: the ``oks_ap`` metric, agreeing with pycocotools' COCOeval (keypoints).

Each row of a batch is one person instance with a prediction and its ground truth (the
usual top-down evaluation on ground-truth or detected boxes). Optional per-row tensors
describe the general case:

- ``image_id`` [B] (non-negative ints): rows of one image compete for its ground truths;
  without it every row is an image of its own.
- ``has_pred`` / ``has_target`` [B] bool: a row holding only a detection (a false
  positive candidate) or only a ground truth (a person the detector missed).
- ``bbox`` [B, 4] ground-truth box (x, y, w, h): used, as COCO does, only for ground
  truths without any labelled joint; without it they cannot be matched.
- ``iscrowd`` [B] bool: crowd ground truths are ignored and may absorb many detections.

Ground truths without a labelled joint are ignored, as COCO does. A row's score is
``scores`` [B], or the mean of ``scores`` [B, K] over its joints.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kitpose.errors import ComponentError
from kitpose.metric import Metric
from kitpose_plugins.metrics.coco_eval import Instances, evaluate
from kitpose_plugins.metrics.common import NAN, checked_keypoints, is_empty, masked_mean, per_sample
from kitpose_plugins.data.joints import COCO_SIGMAS
from kitpose_plugins.metrics.oks import keypoint_similarity

_KEYS = ("pred", "target", "visible", "area", "score", "image_id", "bbox", "iscrowd", "has_pred", "has_target")


def _flag(value: Any, name: str, batch: int, device: torch.device) -> Tensor:
    if value is None:
        return torch.ones(batch, dtype=torch.bool, device=device)
    return per_sample("oks_ap", name, value, batch, device=device) > 0


class OKSAP(Metric):
    """COCO keypoint AP/AR over OKS 0.50:0.05:0.95 (AP, AP50, AP75, AP (M), AP (L), AR ...).

    ``sigmas``: one per joint (default: the 17 COCO sigmas). ``max_detections``: kept per
    image, by score (COCO: 20). ``update`` takes ``area`` [B] (the ground truth's area,
    s^2 in the OKS) and ``scores`` [B, K] or [B]; see the module for optional tensors.
    Values are fractions; -1 when there is no ground truth to find, as in COCOeval.
    ``per_joint()`` gives the mean keypoint similarity of each joint as ``OKS``.
    """

    names = ("AP", "AP50", "AP75", "AP (M)", "AP (L)", "AR", "AR50", "AR75", "AR (M)", "AR (L)")

    def __init__(self, sigmas: Sequence[float] | None = None, max_detections: int = 20) -> None:
        super().__init__()
        values = COCO_SIGMAS if sigmas is None else sigmas
        try:
            self.sigmas = np.asarray([float(s) for s in values], dtype=np.float64)
        except (TypeError, ValueError):
            raise ComponentError("metric 'oks_ap': sigmas must be a list of numbers, one per joint") from None
        if self.sigmas.size == 0 or not (self.sigmas > 0).all():
            raise ComponentError("metric 'oks_ap': sigmas must be positive numbers, one per joint")
        if isinstance(max_detections, bool) or int(max_detections) != max_detections or max_detections < 1:
            raise ComponentError(f"metric 'oks_ap': max_detections must be a positive integer, "
                                 f"got {max_detections!r}")
        self.max_detections = int(max_detections)

    def update(self, pred: Tensor, target: Tensor, visible: Tensor | None = None, *, area: Tensor,
               scores: Tensor, image_id: Tensor | None = None, bbox: Tensor | None = None,
               iscrowd: Tensor | None = None, has_pred: Tensor | None = None,
               has_target: Tensor | None = None, **extras: Any) -> None:
        """Accumulate a batch of instances; other keyword tensors are ignored."""
        pred, target, vis = checked_keypoints("oks_ap", pred, target, visible, dims=(2,))
        batch, joints = vis.shape
        if joints != self.sigmas.size:
            raise ComponentError(f"metric 'oks_ap': {self.sigmas.size} sigmas but the keypoints have "
                                 f"{joints} joints", hint="give one sigma per joint in sigmas")
        dev = pred.device
        score = torch.as_tensor(scores, dtype=torch.float64, device=dev)
        if score.shape == (batch, joints):
            score = score.mean(-1)
        score = per_sample("oks_ap", "scores", score, batch, device=dev)
        ids = torch.full((batch,), -1, dtype=torch.int64, device=dev) if image_id is None else \
            per_sample("oks_ap", "image_id", image_id, batch, device=dev).long()
        if image_id is not None and bool((ids < 0).any()):
            raise ComponentError("metric 'oks_ap': image_id must be non-negative integers")
        box = torch.full((batch, 4), NAN, dtype=torch.float64, device=dev) if bbox is None else \
            per_sample("oks_ap", "bbox", bbox, batch, (4,), device=dev)
        crowd = torch.zeros(batch, dtype=torch.bool, device=dev) if iscrowd is None else \
            per_sample("oks_ap", "iscrowd", iscrowd, batch, device=dev) > 0
        self.accumulate(pred=pred, target=target, visible=vis,
                        area=per_sample("oks_ap", "area", area, batch, device=dev), score=score,
                        image_id=ids, bbox=box, iscrowd=crowd, has_pred=_flag(has_pred, "has_pred", batch, dev),
                        has_target=_flag(has_target, "has_target", batch, dev))

    def _gathered_state(self) -> dict[str, Tensor] | None:
        state = {key: self.gathered(key) for key in _KEYS}  # collective: always every key
        return None if is_empty(state["pred"]) else state

    def compute(self) -> dict[str, float]:
        state = self._gathered_state()
        if state is None:
            return dict.fromkeys(self.names, -1.0)
        image = state["image_id"].numpy().copy()
        alone = image < 0  # rows without an image id are images of their own
        image[alone] = image.max(initial=-1) + 1 + np.arange(int(alone.sum()))
        inst = Instances(pred=state["pred"].numpy(), target=state["target"].numpy(),
                         labelled=state["visible"].numpy(), area=state["area"].numpy(),
                         score=state["score"].numpy(), image=image, box=state["bbox"].numpy(),
                         crowd=state["iscrowd"].numpy(), has_pred=state["has_pred"].numpy(),
                         has_target=state["has_target"].numpy())
        return evaluate(inst, self.sigmas, self.max_detections)

    def per_joint(self) -> dict[str, list[float]]:
        state = self._gathered_state()
        if state is None:
            return {}
        d = (state["pred"] - state["target"]).numpy()
        sim = keypoint_similarity(d[..., 0], d[..., 1], state["area"].numpy(), self.sigmas)
        paired = (state["has_pred"] & state["has_target"]).unsqueeze(-1) & state["visible"]
        return {"OKS": masked_mean(torch.from_numpy(sim), paired)[1]}
