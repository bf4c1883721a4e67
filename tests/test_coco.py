"""The COCO keypoint dataset on a tiny fixture made for these tests (three rendered figures).

tests/fixtures/coco/person_keypoints_tiny.json follows the official layout: three
usable people, one person without labelled keypoints and one crowd region (both
left out).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import kitpose
from kitpose.data import PipelineDataset, build_split, collate, parse_split
from kitpose.errors import KitposeError
from kitpose.recipe import load_recipe
from kitpose_plugins.data.geometry import inverse_points
from kitpose_plugins.data.joints import COCO

FIXTURE = Path(__file__).parent / "fixtures" / "coco"
ANN = FIXTURE / "person_keypoints_tiny.json"
IMAGES = FIXTURE / "images"


def coco(ann=ANN, images=IMAGES, **params):
    return kitpose.build("dataset", "coco", ann_file=str(ann), image_dir=str(images), **params)


@pytest.fixture
def copy(tmp_path):
    """A writable copy of the fixture: (annotation dict, path to write it, image folder)."""
    shutil.copytree(IMAGES, tmp_path / "images")
    return json.loads(ANN.read_text()), tmp_path / "ann.json", tmp_path / "images"


def write(data, path):
    path.write_text(json.dumps(data))
    return path


def test_instances_match_pycocotools():
    from pycocotools.coco import COCO as Reference

    ref = Reference(str(ANN))
    wanted = [a for a in ref.loadAnns(ref.getAnnIds(catIds=ref.getCatIds(catNms=["person"]), iscrowd=False))
              if a["num_keypoints"] > 0]
    ds = coco()
    assert len(ds) == len(wanted) == 3
    assert ds.annotation_ids.tolist() == [a["id"] for a in wanted]
    for i, ann in enumerate(wanted):
        s = ds[i]
        kps = np.asarray(ann["keypoints"], np.float32).reshape(17, 3)
        np.testing.assert_array_equal(s["keypoints"], kps[:, :2])  # as written, not rounded
        np.testing.assert_array_equal(s["visible"], (kps[:, 2] > 0).astype(np.float32))
        np.testing.assert_allclose(s["bbox"], ann["bbox"], atol=1e-4)
        assert s["area"] == pytest.approx(ann["area"])
        assert s["image_id"] == ann["image_id"] and s["annotation_id"] == ann["id"]
        info = ref.loadImgs(ann["image_id"])[0]
        assert s["image"].shape == (info["height"], info["width"], 3) and s["image"].dtype == np.uint8
        assert s["head_size"] == pytest.approx(0.11 * max(ann["bbox"][2:]), rel=1e-5)


def test_declares_what_it_returns_and_its_joints():
    ds = coco()
    assert set(ds[0]) == {"image", "keypoints", "visible", *ds.provides}
    assert ds.joint_names == COCO.joint_names and len(ds.sigmas) == 17
    assert ds.flip_pairs[0] == (1, 2)  # left_eye <-> right_eye


def test_top_down_crop_from_a_recipe_and_back(tmp_path):
    recipe = tmp_path / "coco.yaml"
    recipe.write_text(f"""kitpose: 1
data:
  train:
    dataset: {{use: coco, ann_file: {ANN}, image_dir: {IMAGES}}}
    transforms:
      - {{use: random_flip, flip_pairs: coco}}
      - {{use: top_down_affine, input_size: [48, 64], random_scale: [0.8, 1.2], random_rotation: 30}}
    batch_size: 3
