"""The command line: one clear line and exit code 2 for every user mistake."""
import pytest
import yaml

import kitpose


@pytest.mark.parametrize("args, fragment", [
    (["check", "{recipe}", "components.model.use=toy_nett"], "components.model.use: unknown component 'toy_nett' (did you mean 'toy_net'?)"),
    (["check", "{recipe}", "+components.model.in_chanels=3"], "components.model.in_chanels: backbone 'toy_net' has no parameter 'in_chanels' (did you mean 'in_channels'?)"),
    (["check", "{recipe}", "train.epoch=3"], "no key 'train.epoch' (did you mean 'epochs'?)"),
    (["check", "{recipe}", "flows.train[2].in.target=nobody"], "flows.train[2].in.target: no one produces tensor 'nobody'"),
    (["check", "{recipe}", "flows.train[1].in.image=target", "flows.train[0].in.keypoints=heatmaps"], "cycle"),
    (["check", "missing.yaml"], "missing.yaml: recipe not found"),
    (["check", "{folder}"], "a folder, not a recipe; give a .yaml recipe in it, e.g. {recipe}"),
    (["-p", "no:dark", "check", "{recipe}", "components.model.use=dark", "+components.model.kind=decoder"],
     "component 'dark' belongs to plugin 'dark', which -p no:dark blocks; leave out -p no:dark to use it"),
    (["-p", "no:dark", "check", "{recipe}", "components.model.use=dark"],
     "component 'dark' belongs to plugin 'dark', which -p no:dark blocks"),
    (["-p", "no:drak", "list"], "-p no:drak: no plugin is named 'drak' (did you mean 'dark'?)"),
    (["run", "{recipe}", "val.mode=max", "+components.evil._target_=os.system"], "'_target_' is refused"),
])
def test_user_mistakes_exit_2_with_one_line(cli, toy_recipe, args, fragment):
    fill = {"{recipe}": str(toy_recipe), "{folder}": str(toy_recipe.parent)}
    result = cli(*[fill.get(a, a) for a in args])
    fragment = fragment.replace("{recipe}", str(toy_recipe))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kitpose: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_yaml_and_missing_base(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kitpose: 1\ncomponents: {a: [1, 2}\n")
    result = cli("check", str(bad))
    assert result.returncode == 2 and "bad.yaml:2:" in result.stderr and "invalid YAML" in result.stderr
    child = tmp_path / "child.yaml"
    child.write_text("kitpose: 1\nextends: [base/nowhere.yaml]\n")
    result = cli("check", str(child))
    assert result.returncode == 2 and "base recipe 'base/nowhere.yaml' not found" in result.stderr


def test_debug_shows_the_traceback(cli, toy_recipe):
    result = cli("--debug", "check", str(toy_recipe), "components.model.use=nope")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_version_list_plugins_show_check(cli, toy_recipe):
    assert cli("--version").stdout.strip() == f"kitpose {kitpose.__version__}"
    listing = cli("list").stdout
    for heading in ("datasets:", "transforms:", "backbones:", "heads:", "encoders:", "decoders:", "losses:",
                    "metrics:", "monitors:", "optimizers:", "schedulers:"):
        assert heading in listing
    assert "toy_peak" in cli("list", "decoder", "--filter", "toy_*").stdout
    assert "optim" in cli("plugins").stdout
    shown = cli("show", str(toy_recipe), "train.epochs=9")
    assert "epochs: 9" in shown.stdout and "${" not in shown.stdout
    assert "${vars.size}" in cli("show", "--unresolved", str(toy_recipe)).stdout
    checked = cli("check", str(toy_recipe))
    assert checked.returncode == 0 and "ok" in checked.stdout


def test_show_prints_every_setting_and_the_result_is_a_recipe(cli, tmp_path):
    from conftest import ROOT

    shown = cli("show", str(ROOT / "recipes" / "hrnet_dark.yaml"))
    assert shown.returncode == 0, shown.stderr
    config = yaml.safe_load(shown.stdout)
    assert config["components"]["decoders"]["dark"] == {"use": "dark", "blur_kernel": 11, "max_step": 1.0}
    assert config["components"]["decoders"]["com"]["window"] == 7  # a default the recipe leaves out
    assert config["monitors"]["console"]["use"] == "console"  # the monitors every run has
    assert config["monitors"]["jsonl"]["file"] == "metrics.jsonl"
    assert config["data"]["val"]["workers"] == 0 and config["data"]["train"]["shuffle"] is True
    assert config["train"]["optimizer"] == {"use": "adam", "lr": 2.0e-3, "betas": [0.9, 0.999], "weight_decay": 0.0}
    assert "vars" not in config  # filled in where they were used
    (tmp_path / "shown.yaml").write_text(shown.stdout)
    checked = cli("check", str(tmp_path / "shown.yaml"))
    assert checked.returncode == 0, checked.stderr


def test_overrides_after_options(cli, toy_recipe, tmp_path):
    result = cli("run", str(toy_recipe), "--run-dir", str(tmp_path / "r"), "train.epochs=1")
    assert result.returncode == 0, result.stderr
    assert "epochs: 1" in (tmp_path / "r" / "recipe.yaml").read_text()
    bad = cli("list", "--filter", "x", "--nope")
    assert bad.returncode == 2 and "unrecognized arguments: --nope" in bad.stderr


def test_show_settings_lists_every_run_setting_from_the_schema(cli):
    from kitpose.settings import TrainSettings, defaults

    shown = cli("show", "--settings")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line for line in shown.stdout.splitlines()}
    assert "passes over the training data" in rows["train.epochs"]
    assert rows["train.epochs"].split()[1] == str(defaults(TrainSettings)["epochs"])
    assert {"seed", "val.metric", "test.checkpoint", "data.SPLIT.batch_size"} <= set(rows)
    missing = cli("show")
    assert missing.returncode == 2 and "no recipe given" in missing.stderr
