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


def test_predict_command_writes_coco_results_and_pictures(trained, tmp_path):
    test = kitpose.build("dataset", "synthetic", split="test", size=3, image_size=64)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        depth = np.clip(test[i]["image"][..., 0] * 255, 0, 255).astype(np.uint8)
        cv2.imwrite(str(images / f"{100 + i}.png"), depth)
    detections = [{"image_id": 100, "bbox": [0, 0, 64, 64], "score": 0.9, "category_id": 1},
                  {"image_id": 100, "bbox": [4, 4, 50, 50], "score": 0.8, "category_id": 1},
                  {"image_id": 101, "bbox": [0, 0, 64, 64], "score": 0.7, "category_id": 1},
                  {"image_id": 101, "bbox": [0, 0, 10, 10], "score": 0.7, "category_id": 3},  # not a person
                  {"image_id": 555, "bbox": [0, 0, 64, 64], "score": 0.7, "category_id": 1}]  # no such image
    boxes = tmp_path / "detections.json"
    boxes.write_text(json.dumps(detections))
    result = run_cli("predict", str(trained), str(images), "--boxes", str(boxes), "--out", str(tmp_path / "out"),
                     "--decoder", "standard")
    assert result.returncode == 0, result.stderr
    assert "predicted 3 people in 3 images with decoder 'standard'" in result.stdout
    found = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert [r["image_id"] for r in found] == [100, 100, 101]
    assert all(len(r["keypoints"]) == 16 * 3 and r["category_id"] == 1 for r in found)
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["100.jpg", "101.jpg", "102.jpg"]


@pytest.mark.parametrize("args, message", [
    (["{tmp}", "{tmp}"], "not a run directory (no recipe.yaml)"),
    (["{run}", "{tmp}/nothing"], "nothing: no such image or folder"),
    (["{run}", "{tmp}", "--decoder", "drak"], "no decoder 'drak' in the run's test flow (did you mean 'dark'?)"),
])
def test_predict_mistakes_are_one_line(trained, tmp_path, args, message):
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((64, 64), np.uint8))
    filled = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(trained)) for a in args]
    result = run_cli("predict", *filled)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


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
