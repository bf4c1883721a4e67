"""Recipes: extends, overrides, validation, interpolation and safety."""
from pathlib import Path

import pytest

from kitpose.errors import OverrideError, RecipeError
from kitpose.recipe import load_recipe


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_merges_and_lists_replace(tmp_path):
    write(tmp_path, "base/a.yaml", "kitpose: 1\nseed: 1\nvars: {xs: [1, 2, 3], keep: yes}\n")
    path = write(tmp_path, "r.yaml", "kitpose: 1\nextends: [base/a.yaml]\nvars: {xs: [9]}\n")
    recipe = load_recipe(path, search_dirs=[])
    assert recipe.select("vars.xs") == [9]
    assert recipe.select("vars.keep") is True
    assert recipe.select("seed") == 1


def test_extends_finds_shipped_recipes(tmp_path):
    shipped = tmp_path / "shipped"
    write(shipped, "base/common.yaml", "kitpose: 1\nseed: 1314\n")
    path = write(tmp_path / "mine", "r.yaml", "kitpose: 1\nextends: base/common.yaml\n")
    assert load_recipe(path, search_dirs=[shipped]).select("seed") == 1314


def test_missing_extends_names_file_and_search_path(tmp_path):
    path = write(tmp_path, "r.yaml", "kitpose: 1\nextends: [nope.yaml]\n")
    with pytest.raises(RecipeError, match=r"r.yaml: extends: base recipe 'nope.yaml' not found"):
        load_recipe(path, search_dirs=[])


