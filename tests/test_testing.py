"""kitpose.testing: the built-in components pass the contract checks; broken ones are caught
with a message that says what to fix; the flow checker rejects contract breaks too."""
import pytest
import torch

import kitpose
from kitpose.errors import FlowError, ParameterError
from kitpose.metric import Metric
from kitpose.monitor import Monitor
from kitpose.plan import check_recipe
from kitpose.plugins import get_plugin_manager
from kitpose.testing import (CHECKS, ContractViolation, check_component, check_decoder, check_encoder,
                             check_loss, check_metric, check_monitor)

#: Parameters a built-in needs for the checks, and why.
BUILTIN_PARAMS = {
    # beta 1 is meant for learned logits: on the checks' [0, 1] Gaussian maps the softmax is
    # nearly flat and the estimate lands about 3 cells from the peak. Its docstring says it
    # is differentiable, which the checks verify.
    ("decoder", "soft_argmax"): {"beta": 20.0, "differentiable": True},
    ("loss", "multi_stage"): {"loss": "heatmap_mse"},  # it wraps a loss, which it needs named
    # three maps per joint (class disk, x and y offsets): only their encoder draws them
    ("loss", "combined_mse"): {"encoder": "udp_combined"},
    ("decoder", "udp_offsets"): {"encoder": "udp_combined"},
    # per-axis label vectors: checked on the encoder's labels, taken by their names
    ("decoder", "simcc_peak"): {"encoder": "simcc"},
    ("loss", "simcc_kl"): {"encoder": "simcc"},
    ("monitor", "visdom"): {"port": 1, "timeout": 0.5},  # nothing listens on port 1
}


def builtins(kind):
    manager = get_plugin_manager()
    registry = manager.registry
    return [name for name in kitpose.available(kind) if manager.infos[registry.get(kind, name).plugin].builtin]


BUILTINS = [(kind, name) for kind in CHECKS for name in builtins(kind)]


def test_every_checked_kind_has_built_ins():
    assert {kind for kind, _ in BUILTINS} == set(CHECKS)


@pytest.mark.parametrize("kind, name", BUILTINS, ids=[f"{k}-{n}" for k, n in BUILTINS])
def test_builtin_components_keep_the_contract(kind, name):
    ran = check_component(kind, name, **BUILTIN_PARAMS.get((kind, name), {}))
    assert ran and all(isinstance(item, str) for item in ran)


# -- a correct component of each kind, and broken variants ---------------------------------------
class Peak:
    """Arg-max decoder."""

    outputs = ("keypoints", "scores")

    def __call__(self, heatmaps):
        scores, index = heatmaps.flatten(2).max(-1)
        w = heatmaps.shape[-1]
        xy = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], -1)
        return {"keypoints": xy.to(heatmaps.dtype), "scores": scores}


class NoOutputs(Peak):
    outputs = None


class MisnamedArgument(Peak):
    def __call__(self, heatmap):
        return super().__call__(heatmap)


class NeedsMore(Peak):
    def __call__(self, heatmaps, sigma):
        return super().__call__(heatmaps)


class YX(Peak):
    def __call__(self, heatmaps):
        out = super().__call__(heatmaps)
        return {**out, "keypoints": out["keypoints"].flip(-1)}


class ImagePixels(Peak):
    def __call__(self, heatmaps):
        out = super().__call__(heatmaps)
        return {**out, "keypoints": out["keypoints"] * 4}


class BatchNormalised(Peak):
    def __call__(self, heatmaps):
        out = super().__call__(heatmaps)
        return {**out, "scores": out["scores"] / out["scores"].max()}


class AlwaysDouble(Peak):
    def __call__(self, heatmaps):
        out = super().__call__(heatmaps)
        return {**out, "keypoints": out["keypoints"].double()}


class NanOnFlatMaps(Peak):
    def __call__(self, heatmaps):
        out = super().__call__(heatmaps)
        spread = heatmaps.flatten(2).amax(-1) - heatmaps.flatten(2).amin(-1)
        return {**out, "scores": out["scores"] / spread}


