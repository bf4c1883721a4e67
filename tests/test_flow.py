"""Flows: checked before anything runs, ordered by dependency, fanning out over groups."""
import pytest
import torch

from kitpose.errors import FlowError
from kitpose.flow import FlowRunner
from kitpose.plan import check_recipe

TEST_FLOW = "flows.test"


def check(toy_recipe, *overrides):
    return check_recipe(str(toy_recipe), list(overrides))


def test_toy_recipe_checks(toy_recipe):
    plan = check(toy_recipe)
    assert set(plan.flows) == {"train", "val", "test"}
    assert [n.component for n in plan.flows["test"].nodes] == ["model", "decoders", "encoder", "metrics"]


@pytest.mark.parametrize("override, path, message", [
    ("flows.train[2].in.target=targte", "flows.train[2].in.target", "no one produces tensor 'targte' (did you mean 'target'?)"),
    ("flows.train[1].call=modle", "flows.train[1].call", "unknown component 'modle' (did you mean 'model'?)"),
    ("+flows.train[1].in.images=image", "flows.train[1].in.images", "takes no argument 'images' (did you mean 'image'?)"),
    ("flows.test[2].call=encoder.to_imag", "flows.test[2].call", "no flow method 'to_imag' (did you mean 'to_image'?)"),
    ("+flows.train[0].out.heatmap=x", "flows.train[0].out.heatmap", "returns no 'heatmap' (did you mean 'heatmaps'?)"),
])
def test_errors_name_the_recipe_path(toy_recipe, override, path, message):
    with pytest.raises(FlowError) as info:
        check(toy_recipe, override)
    assert info.value.path == path
    assert message in str(info.value)
    assert "toy.yaml" in str(info.value)


def test_cycle_is_reported(toy_recipe):
    with pytest.raises(FlowError, match="cycle"):
        check(toy_recipe, "flows.train[1].in.image=target", "flows.train[0].in.keypoints=heatmaps")


def test_nodes_run_in_dependency_order(tmp_path, toy_recipe):
    text = toy_recipe.read_text().replace(
        "    - {call: encoder, in: {keypoints: keypoints, visible: visible}, out: {heatmaps: target, weights: weights}}\n", "")
    text = text.replace(
        "    - {call: loss, in: {pred: heatmaps, target: target, weights: weights}}\n",
        "    - {call: loss, in: {pred: heatmaps, target: target, weights: weights}}\n"
        "    - {call: encoder, in: {keypoints: keypoints, visible: visible}, out: {heatmaps: target, weights: weights}}\n")
    path = tmp_path / "reordered.yaml"
    path.write_text(text)
    order = [n.component for n in check(path).flows["train"].nodes]
    assert order == ["model", "encoder", "loss"]


def test_overwriting_a_dataset_tensor_is_refused(toy_recipe):
    with pytest.raises(FlowError, match="overwrite the dataset's 'keypoints'"):
        check(toy_recipe, "flows.test[1].out.keypoints=keypoints")


def test_fan_out_gives_one_branch_per_member(toy_recipe, registry):
    plan = check(toy_recipe)
    objects = {"model": registry.build("backbone", "toy_net"),
               "decoders": {"peak": registry.build("decoder", "toy_peak"),
                            "shifted": registry.build("decoder", "toy_peak", offset=0.5)},
               "encoder": registry.build("encoder", "toy_targets")}
    runner = FlowRunner(plan.flows["test"], objects,
                        lambda key, member: registry.build("metric", "toy_distance"))
    batch = {"image": torch.rand(2, 3, 16, 16), "keypoints": torch.rand(2, 3, 2) * 15,
             "visible": torch.ones(2, 3), "head_size": torch.full((2,), 8.0)}
    branches = runner(batch)
    assert set(branches) == {"peak", "shifted"}
    diff = branches["shifted"]["pred_keypoints"] - branches["peak"]["pred_keypoints"]
    assert torch.allclose(diff, torch.full_like(diff, 0.5))
    results = runner.compute()
    assert set(results) == {"peak", "shifted"} and results["peak"]["N"] == 2


def test_train_flow_cannot_fan_out(toy_recipe):
    from kitpose.errors import RecipeError

    with pytest.raises(RecipeError, match="cannot fan out"):
        check(toy_recipe, "flows.train[1].call=decoders", "flows.train[1].in={heatmaps: image}",
              "flows.train[1].out={keypoints: heatmaps}")


def test_an_error_inside_a_node_names_recipe_node_component_and_shapes(toy_recipe, registry):
    from kitpose.errors import RunError

    plan = check(toy_recipe)
    objects = {"model": registry.build("backbone", "toy_net", joints=5),
               "encoder": registry.build("encoder", "toy_targets"), "loss": registry.build("loss", "toy_mse")}
    runner = FlowRunner(plan.flows["train"], objects)
    batch = {"image": torch.rand(2, 3, 16, 16), "keypoints": torch.rand(2, 3, 2) * 15,
             "visible": torch.ones(2, 3), "head_size": torch.full((2,), 8.0)}
    with pytest.raises(RunError) as info:
        runner(batch)
    error = info.value
    assert error.path == "flows.train[2]" and error.file == str(toy_recipe)
    text = str(error)
    assert "loss (components.loss): RuntimeError:" in text
    assert "inputs pred [2, 5, 16, 16], target [2, 3, 16, 16], weights [2, 3]" in text
    assert "\n" not in text
    assert isinstance(error.__cause__, RuntimeError)


def test_a_group_member_error_names_the_member(toy_recipe, registry):
    from kitpose.errors import RunError

    plan = check(toy_recipe)

    def broken(heatmaps):
        raise ValueError("bad\nmulti-line")

    objects = {"model": registry.build("backbone", "toy_net"), "encoder": registry.build("encoder", "toy_targets"),
               "decoders": {"peak": registry.build("decoder", "toy_peak"), "shifted": broken}}
    runner = FlowRunner(plan.flows["test"], objects, lambda key, member: registry.build("metric", "toy_distance"))
    batch = {"image": torch.rand(2, 3, 16, 16), "keypoints": torch.rand(2, 3, 2) * 15,
             "visible": torch.ones(2, 3), "head_size": torch.full((2,), 8.0)}
    with pytest.raises(RunError, match=r"decoders/shifted \(components.decoders.shifted\): ValueError: bad "
                                       r"multi-line; inputs heatmaps \[2, 3, 16, 16\]"):
        runner(batch)


@pytest.mark.parametrize("override, path, message", [
    ("val.branch=peek", "val.branch", "'peek' is not a branch of the validation flow (did you mean 'peak'?)"),
    ("val.metric=EP", "val.metric", "'EP' is not a value the validation flow reports (did you mean 'EPE'?)"),
    ("test.checkpoint=nowhere.pt", "test.checkpoint", "'nowhere.pt' is not a file"),
])
def test_names_used_after_training_are_checked_before(toy_recipe, override, path, message):
    from kitpose.errors import RecipeError

    with pytest.raises(RecipeError) as info:
        check(toy_recipe, override)
    assert info.value.path == path and message in str(info.value)


def test_branch_labels_follow_the_fan_out(toy_recipe):
    from kitpose.plan import branch_labels

    plan = check(toy_recipe)
    scored = branch_labels(plan.flows["val"])
    assert scored == {"peak": [("metrics", "distance")], "shifted": [("metrics", "distance")]}
