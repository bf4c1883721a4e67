"""Test-time augmentation: a flow node runs what its inputs depend on again per view, then merges.

The core knows no augmentation: ``toy_shift`` comes from the toy plugin and ``flip_test``
from the built-in codecs plugin, both named only by recipes.
"""
import pytest
import torch

from kitpose.engine import run_recipe
from kitpose.errors import FlowError, KitposeError, RecipeError
from kitpose.flow import FlowRunner
from kitpose.plan import check_recipe
from kitpose.recipe import load_recipe

SHIFT_FLOW = ("flows.test=[{call: model, in: {image: image}, out: {heatmaps: heatmaps}},"
              " {call: tta, in: {heatmaps: heatmaps}, out: {heatmaps: tta_heatmaps}},"
              " {call: encoder, in: {keypoints: keypoints, visible: visible}, out: {heatmaps: target}},"
              " {call: decoders, in: {heatmaps: tta_heatmaps}, out: {keypoints: pred_hm}},"
              " {call: encoder.to_image, in: {xy: pred_hm}, out: {result: pred_keypoints}},"
              " {call: metrics, in: {pred: pred_keypoints, target: keypoints, visible: visible,"
              " head_size: head_size}}]")
FLIP_TEST = '+components.tta={use: flip_test, encoder: "${components.encoder}", flip_pairs: [[0, 2]]}'


class Counting(torch.nn.Module):
    """A model that counts its calls."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, image):
        self.calls += 1
        return self.model(image)


def batch(n=2):
    torch.manual_seed(0)
    return {"image": torch.rand(n, 3, 16, 16), "keypoints": torch.rand(n, 3, 2) * 15,
            "visible": torch.ones(n, 3), "head_size": torch.full((n,), 8.0)}


def test_an_augmentation_reruns_its_inputs_on_every_view_and_merges(toy_recipe, registry):
    plan = check_recipe(str(toy_recipe), ["+components.tta={use: toy_shift, pixels: [1, 3]}", SHIFT_FLOW])
    model = Counting(registry.build("backbone", "toy_net"))
    objects = {"model": model, "tta": registry.build("augmentation", "toy_shift", pixels=[1, 3]),
               "encoder": registry.build("encoder", "toy_targets"),
               "decoders": {"peak": registry.build("decoder", "toy_peak"),
                            "shifted": registry.build("decoder", "toy_peak", offset=0.5)}}
    data = batch()
    env = FlowRunner(plan.flows["test"], objects, lambda *_: registry.build("metric", "toy_distance"))(data)["peak"]
    assert model.calls == 3  # the image and two rolled copies
    with torch.no_grad():
        def maps(image):
            return model(image)["heatmaps"]

        expected = torch.stack([maps(data["image"]), maps(data["image"].roll(1, -1)).roll(-1, -1),
                                maps(data["image"].roll(3, -1)).roll(-3, -1)]).mean(0)
        assert torch.equal(env["tta_heatmaps"], expected)
        assert torch.equal(env["heatmaps"], maps(data["image"]))  # the plain tensor is left as it was


def test_the_flip_test_is_plugin_code_named_by_the_recipe(toy_recipe, registry):
    plan = check_recipe(str(toy_recipe), [FLIP_TEST, SHIFT_FLOW])
    model = registry.build("backbone", "toy_net")
    encoder = registry.build("encoder", "toy_targets")
    objects = {"model": model, "tta": plan.components["tta"].build(registry), "encoder": encoder,
               "decoders": {"peak": registry.build("decoder", "toy_peak"),
                            "shifted": registry.build("decoder", "toy_peak", offset=0.5)}}
    data = batch()
    with torch.no_grad():
        env = FlowRunner(plan.flows["test"], objects, lambda *_: registry.build("metric", "toy_distance"))(data)
        mirrored = encoder.flip_back(model(data["image"].flip(-1))["heatmaps"], [(0, 2)])
        assert torch.equal(env["peak"]["tta_heatmaps"], (model(data["image"])["heatmaps"] + mirrored) / 2)


def test_a_recipe_adds_a_plugin_augmentation_to_a_run(toy_recipe, tmp_path):
    plain = run_recipe(str(toy_recipe), ["train.epochs=1"], run_dir=str(tmp_path / "plain"))
    shifted = run_recipe(str(toy_recipe), ["train.epochs=1", "+components.tta={use: toy_shift, pixels: [2]}",
                                           SHIFT_FLOW], run_dir=str(tmp_path / "tta"))
    assert plain["peak"]["N"] == shifted["peak"]["N"] == 16
    assert plain["peak"]["EPE"] != shifted["peak"]["EPE"]


def test_an_augmentation_cannot_rerun_a_fan_out(toy_recipe):
    flow = ("flows.test=[{call: model, in: {image: image}, out: {heatmaps: heatmaps}},"
            " {call: decoders, in: {heatmaps: heatmaps}, out: {keypoints: pred_hm}},"
            " {call: tta, in: {heatmaps: pred_hm}, out: {heatmaps: merged}},"
            " {call: metrics, in: {pred: merged, target: keypoints, visible: visible, head_size: head_size}}]")
    with pytest.raises(FlowError, match="group 'decoders'") as info:
        check_recipe(str(toy_recipe), ["+components.tta={use: toy_shift}", flow])
    assert info.value.path == "flows.test[2].in"


def test_flip_test_needs_an_encoder_entry(toy_recipe):
    with pytest.raises(KitposeError, match="unknown encoder 'toy_mse'") as info:
        check_recipe(str(toy_recipe), ["+components.tta={use: flip_test, encoder: {use: toy_mse}, "
                                       "flip_pairs: [[0, 2]]}", SHIFT_FLOW])
    assert info.value.path.startswith("components.tta")


def test_older_recipes_are_migrated(tmp_path, toy_recipe):
    text = toy_recipe.read_text(encoding="utf-8")
    old = tmp_path / "old.yaml"
    old.write_text(text + "test: {checkpoint: best, flip: false, flip_heatmaps: heatmaps, flip_encoder: encoder}\n",
                   encoding="utf-8")
    recipe = load_recipe(old)
    assert dict(recipe.select("test")) == {"checkpoint": "best"}
    flipped = tmp_path / "flipped.yaml"
    flipped.write_text(text + "test: {flip: true}\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="flip_test") as info:
        load_recipe(flipped)
    assert info.value.path == "test.flip" and str(flipped) in info.value.file


def test_val_show_moves_to_the_monitors(tmp_path, toy_recipe):
    text = toy_recipe.read_text(encoding="utf-8").replace(
        "  branch: peak\n", "  branch: peak\n  show: {keypoints: pred_uvz, heatmaps: heatmaps, target: target}\n")
    old = tmp_path / "old.yaml"
    old.write_text(text, encoding="utf-8")
    recipe = load_recipe(old)
    assert "show" not in recipe.select("val")
    assert recipe.select("monitors.figures") == {"use": "figures", "show": {"keypoints": "pred_uvz"}}
    check_recipe(str(old))
