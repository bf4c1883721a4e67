"""Built-in metrics: hand-computed cases, batching, Procrustes invariance and COCOeval agreement."""
from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch

import kitpose
from kitpose.errors import ComponentError

ALL = ("pckh", "pck", "auc", "rmse", "epe", "mpjpe", "n_mpjpe", "pa_mpjpe", "oks_ap")


def metric(name: str, **params):
    return kitpose.build("metric", name, **params)


def computed(name: str, params: dict | None = None, **tensors) -> dict[str, float]:
    m = metric(name, **(params or {}))
    m.update(**tensors)
    return m.compute()


def test_every_metric_resolves_and_has_a_summary():
    assert set(ALL) <= set(kitpose.available("metric"))
    for entry in kitpose.list_components("metric"):
        if entry.name in ALL:
            assert entry.summary and not entry.summary.startswith("(broken")


# -- hand-computed cases -----------------------------------------------------------------------
# one sample, three joints; distances 1, 5 (3-4-5) and 10; the third joint is not visible
PRED = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [10.0, 0.0]]])
TARGET = torch.zeros(1, 3, 2)
VISIBLE = torch.tensor([[1, 1, 0]])


def test_pckh_by_hand():
    out = computed("pckh", {"thresholds": [0.1, 0.5]}, pred=PRED, target=TARGET, visible=VISIBLE,
                   head_size=torch.tensor([10.0]))
    # thresholds 1 px and 5 px: joint 0 (d=1) passes both, joint 1 (d=5) passes 0.5 only
    assert out == {"PCKh@0.1": 0.5, "PCKh@0.5": 1.0}


def test_pckh_labels_keep_the_threshold_written():
    m = metric("pckh", thresholds=[0.11, 0.5])
    m.update(pred=PRED, target=TARGET, head_size=torch.tensor([10.0]))
    assert list(m.compute()) == ["PCKh@0.11", "PCKh@0.5"]


def test_pck_normalises_x_by_width_and_y_by_height():
    # box 100 wide, 10 high: an x error of 5 is 0.05, a y error of 5 is 0.5
    pred = torch.tensor([[[5.0, 0.0], [0.0, 5.0]]])
    out = computed("pck", {"thresholds": [0.1]}, pred=pred, target=torch.zeros(1, 2, 2),
                   visible=torch.ones(1, 2), bbox=torch.tensor([[0.0, 0.0, 100.0, 10.0]]))
    assert out == {"PCK@0.1": 0.5}
    m = metric("pck", thresholds=[0.1])
    m.update(pred=pred, target=torch.zeros(1, 2, 2), bbox=torch.tensor([[0.0, 0.0, 100.0, 10.0]]))
    assert m.per_joint() == {"PCK@0.1": [1.0, 0.0]}


def test_auc_by_hand():
    # thresholds 0, 0.25, 0.5 x head 10 px = 0, 2.5, 5 px; d=1 passes 2 of 3, d=5 passes 1 of 3
    out = computed("auc", {"max_threshold": 0.5, "steps": 3}, pred=PRED, target=TARGET,
                   visible=VISIBLE, head_size=torch.tensor([10.0]))
    assert out["AUC"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    plain = computed("auc", {"max_threshold": 4.0, "steps": 5, "normalizer": "none"},
                     pred=PRED, target=TARGET, visible=VISIBLE)
    # thresholds 0..4 px: d=1 passes 4 of 5, d=5 passes none
    assert plain["AUC"] == pytest.approx((4 / 5 + 0) / 2)


def test_rmse_and_epe_by_hand():
    assert computed("rmse", pred=PRED, target=TARGET, visible=VISIBLE)["RMSE"] == pytest.approx(math.sqrt(13))
    assert computed("epe", pred=PRED, target=TARGET, visible=VISIBLE)["EPE"] == pytest.approx(3.0)
    # without a visibility mask every joint counts
    assert computed("epe", pred=PRED, target=TARGET)["EPE"] == pytest.approx(16 / 3)


def test_mpjpe_by_hand_and_root_relative():
    pred = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 6.0, 8.0]]])
    target = torch.zeros(1, 3, 3)
    assert computed("mpjpe", pred=pred, target=target)["MPJPE"] == pytest.approx((0 + 2 + 10) / 3)
    shifted = pred + torch.tensor([100.0, -50.0, 7.0])
    assert computed("mpjpe", {"root": 0}, pred=shifted, target=target)["MPJPE"] == pytest.approx(4.0)
    # the root invisible: the sample cannot be made root-relative and counts for nothing
    out = computed("mpjpe", {"root": 0}, pred=shifted, target=target, visible=torch.tensor([[0, 1, 1]]))
    assert math.isnan(out["MPJPE"])


