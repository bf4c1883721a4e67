"""Broken COCO / MPII files and images, with and without ``skip_invalid``.

Without it every fault is one error line naming the file and the record. With it a bad
record is left out of the dataset's index (counted, said once on the console and in the
run's log) or, when its image turns out unreadable only when loaded, dropped from its
batch by ``collate``: no sample is ever returned in place of another, so none is scored
twice.
"""
from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import kitpose
import kitpose.data
from conftest import run_cli
from kitpose.data import INVALID_KEY, PipelineDataset, collate
from kitpose.errors import KitposeError
from kitpose_plugins.data.io import read_image, truncation

TESTS = Path(__file__).parent
COCO_ANN = TESTS / "fixtures" / "coco" / "person_keypoints_tiny.json"
COCO_IMAGES = TESTS / "fixtures" / "coco" / "images"
MPII_ANN = TESTS / "fixtures" / "mpii" / "train_tiny.json"
MPII_IMAGES = TESTS / "fixtures" / "mpii" / "images"


@pytest.fixture
def coco_copy(tmp_path):
    """(annotation dict, where to write it, a writable copy of the images)."""
    shutil.copytree(COCO_IMAGES, tmp_path / "images")
    return json.loads(COCO_ANN.read_text()), tmp_path / "ann.json", tmp_path / "images"


@pytest.fixture
def mpii_copy(tmp_path):
    shutil.copytree(MPII_IMAGES, tmp_path / "images")
    return json.loads(MPII_ANN.read_text()), tmp_path / "ann.json", tmp_path / "images"


def coco(ann, images, **params):
    return kitpose.build("dataset", "coco", ann_file=str(ann), image_dir=str(images), **params)


def mpii(ann, images, **params):
    return kitpose.build("dataset", "mpii", ann_file=str(ann), image_dir=str(images), **params)


def write(data, path: Path) -> Path:
    path.write_text(json.dumps(data))
    return path


def cut(path: Path, keep: float = 0.6) -> None:
    """Truncate an image file as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    return text


def every_sample(dataset, workers: int = 0, batch_size: int = 2) -> list[dict]:
    """Everything a data loader yields over the whole dataset, as the engine iterates it."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate,
                                         num_workers=workers)
    return list(loader)


# -- COCO fields that used to raise raw exceptions (point 17) -------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][1].update(area="big"),
     r"annotations\[1\] \(id 101\): wrong format: area must be a number"),
    (lambda d: d["annotations"][1].update(area=float("nan")), r"annotations\[1\] \(id 101\): wrong format: area"),
    (lambda d: d["annotations"][1].update(category_id="1"), r"annotations\[1\] \(id 101\): wrong format: category_id"),
    (lambda d: d["annotations"][1].update(category_id=1.5), r"annotations\[1\] \(id 101\): wrong format: category_id"),
    (lambda d: d["annotations"][1].update(category_id=[1]), r"annotations\[1\] \(id 101\): wrong format: category_id"),
    (lambda d: d["annotations"][1].update(iscrowd="no"), r"annotations\[1\] \(id 101\): wrong format: iscrowd"),
    (lambda d: d["annotations"][1].update(id="x101"), r"annotations\[1\] \(id 'x101'\): wrong format: id"),
    (lambda d: d["annotations"][1].update(image_id=[2]), r"annotations\[1\] \(id 101\): wrong format"),
    (lambda d: d["annotations"].__setitem__(1, 7), r"annotations\[1\]: wrong format: an annotation must be"),
])
def test_a_bad_coco_annotation_is_one_line_or_a_counted_skip(coco_copy, capsys, change, message):
    data, path, images = coco_copy
    change(data)
    write(data, path)
    with pytest.raises(KitposeError, match=r"ann\.json: " + message) as info:
        coco(path, images)
    one_line(info.value)
    ds = coco(path, images, skip_invalid=True)
    assert len(ds) == 2 and ds.skipped.total == 1
    assert ds.annotation_ids.tolist() == [100, 102]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipped 1 of 3 records" in err[0] and "annotations[1]" in err[0]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(categories=5), r"categories: categories must be a list"),
    (lambda d: d.update(categories="person"), r"categories: categories must be a list"),
    (lambda d: d.update(categories=[3]), r"categories\[0\]: a category must be a mapping"),
    (lambda d: d["categories"][0].update(id="one"), r"categories\[0\]: a category id must be a whole number"),
    (lambda d: d["images"][0].update(width="wide"), r"images\[0\]: an image record needs"),
    (lambda d: d["images"][0].update(height=-5), r"images\[0\]: an image record needs a file_name and a positive"),
    (lambda d: d["images"][0].update(file_name=None), r"images\[0\]: an image record needs"),
])
def test_a_bad_coco_file_section_is_one_line_even_when_skipping(coco_copy, change, message):
    data, path, images = coco_copy
    change(data)
    write(data, path)
    for skip in (False, True):
        with pytest.raises(KitposeError, match=r"ann\.json: " + message) as info:
            coco(path, images, skip_invalid=skip)
        one_line(info.value)


