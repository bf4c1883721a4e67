"""Using a trained run: kitpose.predict.Predictor, `kitpose predict` and `kitpose export`.

One short run of the default recipe (64 px, one epoch) is trained for the module; the
predictor must give exactly what the run's own test pass scored.
"""
from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest

import kitpose
from conftest import ROOT, run_cli
from kitpose.engine import run_recipe
from kitpose.predict import Predictor

SHORT = ["train.epochs=1", "train.steps=6", "vars.image_size=64", "vars.heatmap_size=16",
         "data.train.dataset.size=64", "data.val.dataset.size=16", "data.test.dataset.size=24",
         "data.test.batch_size=8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict") / "run"
    run_recipe(str(ROOT / "recipes" / "hrnet_dark.yaml"), SHORT, run_dir=str(folder))
    return folder


def test_predictions_are_what_the_test_pass_scored(trained):
    test = kitpose.build("dataset", "synthetic", split="test", size=24, image_size=64)
    samples = [test[i] for i in range(len(test))]
    errors = np.load(trained / "errors.npz")
    order = errors["index"]
    for decoder in ("dark", "argmax"):
        predictor = Predictor.from_run(trained, decoder=decoder)
        people = predictor([s["image"] for s in samples], batch_size=5)  # batches that differ from the run's
        assert all(len(found) == 1 for found in people)
        got = np.stack([people[i][0].keypoints for i in order])
        truth = np.stack([samples[i]["keypoints"] for i in order])
        visible = np.stack([samples[i]["visible"] for i in order]) > 0
        distance = np.linalg.norm(got - truth, axis=-1)
        scored = errors[f"values/{decoder}/EPE"]
        np.testing.assert_allclose(distance[visible], scored[visible], rtol=1e-4, atol=1e-4)


def test_predict_command_on_whole_images(trained, tmp_path):
    test = kitpose.build("dataset", "synthetic", split="test", size=3, image_size=64)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        depth = np.clip(test[i]["image"][..., 0] * 255, 0, 255).astype(np.uint8)
        cv2.imwrite(str(images / f"{100 + i}.png"), depth)
    result = run_cli("predict", str(trained), str(images), "--out", str(tmp_path / "out"), "--decoder", "standard")
    assert result.returncode == 0, result.stderr
    assert "predicted 3 people in 3 images with decoder 'standard'" in result.stdout
    found = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert [r["image_id"] for r in found] == [100, 101, 102]
    assert all(len(r["keypoints"]) == 16 * 3 and r["category_id"] == 1 for r in found)
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["100.png", "101.png", "102.png"]
    # this recipe does not crop: boxes would be ignored, so they are refused
    (tmp_path / "boxes.json").write_text(json.dumps([{"image_id": 100, "bbox": [4, 4, 50, 50], "score": 1}]))
    refused = run_cli("predict", str(trained), str(images), "--boxes", str(tmp_path / "boxes.json"))
    assert refused.returncode == 2 and "does not crop people" in refused.stderr


