"""The ``pretrained`` parameter: local checkpoints only, strict keys, one-line errors."""
from __future__ import annotations

import pytest
import torch

import kitpose
from kitpose.errors import ComponentError

SMALL_HRNET = {"width": 8, "stages": 2, "blocks": 1, "stem_channels": 8}


def _trained_like(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return module.eval()


def test_backbone_loads_its_own_weights(tmp_path):
    source = _trained_like(kitpose.build("backbone", "hrnet", **SMALL_HRNET))
    path = tmp_path / "hrnet.pt"
    torch.save(source.state_dict(), path)
    loaded = kitpose.build("backbone", "hrnet", pretrained=str(path), **SMALL_HRNET).eval()
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(image=image)["features"], source(image=image)["features"])


@pytest.mark.parametrize("wrap", [
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
    # a whole run's model, as the engine saves it: the backbone lies under its component key
    lambda sd: {"model": {**{f"parts.backbone.{k}": v for k, v in sd.items()},
                          "parts.head.final.weight": torch.zeros(3, 8, 1, 1)}, "kitpose": "0.1.0"},
])
def test_wrapped_and_prefixed_checkpoints_load(tmp_path, wrap):
    source = _trained_like(kitpose.build("backbone", "resnet", depth=18, base_channels=8))
    path = tmp_path / "ckpt.pt"
    torch.save(wrap(source.state_dict()), path)
    loaded = kitpose.build("backbone", "resnet", depth=18, base_channels=8, pretrained=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_head_loads_weights(tmp_path):
    source = _trained_like(kitpose.build("head", "heatmap", in_channels=8, joints=3))
    path = tmp_path / "head.pt"
    torch.save(source.state_dict(), path)
    loaded = kitpose.build("head", "heatmap", in_channels=8, joints=3, pretrained=str(path))
    assert torch.equal(loaded.final.weight, source.final.weight)


def test_missing_file_is_one_clear_line(tmp_path):
    path = tmp_path / "nowhere.pt"
    with pytest.raises(ComponentError) as info:
        kitpose.build("backbone", "hourglass", joints=2, stacks=1, width=16, pretrained=str(path))
    assert "does not exist" in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_mismatched_keys_are_listed(tmp_path):
    # weights of a 2-stage HRNet do not fit a 3-stage one: the new branch's keys are missing
    path = tmp_path / "two_stages.pt"
    torch.save(kitpose.build("backbone", "hrnet", **SMALL_HRNET).state_dict(), path)
    with pytest.raises(ComponentError) as info:
        kitpose.build("backbone", "hrnet", pretrained=str(path), **{**SMALL_HRNET, "stages": 3})
    message = str(info.value)
    assert "missing " in message and "transitions.1." in message and "+" in message  # truncated, with a count
    assert "\n" not in message


def test_shape_mismatch_and_unexpected_keys_are_listed(tmp_path):
    state = kitpose.build("head", "heatmap", in_channels=8, joints=3).state_dict()
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "head.pt"
    torch.save(state, path)
    with pytest.raises(ComponentError) as info:
        kitpose.build("head", "heatmap", in_channels=8, joints=5, pretrained=str(path))
    message = str(info.value)
    assert "unexpected extra.weight" in message
    assert "shape differs for final.weight [3, 8, 1, 1] vs [5, 8, 1, 1]" in message


def test_files_that_are_not_weights_are_refused(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ComponentError, match="cannot read pretrained file"):
        kitpose.build("head", "heatmap", in_channels=8, joints=3, pretrained=str(path))
    torch.save({"epoch": 3}, path)
    with pytest.raises(ComponentError, match="holds no state dict"):
        kitpose.build("head", "heatmap", in_channels=8, joints=3, pretrained=str(path))


def test_pickled_objects_are_not_executed(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"state_dict": torch.nn.Linear(2, 2)}, path)  # a module object, not tensors
    with pytest.raises(ComponentError, match="cannot read pretrained file"):
        kitpose.build("head", "heatmap", in_channels=8, joints=3, pretrained=str(path))