class InPlace(Peak):
    def __call__(self, heatmaps):
        return super().__call__(heatmaps.clamp_(min=0))


class NoScores(Peak):
    def __call__(self, heatmaps):
        return {"keypoints": super().__call__(heatmaps)["keypoints"]}


class Undeclared(Peak):
    def __call__(self, heatmaps):
        return {**super().__call__(heatmaps), "sigma": torch.ones(heatmaps.shape[:2])}


class FalselyDifferentiable(Peak):
    differentiable = True


@pytest.mark.parametrize("decoder, message", [
    (NoOutputs, "declares no outputs; add a class attribute outputs = ('keypoints', 'scores', ...)"),
    (MisnamedArgument, "its call takes no argument 'heatmaps' (it takes: heatmap); name the argument 'heatmaps'"),
    (NeedsMore, "its call requires 'sigma', which the contract does not pass; give 'sigma' a default value"),
    (YX, "cells from the peaks of clean 2D Gaussian maps (tolerance 1.0); return (x, y[, z]) in heatmap cells"),
    (ImagePixels, "cells from the peaks of clean 2D Gaussian maps"),
    (BatchNormalised, "alone differs from decoding it in a batch; treat every sample (and map) on its own"),
    (AlwaysDouble, "'keypoints' for 2D float32 has dtype torch.float64, expected torch.float32"),
    (NanOnFlatMaps, "'scores' for 2D all-zero holds NaN or inf; guard divisions"),
    (InPlace, "it changed its input 'heatmaps' in place"),
    (NoScores, "returned no 'scores' though outputs declares it"),
    (Undeclared, "returned 'sigma', which outputs does not declare; add 'sigma' to outputs"),
    (FalselyDifferentiable, "it says differentiable = True but its result carries no gradient"),
])
def test_broken_decoders_are_caught(decoder, message):
    with pytest.raises(ContractViolation) as info:
        check_decoder(decoder)
    assert message in str(info.value)
    assert str(info.value).startswith(f"decoder {decoder.__qualname__}: ")
    assert "\n" not in str(info.value)


def test_a_correct_decoder_passes_and_says_what_ran():
    ran = check_decoder(Peak)
    assert {"2D location", "2D batch independence", "2D float64", "2D degenerate maps"} <= set(ran)
    assert "2D gradient" not in ran  # it does not claim to be differentiable
    assert ["outputs", "arguments"] == check_decoder(Peak, spatial=[])


class Gaussian:
    """Gaussian targets at stride 2 on a 12 x 10 map."""

    outputs = ("heatmaps", "weights")
    flow_methods = ("to_heatmap", "to_image")
    stride = 2.0

    def to_heatmap(self, xy):
        return xy / self.stride

    def to_image(self, xy):
        return xy * self.stride

    def __call__(self, keypoints, visible):
        c = self.to_heatmap(keypoints)
        gx = torch.exp(-(torch.arange(12, dtype=c.dtype) - c[..., :1]) ** 2 / 2)
        gy = torch.exp(-(torch.arange(10, dtype=c.dtype) - c[..., 1:2]) ** 2 / 2)
        inside = ((c >= 0) & (c <= torch.tensor([11.0, 9.0], dtype=c.dtype))).all(-1)
        weights = ((visible > 0) & inside).to(c.dtype)
        return {"heatmaps": gy[..., :, None] * gx[..., None, :], "weights": weights}


class NoFlowMethods(Gaussian):
    flow_methods = ()


class IgnoresVisibility(Gaussian):
    def __call__(self, keypoints, visible):
        return super().__call__(keypoints, torch.ones_like(visible))


class Transposed(Gaussian):
    def __call__(self, keypoints, visible):
        return super().__call__(keypoints.flip(-1), visible)


