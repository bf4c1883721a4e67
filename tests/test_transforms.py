"""Transforms: exact geometry (image and keypoints move together), inverse, flip pairs, quantize."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import kitpose
from kitpose.data import PipelineDataset, collate
from kitpose.errors import KitposeError
from kitpose_plugins.data.geometry import crop_matrix, inverse_points
from kitpose_plugins.data.joints import COCO, MPII, flip_permutation
from kitpose_plugins.data.transforms import warp_image

RNG = np.random.default_rng


def blob_sample(points: np.ndarray, size: tuple[int, int] = (96, 80), sigma: float = 2.0,
                dtype: type = np.float32) -> dict:
    """An image whose channel k holds one Gaussian blob centred exactly on keypoint k."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    layers = [np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2)) for x, y in points]
    image = np.stack(layers, axis=-1).astype(np.float32)
    if dtype == np.uint8:
        image = np.rint(image * 255).astype(np.uint8)
    return {"image": image, "keypoints": np.asarray(points, np.float32), "visible": np.ones(len(points), np.float32),
            "head_size": np.float32(10.0), "bbox": np.array([20, 15, 40, 30], np.float32)}


def centroids(image: np.ndarray) -> np.ndarray:
    """Intensity centroid of every channel (x, y)."""
    h, w, k = image.shape
    ys, xs = np.mgrid[0:h, 0:w]
    mass = image.reshape(-1, k).astype(np.float64)
    total = mass.sum(axis=0)
    return np.stack([(xs.reshape(-1, 1) * mass).sum(0) / total, (ys.reshape(-1, 1) * mass).sum(0) / total], 1)


POINTS = np.array([[30.3, 25.7], [50.25, 40.5], [62.8, 30.1], [41.6, 52.35]])


def test_the_transforms_are_registered():
    names = set(kitpose.available("transform"))
    assert {"top_down_affine", "random_affine", "random_flip", "photometric", "quantize"} <= names


@pytest.mark.parametrize("name, params", [
    ("random_affine", {"scale": [0.7, 1.3], "rotation": 40, "rotation_prob": 1.0, "shift": 0.1}),
    ("top_down_affine", {"input_size": [48, 64], "rotation": 25.0, "random_scale": [0.8, 1.2],
                         "random_rotation": 30, "random_shift": 0.05}),
    ("random_flip", {"flip_pairs": [[0, 1], [2, 3]], "prob": 1.0}),
])
def test_image_and_keypoints_move_together(name, params):
    """The warped picture's blobs sit where the transformed keypoints say, to a small fraction of a pixel."""
    transform = kitpose.build("transform", name, **params)
    for seed in range(3):
        sample = blob_sample(POINTS)
        out = transform(sample, RNG(seed))
        assert out["image"].shape[2] == len(POINTS)
        found = centroids(out["image"])  # channel k holds the blob drawn for original joint k
        if name == "random_flip":  # keypoints are reordered by the flip, picture channels are not
            found = found[flip_permutation(4, [(0, 1), (2, 3)])]
        h, w = out["image"].shape[:2]
        whole = ((out["keypoints"] >= 7) & (out["keypoints"] <= [w - 8, h - 8])).all(axis=1)
        assert whole.sum() >= 2  # blobs cut by the border have biased centroids: compare whole ones
        assert np.abs(found - out["keypoints"])[whole].max() < 0.02


def test_inverse_recovers_keypoints_under_rotation_and_flip():
    ds = kitpose.build("dataset", "synthetic", size=24, image_size=96, modality="grey", noise=0.0)
    transforms = [kitpose.build("transform", "random_flip", flip_pairs="mpii", prob=0.5),
                  kitpose.build("transform", "random_affine", scale=[0.6, 1.4], rotation=60, rotation_prob=1.0,
                                shift=0.15),
                  kitpose.build("transform", "top_down_affine", input_size=[64, 80], rotation=-35.0,
                                random_rotation=20)]
    pipe = PipelineDataset(ds, transforms, seed=11)
    samples = [pipe[i] for i in range(len(ds))]
    originals = np.stack([ds[i]["keypoints"] for i in range(len(ds))])
    flipped = [np.linalg.det(s["matrix"][:, :2]) < 0 for s in samples]
    assert any(flipped) and not all(flipped)
    for s, original in zip(samples, originals):
        assert s["image"].shape == (80, 64, 1)
        back = inverse_points(s["keypoints"], s["matrix"], MPII.flip_pairs)
        assert np.abs(back - original).max() < 1e-3
    # batched, as torch tensors, via the transform's flow method
    batch = collate(samples)
    back = transforms[0].inverse(batch["keypoints"], batch["matrix"])
    assert isinstance(back, torch.Tensor)
    assert (back.numpy() - originals).__abs__().max() < 1e-3


