"""`kitpose new-plugin`: the package it writes installs, registers itself and passes its own tests."""
import importlib.util
import os
import subprocess
import sys
import tomllib

import pytest

from conftest import run_cli
from kitpose.errors import PluginError
from kitpose.scaffold import KINDS, new_plugin, plugin_names
from kitpose.testing import check_component


def user_env(site=None):
    """The environment of a user who installed a plugin: no test plugins, the package on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("KITPOSE_PLUGINS", "PYTHONPATH")}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return env


def pip_install(target, *packages):
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-cache-dir", "--target", str(target), *map(str, packages)],
                   check=True, capture_output=True, text=True, timeout=300)


def run_pytest(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, args)],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_generated_package_installs_and_passes_its_tests(tmp_path):
    made = run_cli("new-plugin", "median-demo", "--dir", str(tmp_path), env=user_env())
    assert made.returncode == 0, made.stderr
    root = tmp_path / "kitpose-median-demo"
    assert f"wrote {root}" in made.stdout and 'pip install -e ".[test]"' in made.stdout
    # the name recipes use differs from the one typed, and the command says so
    assert "the decoder 'median_demo' (from 'median-demo'" in made.stdout

    site = tmp_path / "site"
    pip_install(site, root)
    tests = run_pytest(env=user_env(site), cwd=root)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout

    plugins = run_cli("plugins", env=user_env(site)).stdout.splitlines()
    row = next(line.split() for line in plugins if line.startswith("kitpose_median_demo "))
    assert row[:4] == ["kitpose_median_demo", "loaded", "kitpose-median-demo", "0.1.0"]
    listed = run_cli("list", "decoder", env=user_env(site)).stdout
    assert "median_demo" in listed and "[kitpose_median_demo (kitpose-median-demo 0.1.0)]" in listed


@pytest.mark.parametrize("kind", KINDS)
def test_every_template_keeps_the_contract(tmp_path, kind):
    root = new_plugin(f"scaffold_{kind}", kind, tmp_path)
    names = plugin_names(f"scaffold_{kind}", kind)
    source = root / "src" / names.package / f"{kind}.py"
    spec = importlib.util.spec_from_file_location(f"generated_{kind}", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert check_component(kind, getattr(module, names.class_name))

    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == f"kitpose-scaffold-{kind}"
    assert project["project"]["entry-points"]["kitpose"] == {names.package: f"{names.package}.plugin"}
    plugin = (root / "src" / names.package / "plugin.py").read_text()
    assert f'registry.{kind}("scaffold_{kind}", "{names.package}.{kind}:{names.class_name}")' in plugin
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_names_are_derived_from_the_component_name():
    names = plugin_names("Kitpose-Soft-Median", "metric")
    assert (names.name, names.distribution, names.package, names.class_name) == \
        ("soft_median", "kitpose-soft-median", "kitpose_soft_median", "SoftMedianMetric")
    assert plugin_names("csv_monitor", "monitor").class_name == "CsvMonitor"


@pytest.mark.parametrize("args, message", [
    (["dark"], "decoder 'dark' is already registered by dark (kitpose"),
    (["rmse", "--kind", "metric"], "metric 'rmse' is already registered by metrics (kitpose"),
    (["toy", "--kind", "decodr"], "no plugin template for kind 'decodr' (did you mean 'decoder'?); --kind is one of"),
    (["2d-peak"], "invalid plugin name '2d-peak'; start with a letter"),
])
def test_mistakes_say_what_to_fix(tmp_path, args, message):
    result = run_cli("new-plugin", *args, "--dir", str(tmp_path), env=user_env())
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_an_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / "kitpose-peak2" / "src").mkdir(parents=True)
    with pytest.raises(PluginError, match="kitpose-peak2 already exists and is not empty; choose another --dir"):
        new_plugin("peak2", "decoder", tmp_path)


@pytest.mark.slow
def test_every_kind_installs_and_passes_its_tests(tmp_path):
    roots = [new_plugin(f"every_{kind}", kind, tmp_path) for kind in KINDS]
    site = tmp_path / "site"
    pip_install(site, *roots)
    result = run_pytest(*[root / "tests" for root in roots], env=user_env(site), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{3 * len(KINDS)} passed" in result.stdout