class BatchScaled(Gaussian):
    def __call__(self, keypoints, visible):
        out = super().__call__(keypoints, visible)
        return {**out, "heatmaps": out["heatmaps"] / out["heatmaps"].sum()}


class NotInverse(Gaussian):
    def to_image(self, xy):
        return xy * self.stride + 0.5


class WeightsOffTheMap(Gaussian):
    def __call__(self, keypoints, visible):
        out = super().__call__(keypoints, visible)
        return {**out, "weights": (visible > 0).to(keypoints.dtype)}


@pytest.mark.parametrize("encoder, message", [
    (NoFlowMethods, "it has no flow method 'to_heatmap'; define to_heatmap(xy) and to_image(xy)"),
    (IgnoresVisibility, "an invisible keypoint has a non-zero weight; set weights to 0 where visible is 0"),
    (Transposed, "targets are centred"),
    (BatchScaled, "encoding sample 0 alone differs from encoding it in a batch"),
    (NotInverse, "to_heatmap(to_image(xy)) is not xy"),
    (WeightsOffTheMap, "keypoints 1000 cells off the map get non-zero weights"),
])
def test_broken_encoders_are_caught(encoder, message):
    assert check_encoder(Gaussian)
    with pytest.raises(ContractViolation, match=r"^encoder ") as info:
        check_encoder(encoder)
    assert message in str(info.value)


class AxisLabels(Gaussian):
    """Per-axis targets, as coordinate-classification codecs make them: one vector per axis."""

    outputs = ("labels_x", "labels_y", "weights")

    def __call__(self, keypoints, visible):
        out = super().__call__(keypoints, visible)
        maps = out["heatmaps"]
        return {"labels_x": maps.amax(-2), "labels_y": maps.amax(-1), "weights": out["weights"]}


class AxesSwapped(AxisLabels):
    def __call__(self, keypoints, visible):
        return super().__call__(keypoints.flip(-1), visible)


class AxisArgmax:
    """Arg-max of each axis' vector."""

    outputs = ("keypoints", "scores")

    def __call__(self, labels_x, labels_y):
        x, y = labels_x.argmax(-1), labels_y.argmax(-1)
        scores = torch.minimum(labels_x.amax(-1), labels_y.amax(-1))
        return {"keypoints": torch.stack([x, y], -1).to(labels_x.dtype), "scores": scores}


class Stacked(Gaussian):
    """Two maps per joint: the Gaussian and its square."""

    outputs = ("heatmaps", "weights")
    channels = 2

    def __call__(self, keypoints, visible):
        out = super().__call__(keypoints, visible)
        maps = out["heatmaps"]
        return {"heatmaps": torch.stack([maps, maps ** 2], 2).flatten(1, 2), "weights": out["weights"]}


class StackedPeak(Peak):
    channels = 2

    def __call__(self, heatmaps):
        return super().__call__(heatmaps[:, ::2])


class StackedCorner(StackedPeak):
    def __call__(self, heatmaps):
        out = super().__call__(heatmaps)
        return {**out, "keypoints": torch.zeros_like(out["keypoints"])}


def test_per_axis_targets_are_checked_per_axis():
    ran = check_encoder(AxisLabels)
    assert "centring" in ran
    with pytest.raises(ContractViolation, match="targets are centred"):
        check_encoder(AxesSwapped)
    assert "2D location" in check_decoder(AxisArgmax, encoder=AxisLabels)
    with pytest.raises(ContractViolation, match="takes no argument 'labels_x'"):
        check_decoder(Peak, encoder=AxisLabels)


def test_several_maps_per_joint_need_their_encoder():
    assert "centring" in check_encoder(Stacked)
    with pytest.raises(ContractViolation, match=r"reads 2 maps per joint.*encoder="):
        check_decoder(StackedPeak)
    assert "2D degenerate maps" in check_decoder(StackedPeak, encoder=Stacked)
    assert "2D degenerate maps" in check_decoder(StackedPeak, encoder={"use": Stacked})
    with pytest.raises(ContractViolation, match=r"keypoints are \d+\.\d+ cells from the peaks of clean 2D targets"):
        check_decoder(StackedCorner, encoder=Stacked)


