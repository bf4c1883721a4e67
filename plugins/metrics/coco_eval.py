"""COCO keypoint evaluation: greedy OKS matching and interpolated precision, as COCOeval does.

Rows are instances: each may carry a detection (prediction + score) and/or a ground
truth, and belongs to an image. Within an image detections are taken by descending
score (at most ``max_detections``) and each one claims the unclaimed ground truth with
the highest OKS at or above the threshold, preferring ground truths that are not ignored
(crowd, no labelled joint, area outside the range); a detection matched to an ignored
ground truth, or unmatched with an area outside the range, is ignored. Matching runs for
every image, area range and threshold at once, looping only over detection ranks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kitpose_plugins.metrics.oks import oks_pairs

#: OKS thresholds 0.50:0.05:0.95 and recall points 0:0.01:1, built exactly as COCOeval builds them
OKS_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
#: COCO keypoint area ranges: all, medium, large
AREA_RANGES: dict[str, tuple[float, float]] = {
    "": (0.0 ** 2, 1e5 ** 2), "(M)": (32.0 ** 2, 96.0 ** 2), "(L)": (96.0 ** 2, 1e5 ** 2)}


@dataclass
class Instances:
    """Gathered rows as float64/bool numpy arrays (see :class:`OKSAP` for their meaning)."""

    pred: np.ndarray  # [N, K, 2]
    target: np.ndarray  # [N, K, 2]
    labelled: np.ndarray  # [N, K] bool
    area: np.ndarray  # [N] ground-truth area
    score: np.ndarray  # [N] detection score
    image: np.ndarray  # [N] int image id
    box: np.ndarray  # [N, 4] ground-truth box, NaN if unknown
    crowd: np.ndarray  # [N] bool
    has_pred: np.ndarray  # [N] bool
    has_target: np.ndarray  # [N] bool


def _slots(image: np.ndarray, rows: np.ndarray, keys: tuple[np.ndarray, ...], n_images: int,
           limit: int | None = None) -> np.ndarray:
    """``[I, M]`` row indices per image in ``keys`` order (lexsort, last key first), -1 padded."""
    if rows.size == 0:
        return np.full((n_images, 0), -1, dtype=np.int64)
    order = rows[np.lexsort(tuple(k[rows] for k in keys) + (image[rows],))]
    img = image[order]
    rank = np.arange(order.size) - np.searchsorted(img, img, side="left")
    keep = rank < limit if limit is not None else np.ones(order.size, dtype=bool)
    slots = np.full((n_images, int(rank[keep].max()) + 1), -1, dtype=np.int64)
    slots[img[keep], rank[keep]] = order[keep]
    return slots


def _last_argmax(values: np.ndarray) -> np.ndarray:
    """Index of the last maximum along the last axis (COCOeval keeps the later one on ties)."""
    return values.shape[-1] - 1 - np.argmax(values[..., ::-1], axis=-1)


def match(oks: np.ndarray, det_ok: np.ndarray, gt_ok: np.ndarray, gt_ignore: np.ndarray,
          crowd: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of every image, area range and threshold at once.

    ``oks`` ``[I, D, G]`` (detections in score order); ``det_ok`` ``[I, D]``, ``gt_ok``,
    ``crowd`` ``[I, G]``; ``gt_ignore`` ``[A, I, G]``. Returns ``(matched, to_ignored)``,
    both ``[A, T, I, D]``: the detection found a ground truth / that one is ignored.
    """
    n_areas, n_images, n_gt = gt_ignore.shape
    n_det = oks.shape[1]
    shape = (n_areas, len(thresholds), n_images)
    claimed = np.zeros(shape + (n_gt,), dtype=bool)
    matched = np.zeros(shape + (n_det,), dtype=bool)
    to_ignored = np.zeros(shape + (n_det,), dtype=bool)
    thr = np.minimum(thresholds, 1 - 1e-10)[None, :, None, None]
    ignore = gt_ignore[:, None]  # [A, 1, I, G]
    columns = np.arange(n_gt)
    for r in range(n_det):
        o = oks[None, None, :, r, :]  # [1, 1, I, G]
        free = (~claimed | crowd[None, None]) & gt_ok[None, None] & det_ok[None, None, :, r, None]
        candidate = free & (o >= thr)
        regular, ignored = candidate & ~ignore, candidate & ignore
        has_regular, has_ignored = regular.any(-1), ignored.any(-1)
        best = np.where(has_regular, _last_argmax(np.where(regular, o, -np.inf)),
                        _last_argmax(np.where(ignored, o, -np.inf)))
        found = has_regular | has_ignored
        matched[..., r] = found
        to_ignored[..., r] = found & ~has_regular
        claimed |= (columns == best[..., None]) & found[..., None]
    return matched, to_ignored


