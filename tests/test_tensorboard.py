"""The tensorboard monitor, read back from its event files as TensorBoard reads them."""
from __future__ import annotations

import json

import numpy as np

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from kitpose.engine import run_recipe


@pytest.fixture(scope="module")
def events(toy_recipe_module, tmp_path_factory):
    run = tmp_path_factory.mktemp("tb") / "run"
    results = run_recipe(str(toy_recipe_module), ["train.epochs=2", "+monitors.tb={use: tensorboard}"],
                         run_dir=str(run))
    accumulator = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    return accumulator, lines, results


@pytest.fixture(scope="module")
def toy_recipe_module():
    from conftest import TESTS

    return TESTS / "recipes" / "toy.yaml"


def scalars(accumulator, tag):
    return {e.step: e.value for e in accumulator.Scalars(tag)}


def test_training_scalars_are_the_logged_steps(events):
    accumulator, lines, _ = events
    steps = [l for l in lines if l["kind"] == "step"]
    loss = scalars(accumulator, "train/loss")
    assert sorted(loss) == [l["step"] for l in steps]
    for line in steps:
        assert loss[line["step"]] == pytest.approx(line["loss"], rel=1e-6)
    assert set(scalars(accumulator, "train/lr")) == set(loss)
    assert "train/images_per_s" in accumulator.Tags()["scalars"]


def test_every_validation_metric_per_decoder_and_the_test_results(events):
    accumulator, lines, results = events
    for line in (l for l in lines if l["kind"] == "val"):
        for branch, values in line["metrics"].items():
            for name, value in values.items():
                assert scalars(accumulator, f"val/{name}/{branch}")[line["epoch"]] == pytest.approx(value, rel=1e-6)
    for branch, values in results.items():
        for name, value in values.items():
            assert list(scalars(accumulator, f"test/{name}/{branch}").values()) == [pytest.approx(value, rel=1e-6)]


def test_pictures_table_and_hparams(events):
    accumulator, _, results = events
    tags = accumulator.Tags()
    assert "predictions" in tags["images"] and len(accumulator.Images("predictions")) == 2  # one per validation
    picture = accumulator.Images("predictions")[0]
    assert picture.width > 16 and picture.height > 16
    text = accumulator.Tensors("results/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| decoder |" in text and "peak" in text
    content = accumulator.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {f"test/{name}/{branch}" for branch, values
                                                             in results.items() for name in values}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["train.optimizer.lr"].number_value == pytest.approx(0.01)
    assert start.hparams["train.epochs"].number_value == 2 and start.hparams["seed"].number_value == 7
    config = accumulator.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0]
    layout = layout_pb2.Layout.FromString(config)
    charts = {c.title: list(c.multiline.tag) for category in layout.category for c in category.chart}
    assert charts["EPE"] == ["val/EPE/peak", "val/EPE/shifted"]  # every decoder on one chart


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _screenshot(url: str, path, tmp_path) -> "np.ndarray":
    import shutil
    import subprocess

    import cv2

    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    if browser is None:
        pytest.fail("the browser test needs Chromium: apt-get install chromium")
    profile = tmp_path / f"profile-{path.stem}"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
                    "--window-size=1400,1000", "--virtual-time-budget=15000", f"--screenshot={path}", url],
                   check=True, capture_output=True, timeout=180)
    page = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert page is not None
    return page


@pytest.mark.slow
def test_tensorboard_shows_the_run_in_chromium(events, tmp_path):
    """A real TensorBoard server (it serves its page offline) and a real browser: the header
    renders, and the heatmap pictures this monitor wrote appear on the page."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    accumulator, _, _ = events
    logdir = accumulator.path
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port),
                               "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ})
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        page = _screenshot(f"http://127.0.0.1:{port}/?tagFilter=heatmaps#timeseries", tmp_path / "images.png",
                           tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=30)
    b, g, r = (page[..., c].astype(int) for c in range(3))
    header = page[:60]
    orange = (header[..., 2] > 220) & (header[..., 1] > 100) & (header[..., 1] < 150) & (header[..., 0] < 40)
    assert orange.mean() > 0.5  # TensorBoard's own page rendered
    deep_blue = (b > 120) & (g < 40) & (r < 40)  # the colour map's cold end: the heatmaps drawn
    assert deep_blue.sum() > 3000


def test_show_is_checked_as_the_other_picture_monitors_check_it():
    import kitpose
    from kitpose.errors import KitposeError

    monitor = kitpose.build("monitor", "tensorboard", show={"heatmaps": "pred_heatmaps"})
    assert monitor.show["heatmaps"] == "pred_heatmaps" and monitor.show["target"] == "target"
    with pytest.raises(KitposeError, match="tensorboard: show has no picture 'heatmap'"):
        kitpose.build("monitor", "tensorboard", show={"heatmap": "x"})