class Mse:
    """Weighted MSE."""

    outputs = ("loss",)

    def __call__(self, pred, target, weights=None):
        per_joint = (pred - target).pow(2).flatten(2).mean(-1)
        return {"loss": (per_joint * weights).mean()}


class IgnoresWeights(Mse):
    def __call__(self, pred, target, weights=None):
        return super().__call__(pred, target, torch.ones_like(weights))


class DividesByWeights(Mse):
    def __call__(self, pred, target, weights=None):
        per_joint = (pred - target).pow(2).flatten(2).mean(-1)
        return {"loss": (per_joint * weights).sum() / weights.sum()}


class Detached(Mse):
    def __call__(self, pred, target, weights=None):
        return {"loss": super().__call__(pred, target, weights)["loss"].detach()}


class ReturnsAFloat(Mse):
    def __call__(self, pred, target, weights=None):
        return float(super().__call__(pred, target, weights)["loss"])


class WrongArguments(Mse):
    def __call__(self, output, target, weights=None):
        return super().__call__(output, target, weights)


@pytest.mark.parametrize("loss, message", [
    (IgnoresWeights, "changing the prediction of a joint with weight 0 changes the loss"),
    (DividesByWeights, "'loss' for heatmaps, all weights 0 holds NaN or inf"),
    (Detached, "carries no gradient to pred"),
    (ReturnsAFloat, "returned float; return a dict of named tensors"),
    (WrongArguments, "its call takes no argument 'pred'"),
])
def test_broken_losses_are_caught(loss, message):
    assert "weights" in check_loss(Mse)
    with pytest.raises(ContractViolation, match=r"^loss ") as info:
        check_loss(loss)
    assert message in str(info.value)


class Distance(Metric):
    """Mean distance of visible joints."""

    def update(self, pred, target, visible=None, **extras):
        self.accumulate(distance=(pred - target).norm(dim=-1), visible=visible)

    def compute(self):
        d, v = self.gathered("distance"), self.gathered("visible")
        return {"EPE": float((d * v).sum() / v.sum()) if v.numel() and v.sum() > 0 else float("nan")}


class NotAMetric:
    def update(self, pred, target, visible=None, **extras):
        pass

    def compute(self):
        return {}


class LastBatchOnly(Distance):
    def update(self, pred, target, visible=None, **extras):
        self.reset()
        super().update(pred, target, visible)


class NeverForgets(Distance):
    def reset(self):
        pass


class CountsInvisible(Distance):
    def update(self, pred, target, visible=None, **extras):
        super().update(pred, target, torch.ones_like(visible))


class NoExtras(Distance):
    def update(self, pred, target, visible=None):
        super().update(pred, target, visible)


class NamesChange(Distance):
    def compute(self):
        return {} if self.gathered("visible").sum() == 0 else super().compute()


class NeedsDepth(Distance):
    def update(self, pred, target, visible=None, *, depth, **extras):
        super().update(pred, target, visible)


@pytest.mark.parametrize("metric, message", [
    (NotAMetric, "it is not a kitpose.metric.Metric; subclass kitpose.metric.Metric"),
    (LastBatchOnly, "results over two batches differ from one batch of the same samples"),
    (NeverForgets, "after reset() the results still count earlier batches"),
    (CountsInvisible, "moving joints with visible = 0 changes the results"),
    (NoExtras, "its update takes no **extras; add **extras to update"),
    (NamesChange, "with no visible joint compute() names [], otherwise ['EPE']"),
    (NeedsDepth, "its update requires 'depth', which check_metric cannot make up; pass inputs={'depth': TENSOR}"),
])
def test_broken_metrics_are_caught(metric, message):
    assert check_metric(Distance)
    with pytest.raises(ContractViolation, match=r"^metric ") as info:
        check_metric(metric)
    assert message in str(info.value)


