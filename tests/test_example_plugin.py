"""The example plugin package (examples/kitpose-plugin-example), installed as a user would:
its own tests pass, its recipe runs built-in and plugin components together, and
`kitpose plugins` lists it with its version."""
import csv
import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

EXAMPLE = ROOT / "examples" / "kitpose-plugin-example"
VERSION = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["version"]
#: a run of the example recipe small enough for the default suite
SMALL = ["train.epochs=1", "data.train.dataset.size=8", "data.train.batch_size=4", "data.val.dataset.size=4",
         "data.test.dataset.size=4", "+components.backbone.stages=2"]
BUILD_OUTPUTS = shutil.ignore_patterns("__pycache__", "build", "*.egg-info", ".pytest_cache")


def user_env(site=None):
    """The environment of a user who installed the package: no test plugins, the package on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("KITPOSE_PLUGINS", "PYTHONPATH")}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(a copy of the example's source, the folder it is installed in)."""
    root = tmp_path_factory.mktemp("example")
    source = root / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=BUILD_OUTPUTS)
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-cache-dir", "--target", str(site), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    return source, site


def rows(path):
    with Path(path).open(newline="") as handle:
        return list(csv.reader(handle))


def test_its_own_tests_pass(installed):
    source, site = installed
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=source,
                            env=user_env(site), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "skipped" not in result.stdout


def test_kitpose_plugins_lists_it_with_its_version(installed):
    _, site = installed
    plugins = run_cli("plugins", env=user_env(site))
    assert plugins.returncode == 0, plugins.stderr
    row = next(line.split() for line in plugins.stdout.splitlines() if line.startswith("kitpose_example "))
    assert row[:5] == ["kitpose_example", "loaded", "kitpose-plugin-example", VERSION, "kitpose_example.plugin"]


def test_its_recipe_runs_with_built_in_components(installed, tmp_path):
    _, site = installed
    run_dir = tmp_path / "run"
    result = run_cli("run", "median_example.yaml", *SMALL, "--run-dir", str(run_dir), env=user_env(site),
                     timeout=300)
    assert result.returncode == 0, result.stderr
    table = rows(run_dir / "results.csv")
    assert table[0] == ["decoder", "PCKh@0.1", "PCKh@0.5", "EPE@p50", "EPE@p90"]
    assert [r[0] for r in table[1:]] == ["argmax", "com", "median"]
    for row in table[1:]:
        p50, p90 = float(row[3]), float(row[4])
        assert 0 <= p50 <= p90  # pixels: the median error never exceeds the 90th percentile
    assert rows(run_dir / "steps.csv")[0] == ["step", "epoch", "name", "value"]  # written by the csv monitor
    assert {r[1] for r in rows(run_dir / "validation.csv")[1:]} == {"argmax", "com", "median"}
    plugins = {p["name"]: p for p in json.loads((run_dir / "run.json").read_text())["plugins"]}
    assert (plugins["kitpose_example"]["dist"], plugins["kitpose_example"]["version"]) == \
        ("kitpose-plugin-example", VERSION)


def test_blocking_the_plugin_names_what_is_missing(installed):
    _, site = installed
    result = run_cli("-p", "no:kitpose_example", "check", "median_example.yaml", env=user_env(site))
    assert result.returncode == 2
    assert "recipe not found" in result.stderr  # its recipe folder goes with it


def checkout_copy(destination: Path) -> Path:
    """The files of this checkout that git tracks or would track: what a fresh clone holds."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


@pytest.mark.slow
def test_a_fresh_venv_installs_kitpose_and_the_example(tmp_path):
    clone = checkout_copy(tmp_path / "clone")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = user_env()
    env["PIP_CONSTRAINT"] = str(clone / "constraints-cpu.txt")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["-e", f"{clone}[test]"], env=env, check=True, timeout=3000)
    subprocess.run(pip + [str(clone / "examples" / EXAMPLE.name)], env=env, check=True, timeout=600)
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=clone / "examples" / EXAMPLE.name, env=env, capture_output=True, text=True,
                           timeout=600)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    kitpose = str(env_dir / "bin" / "kitpose")
    plugins = subprocess.run([kitpose, "plugins"], env=env, capture_output=True, text=True, timeout=300)
    assert f"kitpose-plugin-example {VERSION}" in plugins.stdout
    run = subprocess.run([kitpose, "run", "median_example.yaml", *SMALL, "--run-dir", str(tmp_path / "run")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert [r[0] for r in rows(tmp_path / "run" / "results.csv")[1:]] == ["argmax", "com", "median"]
