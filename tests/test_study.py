"""`kitpose study`: several runs, one combined table and chart, resumable."""
import csv

from conftest import run_cli


def test_study_runs_combines_and_resumes(tmp_path):
    from conftest import TESTS

    study = TESTS / "recipes" / "toy_study.yaml"
    first = run_cli("study", str(study), "--dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    rows = list(csv.DictReader(open(tmp_path / "study.csv")))
    assert [(r["encoding"], r["decoder"]) for r in rows] == [
        ("plain", "peak"), ("plain", "shifted"), ("wide", "peak"), ("wide", "shifted")]
    assert list(rows[0]) == ["model", "encoding", "decoder", "EPE", "PCK@0.5"]
    assert (tmp_path / "study.png").stat().st_size > 5000
    assert "| tiny | plain | peak |" in (tmp_path / "study.md").read_text()
    # a second call finds both runs done and only rebuilds the table
    (tmp_path / "02-tiny-wide" / "results.csv").unlink()
    again = run_cli("study", str(study), "--dir", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "01-tiny-plain is done; skipping" in again.stdout
    assert "resuming 02-tiny-wide" in again.stdout
    assert list(csv.DictReader(open(tmp_path / "study.csv"))) == rows
    # --fresh starts over, but deletes only what the study wrote in the folder it was given
    (tmp_path / "notes.txt").write_text("mine")
    fresh = run_cli("study", str(study), "--dir", str(tmp_path), "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "running 01-tiny-plain" in fresh.stdout and (tmp_path / "notes.txt").read_text() == "mine"


def test_not_a_study(tmp_path):
    from conftest import TESTS

    result = run_cli("study", str(TESTS / "recipes" / "toy.yaml"), "--dir", str(tmp_path))
    assert result.returncode == 2 and "not a study recipe" in result.stderr