def test_n_mpjpe_against_a_loop_over_samples():
    # per sample: the least-squares scale s = sum(p . t) / sum(p . p) over the visible joints,
    # after subtracting the root, then the mean distance of s p from t over them
    g = torch.Generator().manual_seed(3)
    target = torch.randn(5, 6, 3, generator=g, dtype=torch.float64) * 100
    pred = 1.3 * target + torch.randn(5, 6, 3, generator=g, dtype=torch.float64) * 10
    visible = torch.rand(5, 6, generator=g) > 0.2
    visible[:, 0] = True
    pred[~visible] = float("nan")  # what invisible joints hold must not matter
    total, count = 0.0, 0
    for b in range(5):
        p = (pred[b] - pred[b, 0]).numpy()[visible[b].numpy()]
        t = (target[b] - target[b, 0]).numpy()[visible[b].numpy()]
        scale = (p * t).sum() / (p * p).sum()
        total += float(np.linalg.norm(scale * p - t, axis=-1).sum())
        count += len(p)
    out = computed("n_mpjpe", {"root": 0}, pred=pred, target=target, visible=visible)["N-MPJPE"]
    assert out == pytest.approx(total / count, rel=1e-9)
    # only the size differs: N-MPJPE is 0 where MPJPE is not
    clean = computed("n_mpjpe", {"root": 0}, pred=2.5 * target, target=target)["N-MPJPE"]
    assert clean == pytest.approx(0.0, abs=1e-9)
    assert computed("mpjpe", {"root": 0}, pred=2.5 * target, target=target)["MPJPE"] > 100
    # a prediction at one point: scale 0, the error is the target's own spread
    flat = computed("n_mpjpe", pred=torch.zeros(1, 2, 3), target=torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]]))
    assert flat["N-MPJPE"] == pytest.approx(2.5)


def test_joint_never_visible_is_nan_per_joint_but_not_in_the_mean():
    pred, target = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    visible = torch.tensor([[1, 1, 0]] * 4)
    for name, extra in [("pckh", {"head_size": torch.full((4,), 2.0)}), ("rmse", {}), ("epe", {}),
                        ("n_mpjpe", {}), ("pa_mpjpe", {}), ("auc", {"head_size": torch.full((4,), 2.0)})]:
        m = metric(name)
        m.update(pred=pred, target=target, visible=visible, **extra)
        assert all(math.isfinite(v) for v in m.compute().values()), name
        for values in m.per_joint().values():
            assert math.isfinite(values[0]) and math.isfinite(values[1]) and math.isnan(values[2]), name


def test_bad_normaliser_excludes_the_sample():
    pred = torch.ones(2, 2, 2)
    out = computed("pckh", {"thresholds": [0.5]}, pred=pred, target=torch.zeros(2, 2, 2),
                   head_size=torch.tensor([0.0, 10.0]))
    assert out == {"PCKh@0.5": 1.0}  # only the second sample (d = 1.41 <= 5) counts


def test_bad_input_raises_one_clear_error():
    m = metric("pckh")
    with pytest.raises(ComponentError, match=r"pred \(2, 3, 2\) and target \(2, 4, 2\)"):
        m.update(pred=torch.zeros(2, 3, 2), target=torch.zeros(2, 4, 2), head_size=torch.ones(2))
    with pytest.raises(ComponentError, match="head_size"):
        m.update(pred=torch.zeros(2, 3, 2), target=torch.zeros(2, 3, 2), head_size=torch.ones(3))
    with pytest.raises(ComponentError, match="visible"):
        metric("rmse").update(pred=torch.zeros(2, 3, 2), target=torch.zeros(2, 3, 2), visible=torch.ones(2))
    with pytest.raises(ComponentError, match="2D"):
        metric("pck").update(pred=torch.zeros(1, 3, 3), target=torch.zeros(1, 3, 3), bbox=torch.ones(1, 4))
    with pytest.raises(ComponentError, match="17 sigmas .* 5 joints"):
        metric("oks_ap").update(pred=torch.zeros(1, 5, 2), target=torch.zeros(1, 5, 2),
                                area=torch.ones(1), scores=torch.ones(1))
    with pytest.raises(ComponentError, match="normalizer"):
        metric("auc", normalizer="diagonal")
    with pytest.raises(ComponentError, match="thresholds"):
        metric("pckh", thresholds=[])