def test_a_metric_gets_the_extra_tensors_it_asks_for():
    assert check_metric(NeedsDepth, inputs={"depth": torch.ones(8)})


class Quiet(Monitor):
    """Records nothing."""


class FailsWithoutSnapshot(Monitor):
    def on_epoch(self, epoch, metrics, snapshot=None):
        snapshot.tensors


class FormatsLossAsInt(Monitor):
    def on_step(self, step, epoch, scalars):
        int(scalars["loss"])


class ClosesWhatItNeverOpened(Monitor):
    handle = None

    def on_start(self, run):
        self.handle = open(run.dir / "log.txt", "w")

    def close(self):
        self.handle.close()


class HalfAMonitor:
    def on_step(self, step, epoch, scalars):
        pass


@pytest.mark.parametrize("monitor, message", [
    (FailsWithoutSnapshot, "on_epoch() raised AttributeError"),
    (FormatsLossAsInt, "on_step() raised ValueError: cannot convert float NaN to integer"),
    (ClosesWhatItNeverOpened, "close() raised AttributeError"),
    (HalfAMonitor, "it has no on_start() hook; subclass kitpose.monitor.Monitor"),
])
def test_broken_monitors_are_caught(monitor, message):
    assert check_monitor(Quiet)
    with pytest.raises(ContractViolation, match=r"^monitor ") as info:
        check_monitor(monitor)
    assert message in str(info.value)
    assert "a monitor must never stop a run" in str(info.value) or "hook" in str(info.value)


def test_a_monitor_writes_into_the_run_directory_it_is_given(tmp_path):
    check_monitor("jsonl", run_dir=tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6 + 2 + 1 + 1  # the run's steps, validations and test; a resumed run's test


# -- names and parameters --------------------------------------------------------------------------
def test_an_unknown_name_suggests_the_nearest_and_the_install():
    with pytest.raises(ContractViolation) as info:
        check_decoder("drak")
    assert "unknown decoder 'drak' (did you mean 'dark'?)" in str(info.value)
    assert "pip install -e ." in str(info.value)


def test_a_wrong_parameter_is_the_caller_s_mistake():
    with pytest.raises(ParameterError, match="has no parameter 'blur' \\(did you mean 'blur_kernel'\\?\\)"):
        check_decoder("dark", blur=3)


def test_options_and_parameters_are_kept_apart():
    class Tolerant(Peak):
        def __init__(self, tolerance=0.0):
            self.tolerance = tolerance

    assert check_decoder(Tolerant, params={"tolerance": 2.0}, tolerance=0.5)
    with pytest.raises(ValueError, match="no contract checks for kind 'dataset'"):
        check_component("dataset", "synthetic")


# -- the flow checker rejects the same breaks in a recipe ---------------------------------------------
@pytest.fixture
def broken_decoders(registry):
    class Keys(Peak):
        outputs = ("xy", "scores")

    names = {"contract_misnamed": MisnamedArgument, "contract_keys": Keys}
    for name, factory in names.items():
        registry.register("decoder", name, factory)
    yield
    for name in names:
        registry.unregister("decoder", name)


@pytest.mark.parametrize("name, path, message", [
    ("contract_misnamed", "flows.test[1].in.heatmaps",
     "decoder 'contract_misnamed' takes no argument 'heatmaps' (did you mean 'heatmap'?); its arguments: heatmap"),
    ("contract_keys", "flows.test[1].out.keypoints", "'decoders' returns no 'keypoints'; it returns: xy, scores"),
])
def test_the_flow_checker_names_the_break(broken_decoders, toy_recipe, name, path, message):
    with pytest.raises(FlowError) as info:
        check_recipe(str(toy_recipe), [f"components.decoders.peak.use={name}"])
    assert info.value.path == path
    assert message in str(info.value)
