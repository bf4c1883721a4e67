"""The tensorboard monitor, read back from its event files as TensorBoard reads them."""
from __future__ import annotations

import json

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
