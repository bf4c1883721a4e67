"""The figures monitor: PNGs of predictions and training curves in the run directory."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

import kitpose
from kitpose.errors import ParameterError
from kitpose.monitor import RunInfo, Snapshot

SKELETON = ((0, 1), (1, 2), (2, 3), (1, 4), (4, 5))
DECODERS = ("decoders/argmax", "decoders/dark", "decoders/com")


def make_snapshot(seed: int, n: int = 4, size: int = 48, joints: int = 6) -> Snapshot:
    rng = np.random.default_rng(seed)
    keypoints = rng.uniform(6, size - 6, (n, joints, 2)).astype(np.float32)
    h = size // 4
    ys, xs = np.mgrid[0:h, 0:h].astype(np.float32)

    def heatmaps(points: np.ndarray) -> np.ndarray:
        centre = (points + 0.5) / 4 - 0.5
        d2 = (xs - centre[..., 0, None, None]) ** 2 + (ys - centre[..., 1, None, None]) ** 2
        return np.exp(-d2 / 2.0).astype(np.float32)

    # normalised input (mean 0, std 1), as a recipe's transforms may leave it
    image = rng.normal(0, 1, (n, 3, size, size)).astype(np.float32)
    batch = {"image": image, "keypoints": keypoints, "visible": np.ones((n, joints), np.float32),
             "heatmaps": heatmaps(keypoints + 1), "target": heatmaps(keypoints)}
    return Snapshot({b: {**batch, "pred_keypoints": keypoints + rng.normal(0, 2, keypoints.shape).astype(np.float32)}
                     for b in DECODERS})


def drive(monitor, run_dir: Path, epochs: int = 3, steps_per_epoch: int = 20) -> None:
    monitor.on_start(RunInfo(name="toy/20261121-080000", dir=run_dir, recipe={}, epochs=epochs,
                             steps_per_epoch=steps_per_epoch, skeleton=SKELETON))
    for step in range(1, epochs * steps_per_epoch + 1):
        monitor.on_step(step, (step - 1) // steps_per_epoch,
                        {"loss": 1.0 / step, "loss_stage2": 0.5 / step, "lr": 0.01 * 0.97 ** step,
                         "images_per_s": 120.0 + (step % 7)})
        if step % steps_per_epoch == 0:
            epoch = step // steps_per_epoch
            monitor.on_epoch(epoch, {b: {"pckh@0.5": 0.4 + 0.1 * epoch + 0.02 * i, "rmse": 5.0 - epoch}
                                     for i, b in enumerate(DECODERS)}, make_snapshot(epoch))
    monitor.on_end({b: {"pckh@0.5": 0.8} for b in DECODERS}, "| decoder | pckh@0.5 |\n|---|---|")
    monitor.close()


def colour_masks(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b, g, r = (image[..., c].astype(int) for c in range(3))
    red = (r > 180) & (g < 90) & (b < 90)
    cyan = (b > 180) & (g > 180) & (r < 90)
    return red, cyan


def test_pictures_are_written_and_show_something(tmp_path: Path) -> None:
    run_dir = tmp_path / "toy" / "20261121-080000"
    drive(kitpose.build("monitor", "figures", samples=3), run_dir, epochs=2)

    predictions = cv2.imread(str(run_dir / "predictions.png"), cv2.IMREAD_COLOR)
    heatmaps = cv2.imread(str(run_dir / "heatmaps.png"), cv2.IMREAD_COLOR)
    curves = cv2.imread(str(run_dir / "curves.png"), cv2.IMREAD_COLOR)
    assert predictions is not None and heatmaps is not None and curves is not None
    assert not list(run_dir.glob("*.partial.png"))

    # 3 samples x 3 decoders, each enlarged from 48 px
    assert predictions.shape[0] > 3 * 150 and predictions.shape[1] > 3 * 150
    red, cyan = colour_masks(predictions)
    assert red.sum() > 500 and cyan.sum() > 500
    assert predictions.std() > 30

    # heatmaps: two rows (ground truth, predicted) coloured by the jet map
    hsv = cv2.cvtColor(heatmaps, cv2.COLOR_BGR2HSV)
    assert (hsv[..., 1] > 150).mean() > 0.3  # mostly saturated colours, not a grey image
    assert heatmaps.shape[0] > 2 * 150

    # curves: five panels (loss, lr, throughput, 2 metrics) in colour on white
    assert curves.shape[0] >= 600 and curves.shape[1] >= 900
    assert (curves > 250).all(axis=2).mean() > 0.5  # a white figure...
    assert len(np.unique(curves.reshape(-1, 3), axis=0)) > 200  # ...with lines, text and colours


def test_skeleton_is_drawn_where_the_joints_are() -> None:
    from kitpose_plugins.monitors.figures.draw import CYAN, RED, draw_skeleton

    canvas = np.zeros((60, 90, 3), np.uint8)
    truth = np.array([[5.0, 4.0], [20.0, 12.0], [25.0, 15.0]])
    draw_skeleton(canvas, truth, np.array([1.0, 1.0, 0.0]), ((0, 1), (1, 2)), CYAN, scale=3)
    draw_skeleton(canvas, truth + [2.0, 5.0], None, ((0, 1),), RED, scale=3)
    # pixel (row i, column j) has its centre at (x=j, y=i): joint x=5, y=4 -> enlarged (16, 13)
    assert tuple(canvas[13, 16]) == CYAN and tuple(canvas[37, 61]) == CYAN
    assert tuple(canvas[28, 22]) == RED
    hidden = (25 * 3 + 1, 15 * 3 + 1)  # invisible ground-truth joint: neither it nor its limb is drawn
    assert tuple(canvas[hidden[1], hidden[0]]) == (0, 0, 0)

    # (u, v, depth) predictions of the 3D recipes draw at (u, v), the same as [K, 2]
    flat, deep = np.zeros_like(canvas), np.zeros_like(canvas)
    draw_skeleton(flat, truth, None, ((0, 1), (1, 2)), RED, scale=3)
    draw_skeleton(deep, np.concatenate([truth, [[300.0], [-20.0], [7.0]]], 1), None, ((0, 1), (1, 2)), RED, scale=3)
    np.testing.assert_array_equal(deep, flat)


def test_bad_names_are_refused() -> None:
    with pytest.raises(ParameterError, match="leaves the run directory"):
        kitpose.build("monitor", "figures", curves="../elsewhere.png")
    with pytest.raises(ParameterError, match="samples must be at least 1"):
        kitpose.build("monitor", "figures", samples=0)


def test_without_a_run_directory_nothing_is_written_and_nothing_raises(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monitor = kitpose.build("monitor", "figures")
    monitor.on_step(1, 0, {"loss": 1.0})
    monitor.on_epoch(1, {"dark": {"pck": 0.5}}, make_snapshot(0))
    monitor.on_epoch(2, {"dark": {"pck": "broken"}}, None)
    monitor.close()
    assert list(tmp_path.iterdir()) == []
    messages = [r.getMessage() for r in caplog.records if r.name == "kitpose.figures" and r.levelno >= logging.WARNING]
    assert any("run directory is unknown" in m for m in messages)