def precision_recall(tp: np.ndarray, fp: np.ndarray, n_positive: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated precision at the 101 recall points ``[T, R]`` and final recall ``[T]``.

    ``tp``, ``fp`` ``[T, N]`` flags of the detections sorted by descending score.
    """
    n_thr, nd = tp.shape
    if nd == 0:
        return np.zeros((n_thr, RECALL_POINTS.size)), np.zeros(n_thr)
    tp_sum = np.cumsum(tp, axis=1).astype(float)
    fp_sum = np.cumsum(fp, axis=1).astype(float)
    rc = tp_sum / n_positive
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
    precision = np.zeros((n_thr, RECALL_POINTS.size))
    for t in range(n_thr):
        at = np.searchsorted(rc[t], RECALL_POINTS, side="left")
        inside = at < nd
        precision[t, inside] = pr[t, at[inside]]
    return precision, rc[:, -1]


def evaluate(inst: Instances, sigmas: np.ndarray, max_detections: int = 20) -> dict[str, float]:
    """COCO keypoint summary: AP, AP50, AP75, AP (M), AP (L) and the same five for AR.

    A value whose area range holds no non-ignored ground truth is -1, as in COCOeval.
    """
    ids, image = np.unique(inst.image, return_inverse=True)
    rows = np.arange(inst.image.size)
    det_rows, gt_rows = rows[inst.has_pred], rows[inst.has_target]
    dets = _slots(image, det_rows, (rows, -inst.score), ids.size, max_detections)
    gts = _slots(image, gt_rows, (rows,), ids.size)
    det_ok, gt_ok = dets >= 0, gts >= 0

    img_i, det_r, gt_c = np.nonzero(det_ok[:, :, None] & gt_ok[:, None, :])
    d, g = dets[img_i, det_r], gts[img_i, gt_c]
    oks = np.zeros(det_ok.shape + gt_ok.shape[1:])
    oks[img_i, det_r, gt_c] = oks_pairs(inst.pred[d], inst.target[g], inst.labelled[g], inst.area[g],
                                        inst.box[g], sigmas)

    g_safe, d_safe = np.maximum(gts, 0), np.maximum(dets, 0)
    base_ignore = inst.crowd[g_safe] | (inst.labelled[g_safe].sum(-1) == 0)
    gt_area = inst.area[g_safe]
    xs, ys = inst.pred[d_safe, :, 0], inst.pred[d_safe, :, 1]
    det_area = (xs.max(-1) - xs.min(-1)) * (ys.max(-1) - ys.min(-1))
    ranges = np.array(list(AREA_RANGES.values()))  # [A, 2]
    lo, hi = ranges[:, 0, None, None], ranges[:, 1, None, None]
    gt_ignore = base_ignore[None] | (gt_area[None] < lo) | (gt_area[None] > hi)  # [A, I, G]
    det_outside = (det_area[None] < lo) | (det_area[None] > hi)  # [A, I, D]

    matched, to_ignored = match(oks, det_ok, gt_ok, gt_ignore, inst.crowd[g_safe] & gt_ok, OKS_THRESHOLDS)
    ignored = to_ignored | (~matched & det_outside[:, None])

    # every kept detection of every image, by descending score, ties by image then rank
    img_k, rank_k = np.nonzero(det_ok)
    score = inst.score[dets[img_k, rank_k]]
    order = np.lexsort((rank_k, img_k, -score))
    img_k, rank_k = img_k[order], rank_k[order]

    out: dict[str, float] = {}
    for a, suffix in enumerate(AREA_RANGES):
        n_positive = int((gt_ok & ~gt_ignore[a]).sum())
        m, ig = matched[a][:, img_k, rank_k], ignored[a][:, img_k, rank_k]  # [T, N]
        if n_positive == 0:
            precision, recall = -np.ones((len(OKS_THRESHOLDS), RECALL_POINTS.size)), -np.ones(len(OKS_THRESHOLDS))
        else:
            precision, recall = precision_recall(m & ~ig, ~m & ~ig, n_positive)
        sep = " " if suffix else ""
        out[f"AP{sep}{suffix}"] = _mean_defined(precision)
        out[f"AR{sep}{suffix}"] = _mean_defined(recall)
        if not suffix:
            out["AP50"], out["AP75"] = _mean_defined(precision[0]), _mean_defined(precision[5])
            out["AR50"], out["AR75"] = _mean_defined(recall[0]), _mean_defined(recall[5])
    order_keys = ["AP", "AP50", "AP75", "AP (M)", "AP (L)", "AR", "AR50", "AR75", "AR (M)", "AR (L)"]
    return {k: out[k] for k in order_keys}


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else -1.0
