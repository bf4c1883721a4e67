"""Metrics declare the names ``compute()`` reports, so ``kitpose check`` can check ``val.metric``."""
import pytest
import torch

import kitpose
from kitpose.metric import Metric


@pytest.mark.parametrize("name, params, extras", [
    ("pckh", {"thresholds": [0.1, 0.25]}, {"head_size": torch.full((2,), 10.0)}),
    ("pck", {}, {"bbox": torch.tensor([[0.0, 0.0, 20.0, 30.0]] * 2)}),
    ("auc", {}, {"head_size": torch.full((2,), 10.0)}),
    ("rmse", {}, {}),
    ("epe", {}, {}),
    ("mpjpe", {}, {}),
    ("pa_mpjpe", {}, {}),
    ("oks_ap", {"sigmas": [0.1, 0.1, 0.1]}, {"area": torch.full((2,), 100.0), "scores": torch.ones(2, 3)}),
])
def test_builtin_metrics_declare_what_they_compute(name, params, extras):
    metric = kitpose.build("metric", name, **params)
    declared = metric.output_names()
    assert declared is not None
    pred = torch.rand(2, 3, 2) * 10
    metric.update(pred=pred, target=pred + 1, visible=torch.ones(2, 3), **extras)
    assert tuple(metric.compute()) == tuple(declared)


def test_a_metric_that_declares_nothing_is_not_checked():
    class Plain(Metric):
        def compute(self) -> dict:
            return {"x": 1.0}

    assert Plain().output_names() is None

    class Fixed(Plain):
        names = ("x",)

    assert Fixed().output_names() == ("x",)