def test_cli_run_on_a_broken_coco_file_is_exit_2_and_one_line(coco_copy, tmp_path):
    data, path, images = coco_copy
    data["annotations"][0]["area"] = "big"
    write(data, path)
    result = run_cli("run", str(TESTS / "recipes" / "toy.yaml"), f"runs_dir={tmp_path / 'runs'}",
                     f"data.train.dataset={{use: coco, ann_file: '{path}', image_dir: '{images}'}}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "ann.json: annotations[0] (id 100): wrong format: area must be a number" in lines[0]


# -- MPII -------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda r: r[1].update(image=5), r"record 1 \(\?\): wrong format"),
    (lambda r: r[1].update(scale="big"), r"record 1 \(mpii_2\.jpg\): wrong format"),
    (lambda r: r[1].update(joints_vis="all"), r"record 1 \(mpii_2\.jpg\): wrong format"),
    (lambda r: r[1].update(headbox=[1, 2]), r"record 1 \(mpii_2\.jpg\): wrong format"),
    (lambda r: r.__setitem__(1, "mpii_2.jpg"), r"record 1: wrong format: a record must be a mapping"),
])
def test_a_bad_mpii_record_is_one_line_or_a_counted_skip(mpii_copy, capsys, change, message):
    data, path, images = mpii_copy
    change(data)
    write(data, path)
    with pytest.raises(KitposeError, match=r"ann\.json: " + message) as info:
        mpii(path, images)
    one_line(info.value)
    ds = mpii(path, images, skip_invalid=True)
    assert len(ds) == 2 and ds.records == [0, 2] and ds.skipped.total == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipped 1 of 3 records" in err[0]


def test_missing_mpii_images_are_left_out_when_built(mpii_copy):
    data, path, images = mpii_copy
    (images / "mpii_1.jpg").unlink()
    (images / "mpii_3.jpg").unlink()
    write(data, path)
    with pytest.raises(KitposeError, match=r"mpii_1\.jpg: record 0: image not found") as info:
        mpii(path, images)
    one_line(info.value)
    ds = mpii(path, images, skip_invalid=True)
    assert len(ds) == 1 and ds.records == [1] and ds.skipped.counts == {"image not found": 2}
    samples = every_sample(PipelineDataset(ds))
    assert sum(len(b["index"]) for b in samples) == 1