# -- accumulation ------------------------------------------------------------------------------
def _batch(seed: int, n: int, joints: int = 17, dims: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, joints, dims, generator=g) * 100
    return {
        "pred": target + torch.randn(n, joints, dims, generator=g) * 4,
        "target": target,
        "visible": torch.rand(n, joints, generator=g) > 0.2,
        "head_size": torch.rand(n, generator=g) * 20 + 10,
        "bbox": torch.cat([torch.zeros(n, 2), torch.rand(n, 2, generator=g) * 80 + 20], 1),
        "area": torch.rand(n, generator=g) * 8000 + 500,
        "scores": torch.rand(n, joints, generator=g),
        "image_id": torch.randint(0, n // 2, (n,), generator=g),
    }


@pytest.mark.parametrize("name", ALL)
def test_accumulating_batches_equals_one_big_batch(name):
    data = _batch(3, 24)
    whole, parts = metric(name), metric(name)
    whole.update(**data)
    for chunk in (slice(0, 5), slice(5, 6), slice(6, 24)):
        parts.update(**{k: v[chunk] for k, v in data.items()})
    a, b = whole.compute(), parts.compute()
    assert a.keys() == b.keys() and a
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-12), key
    np.testing.assert_allclose(np.array(list(whole.per_joint().values())),
                               np.array(list(parts.per_joint().values())), atol=1e-12)
    parts.reset()
    assert all(math.isnan(v) or v == -1 for v in parts.compute().values())


# -- PA-MPJPE ----------------------------------------------------------------------------------
def _random_rotation(g: torch.Generator, n: int, reflect: bool = False) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    det = torch.linalg.det(q)
    q[:, :, 0] *= det.sign().unsqueeze(-1)  # now det = +1
    if reflect:
        q[:, :, 0] = -q[:, :, 0]
    return q


def _similarity(points: torch.Tensor, g: torch.Generator, reflect: bool = False) -> torch.Tensor:
    n = points.shape[0]
    rot = _random_rotation(g, n, reflect)
    scale = torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * 3 + 0.2
    shift = torch.randn(n, 1, 3, generator=g, dtype=torch.float64) * 500
    return scale * points @ rot.transpose(1, 2) + shift


def test_pa_mpjpe_is_invariant_to_a_similarity_transform_of_the_prediction():
    g = torch.Generator().manual_seed(7)
    target = torch.randn(16, 17, 3, generator=g, dtype=torch.float64) * 300
    pred = target + torch.randn(16, 17, 3, generator=g, dtype=torch.float64) * 30
    visible = torch.rand(16, 17, generator=g) > 0.1
    before = computed("pa_mpjpe", pred=pred, target=target, visible=visible)["PA-MPJPE"]
    moved = _similarity(pred, g)
    after = computed("pa_mpjpe", pred=moved, target=target, visible=visible)["PA-MPJPE"]
    assert before == pytest.approx(after, rel=1e-9)
    # the alignment is optimal: no worse than plain MPJPE of the untransformed prediction
    assert before < computed("mpjpe", pred=pred, target=target, visible=visible)["MPJPE"]
    # a perfect prediction moved anywhere is recovered exactly
    exact = computed("pa_mpjpe", pred=_similarity(target, g), target=target)["PA-MPJPE"]
    assert exact < 1e-9
    assert computed("mpjpe", pred=moved, target=target)["MPJPE"] > 100


def test_pa_mpjpe_never_aligns_with_a_reflection():
    g = torch.Generator().manual_seed(11)
    target = torch.randn(8, 17, 3, generator=g, dtype=torch.float64) * 300
    mirrored = _similarity(target, g, reflect=True)
    error = computed("pa_mpjpe", pred=mirrored, target=target)["PA-MPJPE"]
    assert error > 50  # a mirror image is not the same pose
    # and the rotation it uses is proper: det +1, equal to a per-sample reference fit
    from kitpose_plugins.metrics.procrustes import similarity_align
    aligned = similarity_align(mirrored, target)
    for i in range(8):  # reference: the same fit done sample by sample with numpy
        x = mirrored[i] - mirrored[i].mean(0)
        y = target[i] - target[i].mean(0)
        u, s, vt = np.linalg.svd((x.T @ y).numpy())
        d = np.sign(np.linalg.det(vt.T @ u.T))
        rot = vt.T @ np.diag([1, 1, d]) @ u.T
        assert np.linalg.det(rot) == pytest.approx(1.0)
        scale = (s * [1, 1, d]).sum() / (x ** 2).sum().item()
        ref = scale * x.numpy() @ rot.T + target[i].mean(0).numpy()
        np.testing.assert_allclose(aligned[i].numpy(), ref, atol=1e-8)


