"""Object keypoint similarity (OKS), computed the way pycocotools' COCOeval does.

``OKS = mean over labelled joints of exp(-d^2 / (2 s^2 k^2))`` with ``k = 2 sigma`` and
``s^2`` the object's area. For a ground truth without any labelled joint COCO measures
each predicted joint's distance to the box doubled around the ground-truth box instead
and averages over every joint; without a box such a pair scores 0 (it can never match).
"""
from __future__ import annotations

import numpy as np


def keypoint_similarity(dx: np.ndarray, dy: np.ndarray, area: np.ndarray,
                        sigmas: np.ndarray) -> np.ndarray:
    """Per-joint similarity ``exp(-e)`` from offsets ``dx``, ``dy`` ``[P, K]`` and areas ``[P]``."""
    variances = (2.0 * sigmas) ** 2
    e = (dx ** 2 + dy ** 2) / variances / (area[:, None] + np.spacing(1)) / 2
    return np.exp(-e)


def oks_pairs(pred: np.ndarray, target: np.ndarray, labelled: np.ndarray, area: np.ndarray,
              box: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """OKS of ``P`` (prediction, ground truth) pairs.

    ``pred``, ``target`` ``[P, K, 2]``; ``labelled`` bool ``[P, K]``; ``area`` ``[P]``;
    ``box`` ``[P, 4]`` ground-truth (x, y, w, h), NaN when unknown. Returns ``[P]``.
    """
    n_labelled = labelled.sum(1)
    has_labels = (n_labelled > 0)[:, None]
    px, py = pred[..., 0], pred[..., 1]
    # distance to the doubled box, used only when the ground truth has no labelled joint
    x0, y0 = (box[:, 0] - box[:, 2])[:, None], (box[:, 1] - box[:, 3])[:, None]
    x1, y1 = (box[:, 0] + box[:, 2] * 2)[:, None], (box[:, 1] + box[:, 3] * 2)[:, None]
    with np.errstate(invalid="ignore"):
        box_dx = np.maximum(0, x0 - px) + np.maximum(0, px - x1)
        box_dy = np.maximum(0, y0 - py) + np.maximum(0, py - y1)
    dx = np.where(has_labels, px - target[..., 0], box_dx)
    dy = np.where(has_labels, py - target[..., 1], box_dy)
    sim = keypoint_similarity(dx, dy, area, sigmas)
    with np.errstate(invalid="ignore", divide="ignore"):
        labelled_mean = np.where(labelled, sim, 0.0).sum(1) / n_labelled
    box_ok = np.isfinite(box).all(1)
    box_mean = np.where(box_ok, np.nan_to_num(sim).mean(1), 0.0)
    return np.where(n_labelled > 0, labelled_mean, box_mean)