def test_inverse_refuses_a_mirror_without_pairs():
    flip = kitpose.build("transform", "random_flip", flip_pairs="mpii", prob=1.0)
    out = flip(blob_sample(np.zeros((16, 2)) + 5.0, size=(20, 20)), RNG(0))
    with pytest.raises(KitposeError, match="flip_pairs"):
        inverse_points(out["keypoints"], out["matrix"])


def test_flip_swaps_pairs_and_twice_is_identity():
    flip = kitpose.build("transform", "random_flip", flip_pairs="coco", prob=1.0)
    points = RNG(0).uniform(0, 60, size=(17, 2)).astype(np.float32)
    sample = blob_sample(points[:2], size=(64, 48))
    sample["keypoints"], sample["visible"] = points, np.arange(17, dtype=np.float32)
    once = flip(sample, RNG(1))
    left, right = COCO.joint_names.index("left_wrist"), COCO.joint_names.index("right_wrist")
    assert once["keypoints"][left, 0] == pytest.approx(63 - points[right, 0])
    assert once["visible"][left] == right  # per-joint arrays follow the swap
    twice = flip(once, RNG(2))
    np.testing.assert_allclose(twice["keypoints"], points, atol=1e-5)
    np.testing.assert_array_equal(twice["image"], sample["image"])
    np.testing.assert_allclose(twice["matrix"], [[1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_flip_pairs_from_the_sample_and_errors():
    flip = kitpose.build("transform", "random_flip", prob=1.0)
    sample = blob_sample(POINTS)
    with pytest.raises(KitposeError, match="needs flip_pairs"):
        flip(sample, RNG(0))
    sample["flip_pairs"] = np.array([[0, 3]])
    out = flip(sample, RNG(0))
    assert out["keypoints"][0, 0] == pytest.approx(95 - POINTS[3, 0])
    with pytest.raises(KitposeError, match="does not fit"):
        kitpose.build("transform", "random_flip", flip_pairs="coco", prob=1.0)(sample, RNG(0))
    with pytest.raises(KitposeError, match="unknown joint set"):
        kitpose.build("transform", "random_flip", flip_pairs="human36m")
    with pytest.raises(KitposeError, match="invalid"):
        kitpose.build("transform", "random_flip", flip_pairs=[[1, 1]])


def test_every_sample_records_a_matrix_so_batches_collate():
    ds = kitpose.build("dataset", "synthetic", size=16, image_size=64, modality="colour")
    flip = kitpose.build("transform", "random_flip", flip_pairs="mpii", prob=0.5)
    pipe = PipelineDataset(ds, [flip], seed=0)
    samples = [pipe[i] for i in range(16)]
    dets = [np.linalg.det(s["matrix"][:, :2]) for s in samples]
    assert min(dets) < 0 < max(dets)
    batch = collate(samples)
    assert batch["matrix"].shape == (16, 2, 3)


def test_points_leaving_the_image_become_invisible_and_sizes_follow_the_zoom():
    crop = kitpose.build("transform", "top_down_affine", input_size=32, box="image", padding=0.5)
    sample = blob_sample(POINTS, size=(96, 80))
    sample["visible"][1] = 0.0
    out = crop(sample, RNG(0))
    # a crop of half the image around its centre keeps only points near the centre
    expected = (np.abs(POINTS - [47.5, 39.5]) <= [24, 20]).all(axis=1).astype(np.float32)
    expected[1] = 0.0  # never made visible again
    np.testing.assert_array_equal(out["visible"], expected)
    zoom = np.sqrt(abs(np.linalg.det(out["matrix"][:, :2])))
    assert out["head_size"] == pytest.approx(10.0 * zoom, rel=1e-5)
    x, y, w, h = out["bbox"]
    corners = inverse_points(np.array([[x, y], [x + w, y + h]]), out["matrix"])
    np.testing.assert_allclose(corners, [[20, 15], [60, 45]], atol=1e-3)


def test_top_down_affine_crops_the_box_at_the_model_aspect():
    crop = kitpose.build("transform", "top_down_affine", input_size=[48, 64], padding=1.0)
    sample = blob_sample(POINTS, size=(96, 80))
    sample["bbox"] = np.array([30.0, 20.0, 24.0, 16.0], np.float32)  # wide box -> taller crop
    out = crop(sample, RNG(0))
    assert out["image"].shape[:2] == (64, 48)
    # box centre -> output centre; 24 px of width -> 48 px
    centre = np.array([[42.0, 28.0]])
    m = out["matrix"].astype(np.float64)
    np.testing.assert_allclose(centre @ m[:, :2].T + m[:, 2], [[23.5, 31.5]], atol=1e-4)
    assert abs(np.linalg.det(m[:, :2])) == pytest.approx(4.0, rel=1e-5)
    with pytest.raises(KitposeError, match="needs a 'bbox'"):
        crop({k: v for k, v in sample.items() if k != "bbox"}, RNG(0))


def test_crop_of_the_whole_image_is_the_identity():
    m = crop_matrix([47.5, 39.5], [96, 80], 0.0, (96, 80))
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_depth_holes_stay_holes_under_warps():
    depth = np.full((40, 40), 0.5, np.float32)
    depth[10:14, 20:23] = 0.0
    depth[30:, :] = 0.25
    warped = warp_image(depth, crop_matrix([20.0, 20.0], [30.0, 30.0], 17.0, (40, 40)), (40, 40))
    valid = warped[warped > 0]
    assert (warped == 0).sum() > 0
    assert valid.min() >= 0.25 - 1e-6  # no invented near surfaces around holes or borders


def test_keypoints_stay_projections_of_keypoints_3d_through_the_camera():
    ds = kitpose.build("dataset", "synthetic", size=6, image_size=96, modality="grey")
    transforms = [kitpose.build("transform", "random_flip", flip_pairs="mpii", prob=0.5),
                  kitpose.build("transform", "random_affine", scale=[0.7, 1.3], rotation=50, rotation_prob=1.0,
                                shift=0.2),
                  kitpose.build("transform", "top_down_affine", input_size=64, random_rotation=30)]
    pipe = PipelineDataset(ds, transforms, seed=4)
    for i in range(6):
        s, raw = pipe[i], ds[i]
        fx, fy, cx, cy = s["camera"].astype(np.float64)
        k3 = s["keypoints_3d"].astype(np.float64)
        projected = np.stack([fx * k3[:, 0] / k3[:, 2] + cx, fy * k3[:, 1] / k3[:, 2] + cy], 1)
        np.testing.assert_allclose(projected, s["keypoints"], atol=2e-3)
        # the scene is only turned (or mirrored), never stretched: bone lengths are kept
        bones = np.array(MPII.skeleton)
        length = lambda p: np.linalg.norm(p[bones[:, 0]] - p[bones[:, 1]], axis=1)  # noqa: E731
        np.testing.assert_allclose(np.sort(length(s["keypoints_3d"])), np.sort(length(raw["keypoints_3d"])),
                                   rtol=1e-4)


def test_quantize_rounds_to_the_grid_only_when_enabled():
    sample = blob_sample(POINTS)
    q = kitpose.build("transform", "quantize", stride=4)(sample, RNG(0))
    np.testing.assert_array_equal(q["keypoints"], np.floor(POINTS / 4 + 0.5) * 4)
    same = kitpose.build("transform", "quantize", enabled=False, stride=4)(sample, RNG(0))
    np.testing.assert_array_equal(same["keypoints"], sample["keypoints"])
    with pytest.raises(KitposeError):
        kitpose.build("transform", "quantize", stride=0)


def test_quantize_is_one_recipe_key():
    from kitpose.data import build_split, parse_split
    from kitpose.recipe import load_recipe

    registry = kitpose.get_registry()
    grids = {}
    for flag in (True, False):
        recipe = load_recipe("recipes/base/synthetic.yaml", [f"vars.quantize={str(flag).lower()}",
                                                              "data.train.dataset.size=8"])
        pipe = build_split(parse_split(recipe, registry, "train"), registry, seed=0)
        kps = np.stack([pipe[i]["keypoints"] for i in range(8)])
        grids[flag] = np.abs(kps / 4 - np.rint(kps / 4)).max()
    assert grids[True] == 0.0
    assert grids[False] > 0.1


def test_photometric_jitter_changes_values_not_geometry():
    jitter = kitpose.build("transform", "photometric", brightness=0.3, contrast=0.3, saturation=0.3, noise=0.02)
    colour = blob_sample(POINTS[:3], dtype=np.uint8)
    out = jitter(colour, RNG(5))
    assert out["image"].dtype == np.uint8 and out["image"].shape == colour["image"].shape
    assert not np.array_equal(out["image"], colour["image"])
    np.testing.assert_array_equal(jitter(colour, RNG(5))["image"], out["image"])  # the rng decides
    np.testing.assert_array_equal(out["keypoints"], colour["keypoints"])
    depth = {"image": np.where(RNG(0).random((20, 20, 1)) < 0.2, 0, 0.5).astype(np.float32),
             "keypoints": POINTS, "visible": np.ones(4, np.float32)}
    jittered = jitter(depth, RNG(1))["image"]
    np.testing.assert_array_equal(jittered == 0, depth["image"] == 0)
    with pytest.raises(KitposeError, match="brightness"):
        kitpose.build("transform", "photometric", brightness=2.0)


def test_pipeline_randomness_comes_from_seed_epoch_and_index():
    ds = kitpose.build("dataset", "synthetic", size=8, image_size=64, modality="grey")
    transforms = [kitpose.build("transform", "random_affine", rotation=45, rotation_prob=1.0)]
    a, b = PipelineDataset(ds, transforms, seed=3), PipelineDataset(ds, transforms, seed=3)
    np.testing.assert_array_equal(a[5]["matrix"], b[5]["matrix"])
    b.set_epoch(1)
    assert not np.array_equal(a[5]["matrix"], b[5]["matrix"])


def test_pipeline_applies_transforms_in_order():
    flip = kitpose.build("transform", "random_flip", flip_pairs=[[0, 1]], prob=1.0)
    q = kitpose.build("transform", "quantize", stride=2)
    sample = blob_sample(POINTS)
    both = PipelineDataset([sample], [flip, q], seed=5)
    rng = RNG([5, 0, 0])  # the generator PipelineDataset seeds for (seed, epoch 0, index 0)
    expected = q(flip(sample, rng), rng)
    np.testing.assert_array_equal(both[0]["keypoints"], expected["keypoints"])
    assert not np.array_equal(expected["keypoints"], q(sample, RNG(0))["keypoints"])  # the flip counted


def test_bad_parameters_are_clear_errors():
    with pytest.raises(KitposeError, match="scale"):
        kitpose.build("transform", "random_affine", scale=[1.2, 0.8])
    with pytest.raises(KitposeError, match="input_size"):
        kitpose.build("transform", "top_down_affine", input_size="big")
    with pytest.raises(KitposeError, match="box"):
        kitpose.build("transform", "top_down_affine", box="person")
    with pytest.raises(KitposeError, match="prob"):
        kitpose.build("transform", "random_flip", flip_pairs="mpii", prob=1.5)


def test_uint8_and_single_channel_images_keep_their_layout():
    sample = blob_sample(POINTS[:1], dtype=np.uint8)
    out = kitpose.build("transform", "random_affine", rotation=30, rotation_prob=1.0)(sample, RNG(0))
    assert out["image"].shape == sample["image"].shape and out["image"].dtype == np.uint8
    grey = cv2.cvtColor(np.zeros((10, 12, 3), np.uint8), cv2.COLOR_RGB2GRAY)
    assert kitpose.build("transform", "top_down_affine", input_size=8, box="image")(
        {"image": grey, "keypoints": POINTS[:1], "visible": np.ones(1, np.float32)}, RNG(0))["image"].shape == (8, 8)
