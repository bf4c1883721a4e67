"""docs/results.md quotes what the commands print: the default run's table is checked here."""
from pathlib import Path

import pytest

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]


def block(page: str, key: str) -> str:
    start, end = f"<!-- kitpose:{key} -->", f"<!-- /kitpose:{key} -->"
    return page.split(start, 1)[1].split(end, 1)[0].strip()


@pytest.mark.slow
def test_the_default_run_prints_the_table_the_results_page_quotes(tmp_path):
    result = run_cli("run", "recipes/hrnet_dark.yaml", "--run-dir", str(tmp_path / "run"), cwd=ROOT, timeout=3600)
    assert result.returncode == 0, result.stderr
    printed = (tmp_path / "run" / "results.md").read_text().split("\n## Per joint")[0].strip()
    assert printed in result.stdout
    assert block((ROOT / "docs" / "results.md").read_text(), "hrnet_dark") == printed


def test_the_results_page_has_a_block_for_each_command_that_fills_it():
    page = (ROOT / "docs" / "results.md").read_text()
    for key in ("hrnet_dark", "study_dark", "lab"):
        assert page.count(f"<!-- kitpose:{key} -->") == 1 and page.count(f"<!-- /kitpose:{key} -->") == 1
    assert block(page, "hrnet_dark").startswith("| decoder | PCKh@0.1 | PCKh@0.5 | RMSE | EPE |")
