"""The MPII JSON dataset on a tiny fixture made for these tests (three rendered figures).

tests/fixtures/mpii/train_tiny.json uses the common record layout with MATLAB's
1-based coordinates; record 0 has a head box, record 2 an unlabelled right ankle.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import kitpose
from kitpose.data import PipelineDataset, collate
from kitpose.errors import KitposeError
from kitpose_plugins.data.geometry import inverse_points
from kitpose_plugins.data.joints import MPII

FIXTURE = Path(__file__).parent / "fixtures" / "mpii"
ANN = FIXTURE / "train_tiny.json"
IMAGES = FIXTURE / "images"
RECORDS = json.loads(ANN.read_text())


def mpii(ann=ANN, images=IMAGES, **params):
    return kitpose.build("dataset", "mpii", ann_file=str(ann), image_dir=str(images), **params)


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(IMAGES, tmp_path / "images")
    return json.loads(ANN.read_text()), tmp_path / "ann.json", tmp_path / "images"


def write(data, path):
    path.write_text(json.dumps(data))
    return path


def test_records_become_zero_based_samples():
    ds = mpii()
    assert len(ds) == 3
    assert ds.joint_names == MPII.joint_names and ds.flip_pairs == MPII.flip_pairs
    for i, rec in enumerate(RECORDS):
        s = ds[i]
        assert set(s) == {"image", "keypoints", "visible", *ds.provides}
        vis = np.asarray(rec["joints_vis"], np.float32)
        np.testing.assert_array_equal(s["visible"], vis)
        joints = np.asarray(rec["joints"], np.float32) - 1
        np.testing.assert_allclose(s["keypoints"][vis > 0], joints[vis > 0], atol=1e-5)
        assert s["keypoints"].dtype == np.float32 and s["image"].dtype == np.uint8
        # the person square: 200 * scale around the centre moved down by 15 * scale
        side = 200 * rec["scale"]
        cx, cy = rec["center"][0] - 1, rec["center"][1] - 1 + 15 * rec["scale"]
        np.testing.assert_allclose(s["bbox"], [cx - side / 2, cy - side / 2, side, side], atol=1e-3)
    assert ds[2]["visible"][0] == 0.0


def test_head_size_from_headbox_else_neck_to_head_top():
    ds = mpii()
    x1, y1, x2, y2 = RECORDS[0]["headbox"]
    assert ds[0]["head_size"] == pytest.approx(0.6 * np.hypot(x2 - x1, y2 - y1), rel=1e-5)
    j = np.asarray(RECORDS[1]["joints"])
    assert ds[1]["head_size"] == pytest.approx(np.linalg.norm(j[9] - j[8]), rel=1e-5)


def test_zero_based_files(tmp_path):
    shifted = [dict(r, joints=(np.asarray(r["joints"]) - 1).tolist(), center=[c - 1 for c in r["center"]])
               for r in RECORDS]
    a = mpii()
    b = mpii(write(shifted, tmp_path / "zero.json"), one_based=False)
    np.testing.assert_allclose(a[1]["keypoints"], b[1]["keypoints"], atol=1e-5)


def test_top_down_crop_and_back():
    flip = kitpose.build("transform", "random_flip", flip_pairs="mpii", prob=1.0)
    crop = kitpose.build("transform", "top_down_affine", input_size=64, random_rotation=40)
    pipe = PipelineDataset(mpii(), [flip, crop], seed=0)
    batch = collate([pipe[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, 64, 64)
    back = inverse_points(batch["keypoints"], batch["matrix"], MPII.flip_pairs).numpy()
    raw = mpii()
    for i in range(3):
        labelled = raw[i]["visible"] > 0
        np.testing.assert_allclose(back[i][labelled], raw[i]["keypoints"][labelled], atol=1e-3)


def test_missing_and_corrupt_images(copy):
    data, path, images = copy
    (images / "mpii_2.jpg").unlink()
    with pytest.raises(KitposeError, match=r"mpii_2\.jpg: record 1: image not found"):
        mpii(write(data, path), images)  # found when the dataset is built
    lenient = mpii(path, images, skip_invalid=True)
    assert len(lenient) == 2 and lenient.skipped.total == 1 and lenient.records == [0, 2]
    (images / "mpii_3.jpg").write_bytes(b"not a jpeg at all")
    (images / "mpii_2.jpg").write_bytes((IMAGES / "mpii_2.jpg").read_bytes())
    with pytest.raises(KitposeError, match=r"mpii_3\.jpg: record 2: cannot decode"):
        mpii(path, images)[2]


@pytest.mark.parametrize("change, message", [
    (lambda r: r[1].update(scale=float("nan")), r"record 1 \(mpii_2\.jpg\): NaN"),
    (lambda r: r[0].update(joints=r[0]["joints"][:5]), r"record 0 \(mpii_1\.jpg\): wrong format"),
    (lambda r: r[2].pop("center"), r"record 2 \(mpii_3\.jpg\): wrong format"),
    (lambda r: r[1].update(scale=-1.0), "scale must be positive"),
    (lambda r: r[1]["joints_vis"].__setitem__(9, 0), "no head size"),
])
def test_bad_records_name_the_record(copy, change, message):
    data, path, images = copy
    change(data)
    with pytest.raises(KitposeError, match=message):
        mpii(write(data, path), images)
    lenient = mpii(path, images, skip_invalid=True)
    assert len(lenient) == 2 and lenient.skipped.total == 1


def test_out_of_image_joint_is_an_error(copy):
    data, path, images = copy
    data[0]["joints"][10] = [400.0, 20.0]
    with pytest.raises(KitposeError, match=r"record 0 \(mpii_1\.jpg\): out-of-image keypoint: r_wrist"):
        mpii(write(data, path), images)[0]


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("{", "not valid JSON"), ('{"a": 1}', "not an MPII JSON file"), ("[]", "no usable record")])
def test_bad_files(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(KitposeError, match=message):
        mpii(path, tmp_path)
