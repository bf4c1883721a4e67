"""Third-party plugins: a real package with a `kitpose` entry point, pip-installed."""
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import kitpose_env, run_cli

PYPROJECT = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "kitpose-thirdparty-demo"
version = "1.2.3"

[project.entry-points.kitpose]
demo = "kp_demo.plugin"
demo_broken = "kp_demo.broken"
demo_typo = "kp_demo.typo"
demo_clash = "kp_demo.clash"
metrics = "kp_demo.clash"

[tool.setuptools]
packages = ["kp_demo"]
"""

PLUGIN = '''
from kitpose import hookimpl


class Halving:
    """Decode at half the arg-max position."""

    outputs = ("keypoints", "scores")

    def __init__(self, factor: float = 0.5):
        self.factor = factor

    def __call__(self, heatmaps):
        b, k, h, w = heatmaps.shape
        scores, index = heatmaps.flatten(2).max(-1)
        import torch
        xy = torch.stack([index % w, index // w], -1).to(heatmaps.dtype) * self.factor
        return {"keypoints": xy, "scores": scores}


@hookimpl
def kitpose_register(registry):
    registry.decoder("demo_halving", "kp_demo.plugin:Halving")
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("thirdparty")
    pkg = root / "src"
    (pkg / "kp_demo").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "kp_demo" / "__init__.py").write_text("")
    (pkg / "kp_demo" / "plugin.py").write_text(PLUGIN)
    (pkg / "kp_demo" / "broken.py").write_text("import kp_demo_missing_dependency\n")
    (pkg / "kp_demo" / "typo.py").write_text(textwrap.dedent("""
        from kitpose import hookimpl

        @hookimpl
        def kitpose_regster(registry):
            pass
    """))
    (pkg / "kp_demo" / "clash.py").write_text(textwrap.dedent("""
        from kitpose import hookimpl

        @hookimpl
        def kitpose_register(registry):
            registry.optimizer("adam", "torch.optim:SGD")
    """))
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-cache-dir", "--target", str(target), str(pkg)], check=True, capture_output=True)
    return target


def env_with(site: Path, **extra):
    env = kitpose_env(**extra)
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    return env


def test_component_appears_in_list_with_provider(site):
    result = run_cli("list", "decoder", env={**env_with(site), "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first = next(i for i, l in enumerate(lines) if l.split()[:1] == ["demo_halving"])
    more = itertools.takewhile(lambda l: l.startswith("    "), lines[first + 1:])  # its wrapped lines
    entry = " ".join([lines[first], *(l.strip() for l in more)])
    assert "Decode at half the arg-max position." in entry
    assert "[demo (kitpose-thirdparty-demo 1.2.3)]" in entry
    # built-ins name their plugin only; every line fits the width, with no reStructuredText left
    assert any(l.rstrip().endswith("[codecs]") for l in lines)
    assert all(len(l) <= 100 for l in lines) and "``" not in result.stdout


def test_broken_plugins_are_isolated_and_reported(site):
    result = run_cli("plugins", env=env_with(site))
    assert result.returncode == 0
    rows = {l.split()[0]: l for l in result.stdout.splitlines()}
    assert "loaded" in rows["demo"]
    assert "broken" in rows["demo_broken"] and "No module named 'kp_demo_missing_dependency'" in rows["demo_broken"]
    assert "unknown hook 'kitpose_regster' (did you mean 'kitpose_register'?)" in rows["demo_typo"]
    assert "optimizer 'adam' is registered twice: by optim (kitpose" in rows["demo_clash"]
    assert "kitpose-thirdparty-demo 1.2.3" in rows["demo_clash"]
    assert "broken" in result.stderr  # told once on stderr as well
    # an entry point named like a built-in plugin does not replace it
    assert "loaded" in rows["metrics"] and "kitpose " in rows["metrics"]
    assert "plugin name 'metrics' is already used by kitpose" in rows["metrics@kitpose-thirdparty-demo"]


def test_third_party_component_runs_in_a_flow(site, toy_recipe, tmp_path):
    env = env_with(site)
    overrides = ["components.decoders.shifted.use=demo_halving", "~components.decoders.shifted.offset",
                 "train.epochs=1"]
    result = run_cli("run", str(toy_recipe), *overrides, "--run-dir", str(tmp_path / "run"), env=env)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "run" / "results.csv").read_text()
    assert table.splitlines()[0].startswith("decoder,") and "shifted," in table


def test_block_and_autoload_switches(site):
    blocked = run_cli("-p", "no:demo", "list", "decoder", env=env_with(site))
    assert "demo_halving" not in blocked.stdout
    plugins = run_cli("-p", "no:demo", "plugins", env=env_with(site)).stdout
    assert any(l.split()[:2] == ["demo", "blocked"] for l in plugins.splitlines())

    off = env_with(site, KITPOSE_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "demo_halving" not in run_cli("list", "decoder", env=off).stdout
    skipped = run_cli("plugins", env=off).stdout
    assert any(l.split()[:2] == ["demo", "skipped"] for l in skipped.splitlines())
    assert any(l.split()[:2] == ["optim", "loaded"] for l in skipped.splitlines())  # built-ins still load
    assert "demo_halving" in run_cli("-p", "demo", "list", "decoder", env=off).stdout


def test_blocking_a_builtin_removes_its_names(site):
    result = run_cli("-p", "no:optim", "list", "optimizer", env={**env_with(site), "COLUMNS": "200"})
    assert "sgd" not in result.stdout
    # with the built-in blocked, the clashing third-party name is no longer a clash
    adam = next(l for l in result.stdout.splitlines() if l.split()[0] == "adam")
    assert "[demo_clash (kitpose-thirdparty-demo 1.2.3)]" in adam