# -- truncated and corrupt images --------------------------------------------------------
def test_truncated_jpeg_and_png_are_detected(tmp_path):
    jpeg, png = tmp_path / "a.jpg", tmp_path / "b.png"
    shutil.copy(COCO_IMAGES / "000000000001.jpg", jpeg)
    shutil.copy(COCO_IMAGES / "000000000003.png", png)
    assert truncation(jpeg.read_bytes()) is None and truncation(png.read_bytes()) is None
    assert read_image(jpeg).shape == (80, 96, 3)
    jpeg.write_bytes(jpeg.read_bytes() + b"\x00\x00\r\n")  # padding after the end marker is fine
    assert read_image(jpeg).shape == (80, 96, 3)
    import cv2

    for path, kind in ((jpeg, "JPEG"), (png, "PNG")):
        cut(path)
        # OpenCV alone would hand back a partial image without a word (JPEG)
        with pytest.raises(KitposeError, match=rf"{path.name}: rec 7: truncated {kind}") as info:
            read_image(path, "rec 7")
        one_line(info.value)
    assert cv2.imread(str(jpeg)) is not None


@pytest.mark.parametrize("name, index, kind", [("000000000002.jpg", 1, "JPEG"), ("000000000003.png", 2, "PNG")])
def test_a_truncated_coco_image_without_skip_is_one_line(coco_copy, name, index, kind):
    data, path, images = coco_copy
    cut(images / name)
    ds = coco(write(data, path), images)
    with pytest.raises(KitposeError, match=rf"{name}: image_id {index + 1}, annotation id {100 + index}: "
                                           rf"truncated {kind}") as info:
        ds[index]
    one_line(info.value)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_truncated_coco_image_with_skip_is_dropped_never_replaced(coco_copy, capfd, caplog, monkeypatch,
                                                                   workers):
    data, path, images = coco_copy
    cut(images / "000000000002.jpg")
    ds = coco(write(data, path), images, skip_invalid=True)
    assert len(ds) == 3  # the file exists: it is found bad only when read
    assert INVALID_KEY in ds[1] and "truncated JPEG" in ds[1][INVALID_KEY]
    crop = kitpose.build("transform", "top_down_affine", input_size=32)
    monkeypatch.setattr(kitpose.data._drop_counter(), "value", 0)  # as in a fresh process
    capfd.readouterr()
    with caplog.at_level(logging.INFO, logger="kitpose"):
        for epoch in range(2):  # new workers every epoch, as the engine's loaders have
            pipe = PipelineDataset(ds, [crop])
            pipe.set_epoch(epoch)
            batches = every_sample(pipe, workers=workers)
            ids = [int(a) for b in batches for a in b["annotation_id"]]
            assert sorted(ids) == [100, 102] and len(set(ids)) == len(ids)  # none twice, the bad one absent
            assert [b["image"].shape[0] for b in batches] == [1, 1]  # its batch is one short
    assert kitpose.data.dropped_samples() == 2  # counted across worker processes too
    if workers == 0:
        logged = [r.getMessage() for r in caplog.records if "skipped unreadable sample" in r.getMessage()]
        assert len(logged) == 2 and "000000000002.jpg" in logged[0]
    err = capfd.readouterr().err
    assert err.count("kitpose: warning: skipped an unreadable sample") == 1, err
    assert "truncated JPEG" in err


def test_every_record_bad_in_every_way_is_counted_and_no_sample_repeats(coco_copy, capsys):
    """One COCO file with a bad annotation, a missing image and a truncated image: the loader
    yields each remaining instance exactly once, over two epochs."""
    data, path, images = coco_copy
    extra = json.loads(json.dumps(data["annotations"][0]))
    data["annotations"] += [dict(extra, id=103, area="big"),  # bad annotation: left out when built
                            dict(extra, id=104, image_id=9),   # missing image: left out when built
                            dict(extra, id=105)]
    data["images"].append(dict(data["images"][0], id=9, file_name="gone.jpg"))
    cut(images / "000000000003.png")                    # 102: truncated, dropped when loaded
    ds = coco(write(data, path), images, skip_invalid=True)
    assert ds.skipped.counts == {"wrong format": 1, "image not found": 1}
    assert sorted(ds.annotation_ids.tolist()) == [100, 101, 102, 105]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipped 2 of 6 records" in err[0]
    pipe = PipelineDataset(ds, [kitpose.build("transform", "top_down_affine", input_size=32)])
    for epoch in range(2):
        pipe.set_epoch(epoch)
        ids = [int(a) for b in every_sample(pipe, batch_size=3) for a in b["annotation_id"]]
        assert sorted(ids) == [100, 101, 105]


