"""The percentile_error metric: kitpose's metric contract, then its values."""
import math

import pytest
import torch

from kitpose.errors import ComponentError
from kitpose.testing import check_metric
from kitpose_example.metric import PercentileError


def test_it_keeps_the_metric_contract():
    check_metric("percentile_error")
    check_metric("percentile_error", percentiles=[25, 75, 100], keypoint_dims=3)


def test_percentiles_of_the_visible_distances():
    metric = PercentileError(percentiles=[50, 90])
    target = torch.zeros(2, 6, 2)
    pred = torch.zeros(2, 6, 2)
    pred[..., 0] = torch.arange(1.0, 13.0).view(2, 6)  # distances 1 .. 12
    visible = torch.ones(2, 6)
    visible[1, 4:] = 0  # 11 and 12 are not labelled
    metric.update(pred=pred, target=target, visible=visible)
    assert metric.compute() == pytest.approx({"EPE@p50": 5.5, "EPE@p90": 9.1})
    assert metric.per_joint()["EPE@p50"][0] == pytest.approx(4.0)  # joint 0: distances 1 and 7


def test_nothing_visible_is_nan():
    metric = PercentileError()
    assert all(math.isnan(v) for v in metric.compute().values())
    metric.update(pred=torch.ones(1, 2, 2), target=torch.zeros(1, 2, 2), visible=torch.zeros(1, 2))
    assert all(math.isnan(v) for v in metric.compute().values())


@pytest.mark.parametrize("percentiles", [[], [0], [101], ["median"]])
def test_bad_percentiles_say_what_to_write(percentiles):
    with pytest.raises(ComponentError, match="percentiles must be numbers in"):
        PercentileError(percentiles=percentiles)
