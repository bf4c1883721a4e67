"""The synthetic dataset: contract, exact keypoints, determinism, disjoint splits, learnability."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

import kitpose
from kitpose.errors import KitposeError
from kitpose_plugins.data.synthetic import render
from kitpose_plugins.data.joints import MPII


def synthetic(**params):
    params.setdefault("size", 64)
    return kitpose.build("dataset", "synthetic", **params)


def digest(sample: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(sample):
        h.update(key.encode())
        h.update(np.ascontiguousarray(sample[key]).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("modality, shape, dtype", [
    ("depth", (128, 128, 1), np.float32), ("grey", (128, 128, 1), np.uint8), ("colour", (128, 128, 3), np.uint8)])
def test_sample_contract(modality, shape, dtype):
    ds = synthetic(modality=modality)
    assert len(ds) == 64
    assert set(ds.provides) == {"keypoints_3d", "head_size", "bbox", "camera"}
    assert ds.joint_names == MPII.joint_names and ds.flip_pairs == MPII.flip_pairs and ds.skeleton
    s = ds[3]
    assert set(s) == {"image", "keypoints", "visible", *ds.provides}
    assert s["image"].shape == shape and s["image"].dtype == dtype
    assert s["keypoints"].shape == (16, 2) and s["keypoints"].dtype == np.float32
    assert s["visible"].shape == (16,) and s["visible"].dtype == np.float32
    assert s["keypoints_3d"].shape == (16, 3) and s["bbox"].shape == (4,)
    assert s["head_size"].dtype == np.float32 and s["head_size"] > 0
    np.testing.assert_allclose(s["camera"], [ds.camera.focal, ds.camera.focal, 63.5, 63.5])
    if modality == "depth":
        assert 0.0 <= s["image"].min() and s["image"].max() <= 1.0


def test_other_sizes_work():
    for size, shape in ((64, (64, 64, 1)), ([96, 64], (64, 96, 1))):
        s = synthetic(image_size=size)[0]
        assert s["image"].shape == shape
        assert s["visible"].sum() >= 8


def test_keypoints_are_the_exact_projections_of_the_3d_joints():
    ds = synthetic(size=300, modality="grey")
    f, c = ds.camera.focal, np.array([63.5, 63.5])
    fractions = []
    for i in range(0, 300, 3):
        s = ds[i]
        k3 = s["keypoints_3d"].astype(np.float64)
        np.testing.assert_allclose(f * k3[:, :2] / k3[:, 2:] + c, s["keypoints"], atol=1e-3)
        assert (k3[:, 2] > 500).all()  # in front of the camera, in mm
        x, y = s["keypoints"][:, 0], s["keypoints"][:, 1]
        inside = (x >= -0.5) & (x <= 127.5) & (y >= -0.5) & (y <= 127.5)
        np.testing.assert_array_equal(s["visible"], inside.astype(np.float32))
        head = np.linalg.norm(s["keypoints"][9] - s["keypoints"][8])
        assert s["head_size"] == pytest.approx(head, rel=1e-5)
        bx, by, bw, bh = s["bbox"]
        assert ((s["keypoints"] >= [bx, by]) & (s["keypoints"] <= [bx + bw, by + bh])).all()
        fractions.append((s["keypoints"] / 4.0) % 1.0)
    # continuous, never rounded: positions within a heatmap cell (stride 4) are spread evenly,
    # which is what makes quantised and unbiased targets and decoders differ
    fractions = np.concatenate(fractions).ravel()
    assert abs(fractions.mean() - 0.5) < 0.03 and abs(fractions.std() - 12 ** -0.5) < 0.03
    assert len(np.unique(np.round(fractions, 3))) > 500


def test_visible_joints_lie_on_the_drawn_figure():
    """With no clutter and no noise, every visible joint's pixel is nearer than the background."""
    ds = synthetic(size=40, modality="depth", clutter=0.0, occlusion=0.0, noise=0.0)
    hits = []
    for i in range(40):
        s = ds[i]
        depth = s["image"][..., 0]
        background = np.median(depth[depth > 0])
        for (x, y), v in zip(s["keypoints"], s["visible"]):
            if v and 0 <= round(x) < 128 and 0 <= round(y) < 128:
                hits.append(depth[int(round(y)), int(round(x))] < background - 0.02)
    assert np.mean(hits) > 0.97


def test_rendering_is_sub_pixel():
    """Moving a capsule by a fraction of a pixel moves its drawn mass by that fraction."""
    centres = []
    shifts = np.arange(9) / 8.0
    for dx in shifts:
        canvas = np.zeros((40, 40), np.uint8)
        outline = render.capsules(np.array([[10.3 + dx, 20.1]]), np.array([[28.7 + dx, 18.4]]), np.array([3.2]))
        render.fill(canvas, render.fixed(outline), np.array([[255.0]]))
        mass = canvas.astype(np.float64)
        centres.append((mass.sum(0) * np.arange(40)).sum() / mass.sum())
    moved = np.array(centres) - centres[0]
    assert np.abs(moved - shifts).max() < 0.04