def test_pa_mpjpe_ignores_whatever_invisible_joints_hold():
    g = torch.Generator().manual_seed(3)
    target = torch.randn(4, 17, 3, generator=g, dtype=torch.float64)
    pred = target + 0.1 * torch.randn(4, 17, 3, generator=g, dtype=torch.float64)
    visible = torch.ones(4, 17, dtype=torch.bool)
    visible[:, 5] = False
    clean = computed("pa_mpjpe", pred=pred, target=target, visible=visible)["PA-MPJPE"]
    target[:, 5], pred[:, 5] = float("nan"), 1e6
    assert computed("pa_mpjpe", pred=pred, target=target, visible=visible)["PA-MPJPE"] == pytest.approx(clean)


def test_pa_mpjpe_works_batched_in_2d():
    g = torch.Generator().manual_seed(5)
    target = torch.randn(6, 10, 2, generator=g, dtype=torch.float64)
    angle = torch.rand(6, generator=g, dtype=torch.float64) * 6.28
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin()], -1),
                       torch.stack([angle.sin(), angle.cos()], -1)], -2)
    pred = 2.5 * target @ rot.transpose(1, 2) + 3.0
    assert computed("pa_mpjpe", pred=pred, target=target)["PA-MPJPE"] < 1e-9


# -- COCO OKS AP against pycocotools -----------------------------------------------------------
def _coco_scene(seed: int, joints: int = 17):
    """A few images with several people, unlabelled joints, misses, false positives and a crowd."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for n, image_id in enumerate(rng.choice(np.arange(1, 1000), size=7, replace=False)):
        for _ in range(int(rng.integers(0, 5))):
            side = float(rng.choice([20.0, 60.0, 150.0])) * rng.uniform(0.8, 1.2)
            box = np.array([rng.uniform(0, 300), rng.uniform(0, 300), side, side * rng.uniform(0.6, 1.4)])
            kp = box[:2] + rng.uniform(0, 1, (joints, 2)) * box[2:]
            v = rng.choice([0, 1, 2], size=joints, p=[0.25, 0.25, 0.5])
            kind = rng.choice(["pair", "pair", "pair", "miss", "nolabel", "crowd"])
            if kind in ("nolabel", "crowd"):
                v[:] = 0
            area = float(box[2] * box[3] * rng.uniform(0.5, 0.9))
            noise = rng.normal(0, 1, (joints, 2)) * np.sqrt(area) * rng.uniform(0.01, 0.2)
            rows.append(dict(image=int(image_id), target=np.where(v[:, None] > 0, kp, 0.0), visible=v,
                             area=area, bbox=box, crowd=kind == "crowd", has_target=True,
                             has_pred=kind != "miss", pred=kp + noise, score=float(rng.uniform())))
        for _ in range(int(rng.integers(0, 3)) + 22 * (n == 0)):  # detections of nobody; > 20 in one image
            centre = rng.uniform(0, 300, 2)
            rows.append(dict(image=int(image_id), target=np.zeros((joints, 2)), visible=np.zeros(joints),
                             area=1.0, bbox=np.zeros(4), crowd=False, has_target=False, has_pred=True,
                             pred=centre + rng.normal(0, 20, (joints, 2)), score=float(rng.uniform())))
    order = rng.permutation(len(rows))
    return [rows[i] for i in order], [int(i) for i in {r["image"] for r in rows}]


def _pycocotools_stats(rows, images, sigmas=None):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    joints = len(rows[0]["visible"])
    gts, dts = [], []
    for i, r in enumerate(rows):
        if r["has_target"]:
            flat = np.concatenate([r["target"], r["visible"][:, None]], 1).ravel().tolist()
            gts.append(dict(id=i + 1, image_id=r["image"], category_id=1, keypoints=flat,
                            num_keypoints=int((r["visible"] > 0).sum()), area=r["area"],
                            bbox=r["bbox"].tolist(), iscrowd=int(r["crowd"])))
        if r["has_pred"]:
            flat = np.concatenate([r["pred"], np.ones((joints, 1))], 1).ravel().tolist()
            dts.append(dict(image_id=r["image"], category_id=1, keypoints=flat, score=r["score"]))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i} for i in images], "annotations": gts,
                      "categories": [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(joints)],
                                      "skeleton": []}]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(dts), "keypoints")
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def _ours(rows, params=None, batches=(slice(None),)):
    m = metric("oks_ap", **(params or {}))
    t = {k: torch.tensor(np.array([r[k] for r in rows])) for k in
         ("pred", "target", "visible", "area", "bbox", "score", "image", "crowd", "has_pred", "has_target")}
    for part in batches:
        m.update(pred=t["pred"][part], target=t["target"][part], visible=t["visible"][part],
                 area=t["area"][part], scores=t["score"][part], image_id=t["image"][part],
                 bbox=t["bbox"][part], iscrowd=t["crowd"][part], has_pred=t["has_pred"][part],
                 has_target=t["has_target"][part])
    return m


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_oks_ap_agrees_with_pycocotools(seed):
    pytest.importorskip("pycocotools")
    rows, images = _coco_scene(seed)
    expected = _pycocotools_stats(rows, images)
    got = _ours(rows, batches=(slice(0, 7), slice(7, None))).compute()
    assert list(got) == ["AP", "AP50", "AP75", "AP (M)", "AP (L)", "AR", "AR50", "AR75", "AR (M)", "AR (L)"]
    np.testing.assert_allclose(np.array(list(got.values())), expected, atol=1e-6, rtol=0)
    assert 0 < got["AP"] < 1  # a scene that exercises the matching, not a trivial one


def test_oks_ap_with_custom_sigmas_agrees_with_pycocotools():
    pytest.importorskip("pycocotools")
    rows, images = _coco_scene(9, joints=5)
    sigmas = [0.05, 0.07, 0.03, 0.1, 0.08]
    expected = _pycocotools_stats(rows, images, sigmas)
    got = _ours(rows, {"sigmas": sigmas}).compute()
    np.testing.assert_allclose(np.array(list(got.values())), expected, atol=1e-6, rtol=0)


def _hand_rows(x_targets, x_preds, scores):
    row = dict(image=1, visible=np.ones(1), area=100.0, bbox=np.zeros(4), crowd=False)
    rows = [dict(row, target=np.array([[x, 0.0]]), pred=np.zeros((1, 2)), score=0.0, has_target=True,
                 has_pred=False) for x in x_targets]
    rows += [dict(row, target=np.zeros((1, 2)), pred=np.array([[x, 0.0]]), score=s, has_target=False,
                  has_pred=True) for x, s in zip(x_preds, scores)]
    return rows


def test_oks_ap_breaks_ties_like_pycocotools():
    # the first detection is as close to both people (OKS 0.88 each) and, like COCOeval, takes
    # the later one; the second detection is near the first person only (0.96 vs 0.43)
    rows = _hand_rows([0.0, 10.0], [5.0, -3.0], [0.9, 0.8])
    got = _ours(rows, {"sigmas": [0.5]}).compute()
    assert got["AP50"] == pytest.approx(1.0)
    pytest.importorskip("pycocotools")
    expected = _pycocotools_stats(rows, [1], [0.5])
    np.testing.assert_allclose(np.array(list(got.values())), expected, atol=1e-6, rtol=0)


def test_oks_ap_perfect_paired_predictions_and_per_joint():
    data = _batch(2, 10)
    m = metric("oks_ap")
    m.update(pred=data["target"], target=data["target"], visible=data["visible"], area=data["area"],
             scores=data["scores"])
    assert m.compute()["AP"] == pytest.approx(1.0)
    assert m.per_joint()["OKS"] == pytest.approx([1.0] * 17)


def test_a_group_of_metrics_can_share_one_set_of_inputs():
    # a flow node calling a metric group passes every member the same tensors
    data = _batch(4, 6)
    for name in ALL:
        m = metric(name)
        m.update(**data)
        assert all(isinstance(v, float) for v in m.compute().values())


def test_gathered_state_is_read_once_until_more_is_accumulated():
    # compute, per_joint and per_sample read the same state: one gather (one collective under DDP)
    from kitpose.metric import Metric

    metric = Metric()
    calls = []
    gather = metric._gather
    metric._gather = lambda name: calls.append(name) or gather(name)
    metric.accumulate(distance=torch.ones(2, 3))
    assert metric.gathered("distance").shape == (2, 3) and metric.gathered("distance").shape == (2, 3)
    assert calls == ["distance"]
    metric.accumulate(distance=torch.ones(1, 3))
    assert metric.gathered("distance").shape == (3, 3) and calls == ["distance", "distance"]
    metric.reset()
    assert metric.gathered("distance").numel() == 0
