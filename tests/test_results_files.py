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


def test_a_study_collects_per_group_results_as_mean_and_sd_over_seeds(tmp_path: Path) -> None:
    from kitpose_plugins.study.runner import Run, write_per_group

    runs = []
    for model, base in (("ResNet", 50.0), ("HRNet", 40.0)):
        for seed in (1, 2):
            folder = tmp_path / f"{model}{seed}"
            folder.mkdir()
            per_group = {"output": {"MPJPE by action": {"Walking": base + seed, "Sitting": base + 10 * seed,
                                                        "(mean)": base + 5.5 * seed}}}
            results.write({"output": {"MPJPE": base}}, folder, per_group=per_group)
            runs.append(Run("r.yaml", {"model": model, "seed": seed}, [], folder))
    plain = tmp_path / "plain"
    plain.mkdir()
    results.write(RESULTS, plain)  # a run without groups adds nothing
    runs.append(Run("r.yaml", {"model": "none", "seed": 1}, [], plain))
    text = write_per_group(runs, tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "study_per_group.csv")))
    assert len(rows) == 12 and list(rows[0]) == ["model", "seed", "decoder", "metric", "group", "value"]
    assert rows[0] == {"model": "ResNet", "seed": "1", "decoder": "output", "metric": "MPJPE by action",
                       "group": "Walking", "value": "51.0"}
    assert "## Per group" in text and "### MPJPE by action" in text
    assert "| model | decoder | Walking | Sitting | (mean) |" in text
    # Sitting over seeds 1 and 2: 60 and 70 for ResNet, 50 and 60 for HRNet; sd = 7.0711
    assert "| ResNet | output | 51.5000 ± 0.7071 | 65.0000 ± 7.0711 | 58.2500 ± 3.8891 |" in text
    assert "| HRNet | output | 41.5000 ± 0.7071 | 55.0000 ± 7.0711 | 48.2500 ± 3.8891 |" in text
    assert "none" not in text
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_per_group(runs[-1:], empty) == "" and not (empty / "study_per_group.csv").exists()