def test_a_plugins_file_format_reads_the_boxes_and_writes_the_results(coco_run, tmp_path):
    # the toy plugin's format (tests/toy_plugin.py), found through the registry as any plugin's
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((120, 160, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "b.png"), np.full((120, 160, 3), 90, np.uint8))
    (tmp_path / "boxes.txt").write_text("a.png 10 20 60 80 0.9\na.png 70 10 50 90 0.3\nb.png 5 5 40 40 0.8\n")
    result = run_cli("predict", str(coco_run), str(folder), "--format", "toy_lines", "--boxes",
                     str(tmp_path / "boxes.txt"), "--min-score", "0.5", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'out' / 'people.txt'} (one line per person)" in result.stdout
    lines = (tmp_path / "out" / "people.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["a.png", "b.png"]  # the 0.3 box is left out
    assert all(len(line.split()) == 2 + 17 * 2 for line in lines)
    assert not (tmp_path / "out" / "keypoints.json").exists()


def test_the_predictor_leaves_gradients_on(trained):
    import torch

    Predictor.from_run(trained)([np.zeros((64, 64, 1), np.float32)])
    assert torch.is_grad_enabled()  # a script may go on to train


@pytest.fixture(scope="module")
def coco_run(tmp_path_factory):
    from test_recipes import SMALL_MODEL, fixture_overrides

    folder = tmp_path_factory.mktemp("coco") / "run"
    run_recipe(str(ROOT / "recipes" / "coco_hrnet_w32.yaml"),
               fixture_overrides("coco", "person_keypoints_tiny.json", "images") + SMALL_MODEL, run_dir=str(folder))
    return folder


def test_top_down_predictions_are_the_test_flows_in_image_pixels(coco_run):
    """On the COCO recipe (crop, flip test, crop.inverse in the flow) the predictor, given the
    annotated boxes, gives what the full test flow gives on the test data."""
    from kitpose.data import build_split, collate
    from kitpose.flow import FlowRunner

    predictor = Predictor.from_run(coco_run, decoder="dark", device="cpu")
    split = predictor.plan.splits["test"]
    data = build_split(split, predictor.plan.registry)
    specs = predictor.plan.components["metrics"].members
    full = FlowRunner(predictor.plan.flow_for("test"), predictor.objects,
                      lambda component, member: specs[member].build(predictor.plan.registry))
    import torch

    with torch.no_grad():
        env = full(collate([data[i] for i in range(len(data))]))["dark"]
    raw = [data.dataset[i] for i in range(len(data))]
    people = predictor([r["image"] for r in raw], [[r["bbox"]] for r in raw], batch_size=2)
    got = np.stack([p[0].keypoints for p in people])
    np.testing.assert_allclose(got, env["pred_keypoints"].numpy(), atol=1e-3)
    np.testing.assert_allclose(np.stack([p[0].scores for p in people]), env["scores"].numpy(), atol=1e-5)


def test_predict_command_with_detections(coco_run, tmp_path):
    fixture = ROOT / "tests" / "fixtures" / "coco"
    annotations = json.loads((fixture / "person_keypoints_tiny.json").read_text())
    image = annotations["images"][0]
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / f"{image['id']}.jpg").write_bytes((fixture / "images" / image["file_name"]).read_bytes())
    people = [a for a in annotations["annotations"] if a["image_id"] == image["id"]]
    detections = [{"image_id": image["id"], "bbox": a["bbox"], "score": 0.9, "category_id": 1} for a in people]
    detections += [{"image_id": image["id"], "bbox": people[0]["bbox"], "score": 0.1, "category_id": 1},  # low
                   {"image_id": image["id"], "bbox": [0, 0, 10, 10], "score": 0.9, "category_id": 3},  # not a person
                   {"image_id": 424242, "bbox": [0, 0, 10, 10], "score": 0.9, "category_id": 1}]  # no such image
    (tmp_path / "detections.json").write_text(json.dumps(detections))
    result = run_cli("predict", str(coco_run), str(folder), "--boxes", str(tmp_path / "detections.json"),
                     "--min-score", "0.5", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    found = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert len(found) == len(people) and all(r["image_id"] == image["id"] for r in found)
    assert all(len(r["keypoints"]) == 17 * 3 and 0 < r["score"] <= 0.9 for r in found)
    for result_, person in zip(found, people):  # each prediction lies around its box
        x, y, w, h = person["bbox"]
        xy = np.asarray(result_["keypoints"]).reshape(17, 3)[:, :2]
        assert (xy[:, 0] > x - w).all() and (xy[:, 0] < x + 2 * w).all()
        assert (xy[:, 1] > y - h).all() and (xy[:, 1] < y + 2 * h).all()


@pytest.mark.parametrize("args, message", [
    (["{tmp}", "{tmp}"], "not a run directory (no recipe.yaml)"),
    (["{run}", "{tmp}/nothing"], "nothing: no such image or folder"),
    (["{run}", "{tmp}", "--decoder", "drak"], "no decoder 'drak' in the run's test flow (did you mean 'dark'?)"),
    (["{run}", "{tmp}", "--checkpoint", "last", "--boxes", "{tmp}/dets.json"], "image_id must be a whole number"),
    (["{run}", "{tmp}/cut"], "truncated PNG (no IEND chunk): the file is cut off"),
    (["{run}", "{tmp}", "--format", "cocoo"], "unknown format 'cocoo' (did you mean 'coco'?)"),
    (["{run}", "{tmp}", "--format", "toy_halfway"], "format 'toy_halfway' lacks records, dump, file_name, description"),
])
def test_predict_mistakes_are_one_line(trained, tmp_path, args, message):
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((64, 64), np.uint8))
    (tmp_path / "cut").mkdir()  # OpenCV would decode it, grey where the bytes are missing
    (tmp_path / "cut" / "2.png").write_bytes((tmp_path / "1.png").read_bytes()[:-20])
    (tmp_path / "dets.json").write_text(json.dumps([{"image_id": [1], "bbox": [0, 0, 5, 5]}]))
    filled = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(trained)) for a in args]
    result = run_cli("predict", *filled)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_the_checkpoint_path_the_test_used_is_the_one_loaded(trained, tmp_path):
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    recipe = (run / "recipe.yaml").read_text()
    assert "checkpoint: best" in recipe
    (run / "recipe.yaml").write_text(recipe.replace("checkpoint: best", f"checkpoint: {trained / 'checkpoints' / 'last.pt'}"))
    (run / "checkpoints" / "best.pt").unlink()  # were it read, the predictor would fail
    loaded = Predictor.from_run(run).module.state_dict()
    last = Predictor.from_run(trained, checkpoint="last").module.state_dict()
    assert all(torch.equal(loaded[k], last[k]) for k in last)


def test_joints_without_a_position_are_not_drawn():
    from kitpose.predict import Person, draw

    person = Person(keypoints=np.array([[10.0, 10.0], [np.nan, 20.0], [30.0, 30.0]]), scores=None,
                    box=np.array([2.0, 2.0, 40.0, 40.0]))
    drawn = draw(np.zeros((48, 48, 3), np.uint8), [person], [(0, 1), (1, 2), (0, 2)])
    assert drawn[10, 10].any() and drawn[30, 30].any() and drawn[20, 20].any()  # joints and the 0-2 limb


def test_export_onnx_matches_pytorch(trained, tmp_path):
    import onnxruntime  # the test extra installs it (kitpose[export])
    out = tmp_path / "model.onnx"
    result = run_cli("export", str(trained), "--out", str(out))
    assert result.returncode == 0, result.stderr
    reported = float(re.search(r"max \|diff\| (\d\.\d+e[+-]\d+)", result.stdout)[1])
    assert reported < 1e-4
    # the graph gives the heatmaps the run's own network gives, for a batch size it was not traced with
    from kitpose.export import Network, network_nodes

    predictor = Predictor.from_run(trained)
    network = Network(predictor.objects, network_nodes(predictor)).eval()
    image = np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32)
    import torch

    with torch.no_grad():
        want = network(torch.from_numpy(image))[0].numpy()
    got = onnxruntime.InferenceSession(str(out)).run(None, {"image": image})[0]
    assert got.shape == want.shape == (3, 16, 16, 16)
    np.testing.assert_allclose(got, want, atol=1e-4)