def test_extends_cycle(tmp_path):
    write(tmp_path, "a.yaml", "kitpose: 1\nextends: [b.yaml]\n")
    path = write(tmp_path, "b.yaml", "kitpose: 1\nextends: [a.yaml]\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(path, search_dirs=[])


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "bad.yaml", "kitpose: 1\nseed: [1, 2\nname: x\n")
    with pytest.raises(RecipeError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
        load_recipe(path, search_dirs=[])


def test_overrides_are_typed_and_checked(tmp_path):
    path = write(tmp_path, "r.yaml", "kitpose: 1\nseed: 1\ntrain: {epochs: 3, optimizer: {use: adam, lr: 0.1}}\n")
    recipe = load_recipe(path, ["train.epochs=5", "train.optimizer.lr=2e-3", "+vars.flag=true",
                                "~seed"], search_dirs=[])
    assert recipe.select("train.epochs") == 5
    assert recipe.select("train.optimizer.lr") == pytest.approx(2e-3)
    assert recipe.select("vars.flag") is True
    assert recipe.select("seed") is None
    with pytest.raises(OverrideError, match=r"no key 'train.epoch' \(did you mean 'epochs'\?\).*\+train.epoch"):
        load_recipe(path, ["train.epoch=5"], search_dirs=[])
    with pytest.raises(OverrideError, match="not key=value"):
        load_recipe(path, ["train.epochs"], search_dirs=[])


def test_unknown_top_level_key_and_version(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown top-level key 'trian' \(did you mean 'train'\?\)"):
        load_recipe(write(tmp_path, "a.yaml", "kitpose: 1\ntrian: {}\n"), search_dirs=[])
    with pytest.raises(RecipeError, match="missing schema version"):
        load_recipe(write(tmp_path, "b.yaml", "seed: 1\n"), search_dirs=[])
    with pytest.raises(RecipeError, match="version 2 is not supported"):
        load_recipe(write(tmp_path, "c.yaml", "kitpose: 2\n"), search_dirs=[])


def test_interpolation_resolves_and_reports_path(tmp_path):
    recipe = load_recipe(write(tmp_path, "a.yaml", "kitpose: 1\nvars: {w: 32}\nseed: ${vars.w}\n"), search_dirs=[])
    assert recipe.resolved()["seed"] == 32
    broken = load_recipe(write(tmp_path, "b.yaml", "kitpose: 1\nseed: ${vars.nope}\n"), search_dirs=[])
    with pytest.raises(RecipeError, match="b.yaml"):
        broken.resolved()


@pytest.mark.parametrize("text, message", [
    ("kitpose: 1\ncomponents: {model: {_target_: os.system}}\n", "'_target_' is refused"),
    ("kitpose: 1\nname: ${eval:'__import__(\"os\").system(\"echo hi\")'}\n", "resolver 'eval' is refused"),
    ("kitpose: 1\nname: ${python.eval:1}\n", "resolver 'python.eval' is refused"),
])
def test_recipes_cannot_run_code(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, "evil.yaml", text), search_dirs=[])


def test_component_import_path_is_not_a_name(tmp_path, toy_recipe):
    from kitpose.errors import ComponentError
    from kitpose.plan import check_recipe

    with pytest.raises(ComponentError, match="unknown component 'os:system'"):
        check_recipe(str(toy_recipe), ["components.model.use=os:system"])


def test_override_of_a_missing_section_suggests_the_section(tmp_path):
    path = write(tmp_path, "r.yaml", "kitpose: 1\ntrain: {epochs: 3}\n")
    with pytest.raises(OverrideError, match=r"no key 'trian.epochs' \(did you mean 'train'\?\)"):
        load_recipe(path, ["trian.epochs=5"], search_dirs=[])


@pytest.mark.parametrize("override, path, problem", [
    ("train.epochs=abc", "train.epochs", "must be a whole number"),
    ("data.train.batch_size=0", "data.train.batch_size", "must be at least 1"),
    ("+data.val.workers=two", "data.val.workers", "must be a whole number"),
    ("deterministic=maybe", "deterministic", "must be true or false"),
    ("val.snapshot=-1", "val.snapshot", "must be at least 0"),
    ("val.mode=best", "val.mode", "must be one of max, min"),
    ("amp=fp32", "amp", "must be one of null, bf16, fp16"),
    ("seed=1.5", "seed", "must be a whole number"),
    ("train.clip_grad=-1", "train.clip_grad", "must be at least 0"),
])
def test_run_settings_of_the_wrong_type_are_recipe_errors(toy_recipe, override, path, problem):
    from kitpose.plan import check_recipe

    with pytest.raises(RecipeError) as caught:
        check_recipe(str(toy_recipe), [override])
    message = str(caught.value)
    assert f"{path}: {problem}" in message and "toy.yaml" in message


def test_run_settings_accept_their_documented_values(toy_recipe):
    from kitpose.plan import check_recipe

    plan = check_recipe(str(toy_recipe), ["amp=null", "amp=bf16", "train.steps=null", "train.clip_grad=1",
                                          "test.checkpoint=last", "val.mode=min", "+data.val.workers=0"])
    assert plan.settings["train"]["clip_grad"] == 1 and plan.splits["val"].workers == 0


def test_check_builds_light_components_so_refused_values_surface():
    from kitpose.errors import ComponentError, KitposeError
    from kitpose.plan import check_recipe

    recipe = str(Path(__file__).parent.parent / "recipes" / "hrnet_dark.yaml")
    with pytest.raises(ComponentError) as caught:
        check_recipe(recipe, ["components.decoders.dark.blur_kernel=4"])
    assert caught.value.path == "components.decoders.dark" and "odd" in str(caught.value)
    with pytest.raises(KitposeError, match="scale must satisfy") as caught:
        check_recipe(recipe, ["data.train.transforms[1].scale=[1.2, 0.8]"])
    assert caught.value.path == "data.train.transforms[1]"


def test_a_mapping_naming_another_component_replaces_the_base_one_whole(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "kitpose: 1\ncomponents:\n  encoder: {use: gaussian, sigma: 3.0, stride: 4}\n"
        "  loss: {use: heatmap_mse}\ntrain:\n  optimizer: {use: adam, lr: 0.002, betas: [0.9, 0.99]}\n")
    (tmp_path / "child.yaml").write_text(
        "kitpose: 1\nextends: [base.yaml]\ncomponents:\n  encoder: {use: one_hot}\n  loss: {reduction: sum}\n"
        "train:\n  optimizer: {use: sgd, lr: 0.1}\n")
    config = load_recipe(tmp_path / "child.yaml").config
    assert dict(config.components.encoder) == {"use": "one_hot"}  # no sigma or stride leaked in
    assert dict(config.components.loss) == {"use": "heatmap_mse", "reduction": "sum"}  # same use: merged
    assert dict(config.train.optimizer) == {"use": "sgd", "lr": 0.1}  # not Adam's betas
    lr_only = load_recipe(tmp_path / "base.yaml", ["train.optimizer.lr=0.01"]).config.train.optimizer
    assert lr_only.use == "adam" and list(lr_only.betas) == [0.9, 0.99]


def test_metrics_in_the_train_flow_are_refused_at_check_time(toy_recipe):
    from kitpose.plan import check_recipe

    node = "{call: metrics, in: {pred: keypoints, target: keypoints, visible: visible, head_size: head_size}}"
    with pytest.raises(RecipeError, match="metrics are not scored while training") as caught:
        check_recipe(str(toy_recipe), [f"flows.train=[{{call: encoder, in: {{keypoints: keypoints, "
                                       f"visible: visible}}, out: {{heatmaps: target, weights: weights}}}}, "
                                       f"{{call: model, in: {{image: image}}, out: {{heatmaps: heatmaps}}}}, "
                                       f"{{call: loss, in: {{pred: heatmaps, target: target, weights: weights}}}}, "
                                       f"{node}]"])
    assert caught.value.path == "flows.train[3]"
