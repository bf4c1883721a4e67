"""Results files: the table per decoder, per-joint tables, the study's per-joint outputs."""
import csv
from pathlib import Path

from kitpose import results

RESULTS = {"argmax": {"PCKh@0.1": 0.15, "EPE": 5.1}, "dark": {"PCKh@0.1": 0.29, "EPE": 4.5}}
PER_JOINT = {"argmax": {"PCKh@0.1": [0.1, 0.2, float("nan")], "EPE": [5.0, 5.2, 5.1]},
             "dark": {"PCKh@0.1": [0.3, 0.28, 0.29], "EPE": [4.4, 4.6, 4.5]}}


def test_per_joint_results_go_into_results_md_and_a_csv(tmp_path: Path) -> None:
    printed = results.write(RESULTS, tmp_path, per_joint=PER_JOINT, joint_names=("head", "neck", "hip"))
    assert printed == results.markdown(RESULTS)  # the console shows the main table only
    text = (tmp_path / "results.md").read_text()
    assert text.startswith(printed) and "## Per joint" in text and "### EPE" in text
    assert "| neck | 0.2000 | 0.2800 |" in text and "| hip | nan | 0.2900 |" in text
    rows = list(csv.DictReader(open(tmp_path / "results_per_joint.csv")))
    assert len(rows) == 12 and rows[0] == {"decoder": "argmax", "metric": "PCKh@0.1", "joint": "head", "value": "0.1"}
    # results.csv is the same with or without per-joint values
    other = tmp_path / "plain"
    other.mkdir()
    results.write(RESULTS, other)
    assert (other / "results.csv").read_bytes() == (tmp_path / "results.csv").read_bytes()
    assert not (other / "results_per_joint.csv").exists()


def test_joints_without_names_are_numbered(tmp_path: Path) -> None:
    results.write(RESULTS, tmp_path, per_joint=PER_JOINT, joint_names=("head",))  # names do not fit
    rows = list(csv.DictReader(open(tmp_path / "results_per_joint.csv")))
    assert [r["joint"] for r in rows[:3]] == ["0", "1", "2"]


def test_a_study_collects_per_joint_results_and_draws_them(tmp_path: Path) -> None:
    from kitpose_plugins.study.runner import Run, write_per_joint

    runs = []
    for seed in (1, 2):
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        results.write(RESULTS, folder, per_joint=PER_JOINT, joint_names=("head", "neck", "hip"))
        runs.append(Run("r.yaml", {"model": "HRNet", "seed": seed}, [], folder))
    written = write_per_joint(runs, tmp_path, "PCKh@0.1")
    assert written == ["study_per_joint.csv", "study_per_joint.png"]
    rows = list(csv.DictReader(open(tmp_path / "study_per_joint.csv")))
    assert len(rows) == 24 and list(rows[0]) == ["model", "seed", "decoder", "metric", "joint", "value"]
    assert (tmp_path / "study_per_joint.png").stat().st_size > 10000