""")
    registry = kitpose.get_registry()
    pipe = build_split(parse_split(load_recipe(recipe), registry, "train"), registry, seed=1)
    raw = coco()
    batch = collate([pipe[i] for i in range(len(pipe))])
    assert batch["image"].shape == (3, 3, 64, 48)
    back = inverse_points(batch["keypoints"], batch["matrix"], COCO.flip_pairs).numpy()
    # OKS is scored on the image after mapping back: the annotation's area stays as it was
    np.testing.assert_allclose(batch["area"].numpy(), [raw[i]["area"] for i in range(3)])
    for i in range(3):
        labelled = raw[i]["visible"] > 0
        np.testing.assert_allclose(back[i][labelled], raw[i]["keypoints"][labelled], atol=1e-3)


def test_missing_image_names_file_and_record(copy, capsys):
    data, path, images = copy
    (images / "000000000002.jpg").unlink()
    with pytest.raises(KitposeError, match=r"000000000002\.jpg: image_id 2, annotation id 101: image not found"):
        coco(write(data, path), images)  # found when the dataset is built, not mid-epoch
    lenient = coco(path, images, skip_invalid=True)
    assert len(lenient) == 2 and lenient.skipped.total == 1
    assert [lenient[i]["image_id"] for i in range(2)] == [1, 3]  # left out, not replaced
    err = capsys.readouterr().err
    assert err.count("skipped 1 of 3 records") == 1 and "image not found" in err


def test_corrupt_image_is_an_error(copy):
    data, path, images = copy
    (images / "000000000003.png").write_bytes(b"this is not an image at all")
    with pytest.raises(KitposeError, match=r"000000000003\.png: image_id 3.*cannot decode"):
        coco(write(data, path), images)[2]


def test_image_of_the_wrong_size_is_an_error(copy):
    data, path, images = copy
    data["images"][0]["width"] = 200
    data["annotations"][0]["bbox"][0] = 1.0
    with pytest.raises(KitposeError, match="annotation says 200"):
        coco(write(data, path), images)[0]


def test_nan_keypoint_names_the_annotation(copy):
    data, path, images = copy
    data["annotations"][1]["keypoints"][0] = float("nan")  # written as NaN, as Python's json does
    write(data, path)
    with pytest.raises(KitposeError, match=r"ann\.json: annotations\[1\] \(id 101\): NaN"):
        coco(path, images)
    ds = coco(path, images, skip_invalid=True)
    assert len(ds) == 2 and ds.skipped.total == 1 and ds.annotation_ids.tolist() == [100, 102]


def test_out_of_image_keypoint_is_an_error(copy):
    data, path, images = copy
    data["annotations"][2]["keypoints"][3 * 9] = 500.0  # left_wrist x on an 80 px wide image
    data["annotations"][2]["keypoints"][3 * 9 + 2] = 2
    with pytest.raises(KitposeError, match=r"annotations\[2\] \(id 102\): out-of-image keypoint: left_wrist"):
        coco(write(data, path), images)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("   \n", "empty"),
    ('{"images": [], "annotations": [', "not valid JSON"),
    ("[1, 2, 3]", "not a COCO keypoint file"),
    ('{"images": [{"id": 1}], "annotations": []}', r"images\[0\]"),
    ('{"images": [], "annotations": []}', "no usable person"),
])
def test_bad_files(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(KitposeError, match=message) as info:
        coco(path, tmp_path)
    assert str(path) in str(info.value)


def test_wrong_record_format(copy):
    data, path, images = copy
    data["annotations"][0]["keypoints"] = [1, 2, 3]
    with pytest.raises(KitposeError, match=r"annotations\[0\] \(id 100\): wrong format"):
        coco(write(data, path), images)


def test_missing_annotation_file_and_unknown_parameter(tmp_path):
    with pytest.raises(KitposeError, match="not found"):
        coco(tmp_path / "nope.json", tmp_path)
    with pytest.raises(KitposeError, match="did you mean 'image_dir'"):
        kitpose.build("dataset", "coco", ann_file=str(ANN), image_dirs=str(IMAGES))


def test_min_keypoints_filters_instances():
    counts = [int((coco()[i]["visible"] > 0).sum()) for i in range(3)]
    ds = coco(min_keypoints=max(counts))
    assert len(ds) == counts.count(max(counts))


def test_pipeline_of_full_images_without_crop_keeps_sizes():
    pipe = PipelineDataset(coco(), [])
    assert [pipe[i]["image"].shape[:2] for i in range(3)] == [(80, 96), (96, 72), (80, 80)]
