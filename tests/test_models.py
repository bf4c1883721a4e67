"""Built-in models and heads: names, call contract, shapes, stage lists, gradients, errors."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import kitpose
from kitpose.errors import ComponentError

torch.set_num_threads(2)

BACKBONES = {"hrnet", "resnet", "resnet_multistage", "hourglass"}
HEADS = {"heatmap", "volumetric", "regression"}

# (name, params, input [C, H, W]) -> plain feature backbones at small, CPU-friendly sizes
FEATURE_BACKBONES = [
    ("hrnet", {"variant": "small"}, (3, 64, 48), (16, 16, 12)),
    ("hrnet", {"width": 8, "stages": 3, "blocks": 1, "modules": [1, 1, 2], "stem_channels": 8,
               "in_channels": 1},
     (1, 64, 64), (8, 16, 16)),
    ("hrnet", {"width": 8, "stages": 1, "blocks": 1, "stem_channels": 8}, (3, 32, 32), (32, 8, 8)),
    ("resnet", {"depth": 18, "base_channels": 8}, (3, 64, 96), (64, 2, 3)),
    ("resnet", {"depth": 50, "base_channels": 8, "in_channels": 1}, (1, 64, 64), (256, 2, 2)),
]


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _image(c: int, h: int, w: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, c, h, w, generator=_seeded())


def test_every_model_name_resolves():
    assert BACKBONES <= set(kitpose.available("backbone"))
    assert HEADS <= set(kitpose.available("head"))
    for kind, names in (("backbone", BACKBONES), ("head", HEADS)):
        for entry in kitpose.list_components(kind):
            if entry.name in names:
                assert entry.plugin == "models"
                assert entry.summary and not entry.summary.startswith("(broken")


def test_registering_plugins_do_not_import_torch():
    code = ("import sys, kitpose_plugins.models; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name, params, shape, expected", FEATURE_BACKBONES)
def test_feature_backbones_shape_and_channels(name, params, shape, expected):
    model = kitpose.build("backbone", name, **params)
    assert type(model).outputs == ("features",)
    out = model(image=_image(*shape))
    assert set(out) == {"features"}
    assert tuple(out["features"].shape) == (2, *expected)
    assert model.out_channels == expected[0]


def test_hrnet_features_are_at_stride_four_for_any_input_size():
    model = kitpose.build("backbone", "hrnet", variant="small").eval()
    with torch.no_grad():
        assert model(image=_image(3, 128, 128, 1))["features"].shape[-2:] == (32, 32)
        # odd sizes (the reproduction's 320x160 depth maps have odd low-resolution branches)
        assert model(image=_image(3, 320, 160, 1))["features"].shape[-2:] == (80, 40)
        assert model(image=_image(3, 100, 76, 1))["features"].shape[-2:] == (25, 19)


@pytest.mark.parametrize("stacks", [1, 3])
def test_hourglass_returns_every_stack(stacks):
    model = kitpose.build("backbone", "hourglass", joints=5, stacks=stacks, width=16, depth=2,
                          in_channels=1)
    assert type(model).outputs == ("heatmaps", "stages")
    out = model(image=_image(1, 64, 48))
    assert len(out["stages"]) == stacks
    assert all(tuple(s.shape) == (2, 5, 16, 12) for s in out["stages"])
    assert out["heatmaps"] is out["stages"][-1]


def test_hourglass_handles_sizes_that_do_not_halve_evenly():
    model = kitpose.build("backbone", "hourglass", joints=3, stacks=1, width=16, depth=4).eval()
    with torch.no_grad():
        out = model(image=_image(3, 320, 160, 1))
    assert out["heatmaps"].shape == (1, 3, 80, 40)


def test_hourglass_stacks_differ():
    model = kitpose.build("backbone", "hourglass", joints=4, stacks=2, width=16, depth=2)
    first, second = model(image=_image(3, 32, 32))["stages"]
    assert not torch.allclose(first, second)


def test_resnet_multistage_returns_every_stage():
    model = kitpose.build("backbone", "resnet_multistage", joints=6, depth=18, stages=3,
                          deconv_channels=16, base_channels=8)
    assert type(model).outputs == ("heatmaps", "stages")
    out = model(image=_image(3, 64, 96))
    assert len(out["stages"]) == 3
    assert all(tuple(s.shape) == (2, 6, 16, 24) for s in out["stages"])
    assert out["heatmaps"] is out["stages"][-1]


def test_resnet_multistage_later_stages_read_the_previous_heatmaps():
    model = kitpose.build("backbone", "resnet_multistage", joints=2, depth=18, stages=2,
                          deconv_channels=8, base_channels=8).eval()
    image = _image(3, 32, 32, 1)
    with torch.no_grad():
        model.stages[0].final.bias.fill_(1.0)  # stage 1 predicts clearly non-zero maps
        before = model(image=image)["stages"]
        model.reread_maps[0].weight.add_(1.0)  # changes only how stage 2 reads stage 1's maps
        after = model(image=image)["stages"]
    assert torch.equal(before[0], after[0])
    change = (after[1] - before[1]).abs().max()
    assert change > 0.01 * before[1].abs().max()


@pytest.mark.parametrize("layers", [0, 2])
def test_heatmap_head_upsamples_by_its_deconvolutions(layers):
    head = kitpose.build("head", "heatmap", in_channels=12, joints=7, deconv_layers=layers,
                         deconv_channels=16)
    assert type(head).outputs == ("heatmaps",)
    out = head(features=torch.randn(2, 12, 5, 4))
    assert tuple(out["heatmaps"].shape) == (2, 7, 5 * 2 ** layers, 4 * 2 ** layers)


def test_volumetric_head_groups_channels_by_joint():
    head = kitpose.build("head", "volumetric", in_channels=8, joints=3, depth=4)
    features = torch.randn(2, 8, 6, 5)
    volume = head(features=features)["heatmaps"]
    assert tuple(volume.shape) == (2, 3, 4, 6, 5)
    flat = head.final(features)  # channel k * D + d is joint k, depth bin d
    assert torch.equal(volume[:, 1, 2], flat[:, 1 * 4 + 2])


@pytest.mark.parametrize("dims", [2, 3])
def test_regression_head_predicts_heatmap_pixels(dims):
    head = kitpose.build("head", "regression", in_channels=8, joints=4, dims=dims,
                         feature_stride=32, stride=4, depth=16)
    assert type(head).outputs == ("keypoints",)
    with torch.no_grad():
        head.fc.weight.zero_()
        head.fc.bias.zero_()
        # 2 x 3 features at stride 32 = a 16 x 24 map at stride 4: the untrained head says "centre"
        centre = head(features=torch.randn(5, 8, 2, 3))["keypoints"]
        assert tuple(centre.shape) == (5, 4, dims)
        expected = [11.5, 7.5, 7.5][:dims]
        assert torch.allclose(centre, torch.tensor(expected).expand_as(centre))
        head.fc.bias.view(4, dims)[:, 0] = 0.5  # u_x = +0.5: the right edge of the map
        right = head(features=torch.randn(1, 8, 2, 3))["keypoints"]
    assert torch.allclose(right[..., 0], torch.full((1, 4), 23.5))


MODELS_FOR_GRADIENTS = [
    ("hrnet", {"width": 8, "stages": 4, "blocks": 1, "modules": 1, "stem_channels": 8}, "heatmap",
     {"in_channels": 8, "joints": 3}),
    ("resnet", {"depth": 18, "base_channels": 8}, "heatmap",
     {"in_channels": 64, "joints": 3, "deconv_layers": 3, "deconv_channels": 16}),
    ("resnet", {"depth": 18, "base_channels": 8}, "volumetric",
     {"in_channels": 64, "joints": 3, "depth": 4, "deconv_layers": 3, "deconv_channels": 16}),
    ("hrnet", {"width": 8, "stages": 2, "blocks": 1, "stem_channels": 8}, "regression",
     {"in_channels": 8, "joints": 3, "dims": 3}),
    ("hourglass", {"joints": 3, "stacks": 2, "width": 16, "depth": 2}, None, None),
    ("resnet_multistage", {"joints": 3, "depth": 18, "stages": 2, "deconv_channels": 8,
                           "base_channels": 8}, None, None),
]


@pytest.mark.parametrize("name, params, head_name, head_params", MODELS_FOR_GRADIENTS)
def test_gradients_reach_every_parameter_and_the_image(name, params, head_name, head_params):
    backbone = kitpose.build("backbone", name, **params)
    parts = [backbone]
    image = _image(backbone.in_channels, 64, 64).requires_grad_()
    out = backbone(image=image)
    if head_name is not None:
        head = kitpose.build("head", head_name, **head_params)
        parts.append(head)
        out = head(features=out["features"])
    tensors = out.get("stages") or list(out.values())
    weights = [torch.randn(t.shape, generator=_seeded()) for t in tensors]
    loss = sum((t * w).sum() for t, w in zip(tensors, weights))
    loss.backward()
    for part in parts:
        for pname, p in part.named_parameters():
            assert p.grad is not None, f"{pname} gets no gradient"
            assert p.grad.abs().sum() > 0, f"{pname} gets a zero gradient"
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_every_stage_is_supervised_separately():
    model = kitpose.build("backbone", "hourglass", joints=2, stacks=2, width=16, depth=2)
    first = model(image=_image(3, 32, 32))["stages"][0]
    first.sum().backward()
    # the first stack's loss reaches its own head but not the second stack's
    assert model.heads[0].weight.grad.abs().sum() > 0
    assert model.heads[1].weight.grad is None


def test_backbone_and_head_wire_as_flow_nodes(registry):
    from omegaconf import OmegaConf

    from kitpose.components import parse_components
    from kitpose.flow import parse_flow
    from kitpose.recipe import Recipe

    recipe = Recipe(OmegaConf.create({
        "components": {
            "backbone": {"use": "hrnet", "variant": "small"},
            "head": {"use": "heatmap", "in_channels": 16, "joints": 16},
            "stacked": {"use": "hourglass", "joints": 16, "stacks": 2},
        },
        "flows": {"test": [
            {"call": "backbone", "in": {"image": "image"}},
            {"call": "head", "in": {"features": "features"}, "out": {"heatmaps": "pred"}},
            {"call": "stacked", "in": {"image": "image"}, "out": {"stages": "all", "heatmaps": "last"}},
        ]},
    }))
    components = parse_components(recipe, registry)
    flow = parse_flow(recipe, "test", components, registry, sources={"image"})
    produced = {n.component: n.outputs for n in flow.nodes}
    assert produced["backbone"] == {"features": "features"}
    assert produced["head"] == {"heatmaps": "pred"}
    assert produced["stacked"] == {"stages": "all", "heatmaps": "last"}


@pytest.mark.parametrize("kind, name, params, message", [
    ("backbone", "resnet", {"depth": 42}, "depth=42 is not one of 18, 34, 50, 101, 152"),
    ("backbone", "hrnet", {"stages": 5}, "stages=5 is not one of 1, 2, 3, 4"),
    ("backbone", "hrnet", {"variant": "tiny"}, "variant='tiny' is not one of 'full', 'small'"),
    ("backbone", "hrnet", {"stages": 2, "blocks": [1, 2, 3]}, "'blocks' needs 2 values"),
    ("backbone", "hrnet", {"width": 0}, "width must be between 1 and 256, not 0"),
    ("backbone", "hourglass", {"joints": 0}, "joints must be between 1 and 1024, not 0"),
    ("head", "heatmap", {"in_channels": 8, "joints": 4, "deconv_layers": -1},
     "'deconv_layers' must be an integer >= 0"),
    ("head", "regression", {"in_channels": 8, "joints": 4, "dims": 4}, "dims=4 is not one of 2, 3"),
])
def test_bad_parameters_raise_one_clear_line(kind, name, params, message):
    with pytest.raises(ComponentError) as info:
        kitpose.build(kind, name, **params)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_required_parameter_is_caught_before_building():
    with pytest.raises(ComponentError, match="needs parameter 'joints'"):
        kitpose.build("head", "heatmap", in_channels=32)


def test_wrong_image_channels_say_which_parameter_to_set():
    model = kitpose.build("backbone", "resnet", depth=18, base_channels=8)
    with pytest.raises(ComponentError, match="set in_channels: 1"):
        model(image=torch.randn(1, 1, 32, 32))
    head = kitpose.build("head", "heatmap", in_channels=32, joints=4)
    with pytest.raises(ComponentError, match="expects 'features' with 32 channels"):
        head(features=torch.randn(1, 16, 8, 8))


def test_too_small_or_misaligned_inputs_are_refused_clearly():
    hourglass = kitpose.build("backbone", "hourglass", joints=2, stacks=1, width=16, depth=4)
    with pytest.raises(ComponentError, match="at least 64x64"):
        hourglass(image=torch.randn(1, 3, 32, 64))
    multistage = kitpose.build("backbone", "resnet_multistage", joints=2, depth=18, base_channels=8,
                               deconv_channels=8)
    with pytest.raises(ComponentError, match="multiples of 32"):
        multistage(image=torch.randn(1, 3, 48, 64))