def test_a_batch_with_no_readable_sample_is_empty():
    assert collate([{INVALID_KEY: "x.jpg: truncated JPEG", "index": 0}]) == {}


def test_collate_without_invalid_samples_is_unchanged():
    samples = [{"image": np.zeros((4, 4, 3), np.uint8), "keypoints": np.zeros((2, 2), np.float32), "index": i}
               for i in range(3)]
    batch = collate(samples)
    assert batch["image"].shape == (3, 3, 4, 4) and batch["index"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("batch_size", [3, 1])
def test_a_run_skips_a_truncated_image_and_says_so(coco_copy, tmp_path, batch_size):
    """A whole `kitpose run` over COCO with a truncated image and skip_invalid: it finishes,
    says so once on the console, and run.log has it (batch_size 1: a batch left empty is passed over)."""
    data, path, images = coco_copy
    instances = len(coco(write(data, path), images))
    cut(images / "000000000001.jpg")
    dataset = f"{{use: coco, ann_file: '{path}', image_dir: '{images}', skip_invalid: true}}"
    split = f"{{dataset: {dataset}, transforms: [{{use: top_down_affine, input_size: 16}}], batch_size: {batch_size}}}"
    result = run_cli("run", str(TESTS / "recipes" / "toy.yaml"), f"runs_dir={tmp_path / 'runs'}", "train.epochs=1",
                     "+components.model.joints=17", *(f"data.{s}={split}" for s in ("train", "val", "test")),
                     "~monitors.jsonl", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "skipped an unreadable sample" in line]
    assert len(warnings) == 1 and "000000000001.jpg" in warnings[0] and "truncated JPEG" in warnings[0]
    logs = list((tmp_path / "runs").rglob("run.log"))
    assert len(logs) == 1 and "skipped unreadable sample" in logs[0].read_text()
    with open(logs[0].parent / "results.csv") as handle:
        scored = {float(row["N"]) for row in csv.DictReader(handle)}
    assert scored == {instances - 1}  # every readable instance once, the truncated one never


def test_when_every_coco_record_is_skipped_the_error_says_why_in_one_line(coco_copy, capsys):
    data, path, images = coco_copy
    for name in ("000000000001.jpg", "000000000002.jpg", "000000000003.png"):
        (images / name).unlink()
    with pytest.raises(KitposeError, match=r"ann\.json: every instance was skipped: 3 image not found") as info:
        coco(write(data, path), images, skip_invalid=True)
    one_line(info.value)
    assert capsys.readouterr().err == ""  # the error is the only line


def test_when_every_mpii_record_is_skipped_the_error_says_why_in_one_line(mpii_copy, capsys):
    data, path, images = mpii_copy
    shutil.rmtree(images)
    with pytest.raises(KitposeError, match=r"ann\.json: the file holds no usable record: every record was "
                                           r"skipped: 3 image not found") as info:
        mpii(write(data, path), images, skip_invalid=True)
    one_line(info.value)
    assert capsys.readouterr().err == ""


def test_preview_leaves_out_a_sample_that_cannot_be_read(coco_copy, tmp_path):
    from kitpose_plugins.preview.preview import preview

    data, path, images = coco_copy
    instances = len(coco(write(data, path), images))
    cut(images / "000000000001.jpg")
    recipe = tmp_path / "coco.yaml"
    recipe.write_text("kitpose: 1\ndata:\n  train:\n    dataset: {use: coco, ann_file: '%s', image_dir: '%s', "
                      "skip_invalid: true}\n    transforms: [{use: top_down_affine, input_size: 16}]\n" % (path, images))
    out, drawn = preview(str(recipe), output=tmp_path / "preview.png")
    assert out.is_file() and drawn == instances - 1