def test_same_sample_every_time_in_any_order_and_with_cache():
    a, b = synthetic(size=600, seed=7), synthetic(size=600, seed=7)
    first = digest(a[517])
    for i in (3, 300, 517):
        b[i]
    assert digest(b[517]) == first  # order of access does not matter
    cached = synthetic(size=600, seed=7, cache=True)
    assert digest(cached[517]) == first and digest(cached[517]) == first
    assert digest(synthetic(size=600, seed=8)[517]) != first


def test_same_sample_in_another_process():
    code = ("import hashlib, numpy as np, kitpose\n"
            "s = kitpose.build('dataset', 'synthetic', size=600, seed=7)[517]\n"
            "h = hashlib.sha256()\n"
            "for k in sorted(s):\n"
            "    h.update(k.encode()); h.update(np.ascontiguousarray(s[k]).tobytes())\n"
            "print(h.hexdigest())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == digest(synthetic(size=600, seed=7)[517])


def test_splits_do_not_overlap():
    poses = {}
    for split in ("train", "val", "test"):
        ds = synthetic(size=200, split=split, seed=0)
        poses[split] = {tuple(np.round(ds[i]["keypoints_3d"].ravel(), 1)) for i in range(200)}
        assert len(poses[split]) == 200
    assert not poses["train"] & poses["val"] and not poses["train"] & poses["test"] and not poses["val"] & poses["test"]


def test_size_does_not_change_samples():
    assert digest(synthetic(size=10)[9]) == digest(synthetic(size=1000)[9])


def test_index_range_and_bad_parameters():
    ds = synthetic(size=5)
    assert digest(ds[-1]) == digest(ds[4])
    with pytest.raises(IndexError):
        ds[5]
    for params, word in (({"modality": "rgbd"}, "modality"), ({"size": 0}, "size"),
                         ({"occlusion": 2.0}, "occlusion"), ({"figure_size": [0.9, 0.5]}, "figure_size"),
                         ({"image_size": [64]}, "image_size")):
        with pytest.raises(KitposeError, match=word):
            synthetic(**params)


def test_difficulty_knobs_change_the_pictures():
    easy = synthetic(size=30, modality="grey", clutter=0.0, occlusion=0.0, noise=0.0, pose_range=0.0, view_range=0)
    hard = synthetic(size=30, modality="grey", clutter=3.0, occlusion=1.0, noise=1.0)
    roughness = [np.abs(np.diff(ds[i]["image"][..., 0].astype(np.float64), axis=1)).mean()
                 for ds in (easy, hard) for i in range(30)]
    assert np.mean(roughness[30:]) > 1.5 * np.mean(roughness[:30])
    # pose_range 0 and view_range 0: everyone stands straight facing the camera, left joints on the right
    for i in range(30):
        k = easy[i]["keypoints"]
        assert (k[[3, 4, 5, 13, 14, 15], 0] > k[[2, 1, 0, 12, 11, 10], 0]).all()
        assert k[9, 1] < k[8, 1] < k[6, 1] < k[0, 1]  # head above neck above pelvis above ankle


@pytest.mark.slow
def test_a_small_model_learns_the_task_in_minutes():
    """A tiny conv net trained about two minutes on 2 cores clearly beats the mean-pose guess."""
    import torch
    from torch import nn

    from kitpose.data import collate

    torch.manual_seed(0)
    train_set, test_set = synthetic(size=3000, image_size=64), synthetic(size=300, image_size=64, split="test")
    train = collate([train_set[i] for i in range(len(train_set))])
    test = collate([test_set[i] for i in range(len(test_set))])
    cells = 16  # 64 px at stride 4

    def block(c_in, c_out, stride=1, dilation=1):
        return [nn.Conv2d(c_in, c_out, 3, stride, dilation, dilation=dilation), nn.BatchNorm2d(c_out), nn.ReLU()]

    net = nn.Sequential(*block(1, 32, 2), *block(32, 64, 2), *block(64, 64, dilation=2), *block(64, 64, dilation=4),
                        *block(64, 64, dilation=8), *block(64, 64), nn.Conv2d(64, 16, 1))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    grid = torch.arange(cells, dtype=torch.float32)

    def target(kp):  # unbiased Gaussians of sigma 1 cell, as distributions over the cells
        c = kp / 4.0
        maps = torch.exp(-(grid - c[..., 1:2]) ** 2 / 2)[..., :, None] * torch.exp(-(grid - c[..., 0:1]) ** 2 / 2)[..., None, :]
        maps = maps.flatten(2)
        return maps / maps.sum(-1, keepdim=True).clamp_min(1e-12)

    for _ in range(4):
        order = torch.randperm(len(train_set))
        for start in range(0, len(order) - 31, 32):
            idx = order[start:start + 32]
            logits = net(train["image"][idx]).flatten(2)
            loss = (-(target(train["keypoints"][idx]) * logits.log_softmax(-1)).sum(-1) * train["visible"][idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        flat = net(test["image"]).flatten(2).argmax(-1)
    pred = torch.stack([flat % cells, flat // cells], -1).float() * 4.0
    visible, head = test["visible"] > 0, test["head_size"][:, None]

    def pckh(p):
        return ((p - test["keypoints"]).norm(dim=-1) <= 0.5 * head)[visible].float().mean().item()

    chance = pckh(train["keypoints"].mean(0).expand_as(pred))
    assert chance < 0.15
    assert pckh(pred) > 0.35 and pckh(pred) > 3 * chance
