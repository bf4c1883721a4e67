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
    assert load_recipe(old).select("test") == {"checkpoint": "best", "keep_heatmaps": False}  # the defaults, no flip keys


def test_an_older_flip_test_in_one_file_becomes_the_flip_test_node(tmp_path, toy_recipe):
    """A run directory's recipe.yaml holds everything: its flip test is rewritten, not refused."""
    old = tmp_path / "recipe.yaml"
    old.write_text(toy_recipe.read_text(encoding="utf-8") + "test: {flip: true}\n", encoding="utf-8")
    recipe = load_recipe(old)
    assert recipe.select("components.flip_test") == {
        "use": "flip_test", "encoder": recipe.select("components.encoder"), "flip_pairs": [[0, 2]]}
    assert recipe.select("flows.val") == load_recipe(toy_recipe).select("flows.test")  # validation: no flip
    test_flow = recipe.select("flows.test")
    assert {"call": "flip_test", "in": {"heatmaps": "heatmaps"}, "out": {"heatmaps": "flip_heatmaps"}} in test_flow
    assert test_flow[0]["in"] == {"image": "image"} and test_flow[2]["in"] == {"heatmaps": "flip_heatmaps"}
    assert recipe.select("test") == {"checkpoint": "best", "keep_heatmaps": False}
    check_recipe(str(old))


def test_an_older_flip_test_spread_over_files_is_refused_with_a_hint(tmp_path, toy_recipe):
    child = tmp_path / "child.yaml"
    child.write_text(f"kitpose: 1\nextends: [{toy_recipe}]\ntest: {{flip: true}}\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="flip_test") as info:
        load_recipe(child)
    assert info.value.path == "test.flip" and str(child) in info.value.file and "flows.val" in info.value.hint


def test_a_section_written_as_an_interpolation_is_left_to_the_merged_recipe(tmp_path, toy_recipe):
    child = tmp_path / "child.yaml"
    child.write_text(f"kitpose: 1\nextends: [{toy_recipe}]\nval: ${{vars.val}}\n", encoding="utf-8")
    recipe = load_recipe(child, ["+vars.val={every: 1, metric: EPE, mode: min, branch: peak}"])
    assert recipe.select("val.metric") == "EPE"


def test_val_show_moves_to_the_monitors(tmp_path, toy_recipe):
    text = toy_recipe.read_text(encoding="utf-8").replace(
        "  branch: peak\n", "  branch: peak\n  show: {keypoints: pred_uvz, heatmaps: heatmaps, target: target}\n")
    old = tmp_path / "old.yaml"
    old.write_text(text, encoding="utf-8")
    recipe = load_recipe(old)
    assert "show" not in recipe.select("val")
    assert recipe.select("monitors.figures") == {"use": "figures", "show": {"keypoints": "pred_uvz"}}
    check_recipe(str(old))


class NoViews:
    outputs = ("heatmaps",)

    def __init__(self, views):
        self._views = views

    def views(self, batch):
        return self._views

    def merge(self, heatmaps):
        return {"heatmaps": heatmaps[0]}


@pytest.mark.parametrize("views, message", [
    ([], "non-empty list"),
    ([None], "must be a mapping"),
    ([{"imgae": 0}], "replaces 'imgae'"),
])
def test_views_that_replace_nothing_the_flow_holds_are_one_line_errors(toy_recipe, registry, views, message):
    from kitpose.errors import RunError

    plan = check_recipe(str(toy_recipe), ["+components.tta={use: toy_shift}", SHIFT_FLOW])
    objects = {"model": registry.build("backbone", "toy_net"), "tta": NoViews(views),
               "encoder": registry.build("encoder", "toy_targets"),
               "decoders": {"peak": registry.build("decoder", "toy_peak"),
                            "shifted": registry.build("decoder", "toy_peak", offset=0.5)}}
    with pytest.raises(RunError, match=message) as info:
        FlowRunner(plan.flows["test"], objects, lambda *_: registry.build("metric", "toy_distance"))(batch())
    assert info.value.path == "flows.test[1]" and "\n" not in str(info.value)


def test_val_show_goes_to_every_drawing_monitor_of_the_file(tmp_path, toy_recipe):
    text = toy_recipe.read_text(encoding="utf-8").replace(
        "  branch: peak\n", "  branch: peak\n  show: {keypoints: pred_uvz}\n").replace(
        "  jsonl: {use: jsonl}\n", "  jsonl: {use: jsonl}\n  pictures: {use: figures}\n")
    old = tmp_path / "old.yaml"
    old.write_text(text, encoding="utf-8")
    monitors = load_recipe(old).select("monitors")
    assert monitors["pictures"] == {"use": "figures", "show": {"keypoints": "pred_uvz"}}
    assert "figures" not in monitors  # no second figures monitor writing the same files


def mmpose_flip_back(maps, pairs, shift_heatmap):
    """mmpose's documented flip test, joint by joint: mirror, swap the pairs, and with
    ``shift_heatmap`` move the maps one column right, keeping the first column."""
    out = maps.clone()
    for k in range(maps.shape[1]):
        source = next((b for a, b in pairs if a == k), next((a for a, b in pairs if b == k), k))
        out[:, k] = maps[:, source].flip(-1)
    if shift_heatmap:
        out[..., 1:] = out[..., :-1].clone()
    return out


@pytest.mark.parametrize("shift, mmpose_shift", [("one_cell", True), ("none", False)])
def test_flip_test_shift_conventions_follow_their_references(shift, mmpose_shift, registry):
    pairs = [[1, 2], [3, 4]]
    flip = registry.build("augmentation", "flip_test", encoder={"use": "gaussian", "stride": 4},
                          flip_pairs=pairs, shift=shift)
    maps = torch.rand(2, 5, 16, 12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(flip.back(maps), mmpose_flip_back(maps, pairs, mmpose_shift))


def test_flip_test_exact_shift_is_the_encoders_flip_back(registry):
    flip = registry.build("augmentation", "flip_test", encoder={"use": "gaussian", "stride": 4},
                          flip_pairs=[[1, 2]])
    maps = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    encoder = registry.build("encoder", "gaussian", stride=4)
    assert torch.equal(flip.back(maps), encoder.flip_back(maps, [[1, 2]]))
    assert not torch.allclose(flip.back(maps), mmpose_flip_back(maps, [[1, 2]], False))  # 0.75 cells apart


def test_flip_test_refuses_an_unknown_shift_built_directly():
    from kitpose_plugins.codecs.flip_test import FlipTest

    with pytest.raises(KitposeError, match="shift"):
        FlipTest(encoder={"use": "gaussian"}, flip_pairs=[[0, 1]], shift="half")
