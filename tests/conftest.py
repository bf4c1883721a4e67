"""Shared fixtures. The toy plugin (tests/toy_plugin.py) is loaded for every test,
so the core is tested without the built-in methods."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
os.environ.setdefault("KITPOSE_PLUGINS", "toy_plugin")
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture
def toy_recipe() -> Path:
    return TESTS / "recipes" / "toy.yaml"


@pytest.fixture
def registry():
    from kitpose.plugins import get_registry

    return get_registry()


def kitpose_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["KITPOSE_PLUGINS"] = "toy_plugin"
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m kitpose ARGS`` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "kitpose", *args], cwd=cwd, env=env or kitpose_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli
