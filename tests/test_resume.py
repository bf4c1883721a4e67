"""Resume is exact: real ``kitpose run`` processes, real signals, real files.

A run is held at a chosen point (inside a forward pass, right after an optimizer step,
in validation, in the test phase) by a component of ``tests/toy_signals.py``; the test
then sends SIGINT (or SIGTERM), lets it go on, runs the resume command the run printed,
and compares everything with an uninterrupted run.
"""
from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import kitpose_env, run_cli

TOY = Path(__file__).resolve().parent / "recipes" / "toy.yaml"
ENV = kitpose_env(KITPOSE_PLUGINS="toy_plugin,toy_signals")

# 3 epochs x 4 steps; validation and test are 2 batches each
RECIPE = """\
kitpose: 1
extends: [{toy}]
name: held
deterministic: true
components:
  hold_train: {{use: toy_pause, at_call: {train_call}, ready: {ready}, go: {go}}}
  hold_eval: {{use: toy_pause, at_call: {eval_call}, ready: {ready}, go: {go}}}
flows:
  train:
    - {{call: encoder, in: {{keypoints: keypoints, visible: visible}}, out: {{heatmaps: target, weights: weights}}}}
    - {{call: hold_train, in: {{x: image}}, out: {{x: held_image}}}}
    - {{call: model, in: {{image: held_image}}, out: {{heatmaps: heatmaps}}}}
    - {{call: loss, in: {{pred: heatmaps, target: target, weights: weights}}}}
  test:
    - {{call: hold_eval, in: {{x: image}}, out: {{x: held_image}}}}
    - {{call: model, in: {{image: held_image}}, out: {{heatmaps: heatmaps}}}}
    - {{call: decoders, in: {{heatmaps: heatmaps}}, out: {{keypoints: pred_hm}}}}
    - {{call: encoder.to_image, in: {{xy: pred_hm}}, out: {{result: pred_keypoints}}}}
    - {{call: metrics, in: {{pred: pred_keypoints, target: keypoints, visible: visible, head_size: head_size}}}}
train: {{epochs: 3, log_every: 1}}
"""


def write_recipe(folder: Path, *, train_call: int = 0, eval_call: int = 0) -> Path:
    path = folder / "held.yaml"
    path.write_text(RECIPE.format(toy=TOY, train_call=train_call, eval_call=eval_call,
                                  ready=folder / "ready", go=folder / "go"))
    return path


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kitpose", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def hold_and_signal(process: subprocess.Popen, folder: Path, number: int = signal.SIGINT) -> tuple[str, str]:
    """Wait until the run holds at its pause, signal it, let it go on; returns its output."""
    deadline = time.monotonic() + 120
    while not (folder / "ready").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never reached its pause"
        time.sleep(0.01)
    process.send_signal(number)
    (folder / "go").write_text("")
    out, err = process.communicate(timeout=120)
    return out, err


def resume_command(stderr: str) -> list[str]:
    match = re.search(r"Resume with: kitpose (run --resume \S+)", stderr)
    assert match, stderr
    return shlex.split(match.group(1))


def weights(run: Path, name: str = "last") -> dict:
    return torch.load(run / "checkpoints" / f"{name}.pt", weights_only=True)["model"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def records(run: Path) -> list[dict]:
    """metrics.jsonl without the fields that measure time."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in lines]


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one must equal."""
    folder = tmp_path_factory.mktemp("whole")
    recipe = write_recipe(folder)
    done = run_cli("run", str(recipe), "--run-dir", str(folder / "run"), cwd=folder, env=ENV)
    assert done.returncode == 0, done.stderr
    return folder / "run"


POINTS = {
    # where: (train_call, eval_call, monitor step)
    "inside a forward pass": (6, 0, 0),
    "right after an optimizer step": (0, 0, 6),
    "in validation": (0, 3, 0),
    "in the test phase": (0, 7, 0),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_sigint_anywhere_resumes_to_the_uninterrupted_result(point, whole, tmp_path):
    train_call, eval_call, at_step = POINTS[point]
    recipe = write_recipe(tmp_path, train_call=train_call, eval_call=eval_call)
    extra = [f"+monitors.hold={{use: toy_pause_monitor, at_step: {at_step}, ready: {tmp_path / 'ready'}, "
             f"go: {tmp_path / 'go'}}}"] if at_step else []
    run = tmp_path / "run"
    process = start("run", str(recipe), *extra, "--run-dir", str(run), cwd=tmp_path)
    out, err = hold_and_signal(process, tmp_path)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert not (run / "results.csv").exists()
    command = resume_command(err)
    resumed = run_cli(*command, cwd=tmp_path, env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "results.csv").read_text() == (whole / "results.csv").read_text()
    assert same_weights(weights(run), weights(whole))
    assert same_weights(weights(run, "best"), weights(whole, "best"))
    mine, reference = records(run), records(whole)
    steps = [r["step"] for r in mine if r["kind"] == "step"]
    assert len(steps) == len(set(steps)) == 12  # no replayed step logged twice
    assert mine == reference  # every logged loss and validation, in order


def test_sigterm_stops_at_the_step_boundary_too(whole, tmp_path):
    recipe = write_recipe(tmp_path, train_call=3)
    run = tmp_path / "run"
    process = start("run", str(recipe), "--run-dir", str(run), cwd=tmp_path)
    out, err = hold_and_signal(process, tmp_path, signal.SIGTERM)
    assert process.returncode == 130, err
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert (state["step"], state["batch_in_epoch"]) == (3, 3)  # the held step finished, then it stopped
    assert run_cli(*resume_command(err), cwd=tmp_path, env=ENV).returncode == 0
    assert same_weights(weights(run), weights(whole))


def test_the_printed_resume_command_keeps_the_runs_overrides(tmp_path):
    recipe = write_recipe(tmp_path, train_call=3)
    run = tmp_path / "run"
    process = start("run", str(recipe), "train.epochs=2", "train.optimizer.lr=0.02", "--run-dir", str(run),
                    cwd=tmp_path)
    out, err = hold_and_signal(process, tmp_path)
    assert process.returncode == 130
    given = (run / "recipe.yaml").read_text()
    info = json.loads((run / "run.json").read_text())
    assert info["overrides"] == ["train.epochs=2", "train.optimizer.lr=0.02"]
    command = resume_command(err)
    assert str(recipe) not in " ".join(command)  # the run directory is all it needs
    resumed = run_cli(*command, cwd=tmp_path, env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 epochs x 4 steps" in resumed.stderr
    assert (run / "recipe.yaml").read_text() == given
    after = json.loads((run / "run.json").read_text())
    assert after["overrides"] == info["overrides"] and after["command"] == info["command"]
    assert after["resumes"][0]["changed"] == {}
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert (state["epoch"], state["step"]) == (2, 8)


def interrupted(tmp_path: Path) -> tuple[Path, str]:
    recipe = write_recipe(tmp_path, train_call=3)
    run = tmp_path / "run"
    process = start("run", str(recipe), "--run-dir", str(run), cwd=tmp_path)
    out, err = hold_and_signal(process, tmp_path)
    assert process.returncode == 130, err
    return run, err


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("kitpose: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


def test_resume_refuses_a_changed_recipe_naming_the_keys(tmp_path):
    run, err = interrupted(tmp_path)
    before = {p: p.read_bytes() for p in (run / "recipe.yaml", run / "run.json")}
    changed = run_cli("run", "--resume", str(run), "train.optimizer.lr=0.5", cwd=tmp_path, env=ENV)
    assert changed.returncode == 2
    line = one_error_line(changed)
    assert "train.optimizer.lr (0.01 -> 0.5)" in line
    other = run_cli("run", str(TOY), "--resume", str(run), cwd=tmp_path, env=ENV)
    assert other.returncode == 2
    line = one_error_line(other)
    assert str(TOY) in line and "differs from the run's own recipe" in line
    assert {p: p.read_bytes() for p in before} == before  # nothing of the run was overwritten
    assert not (run / "results.csv").exists()


def test_resume_accepts_the_safe_keys_and_records_them(tmp_path):
    run, err = interrupted(tmp_path)
    longer = run_cli("run", "--resume", str(run), "train.epochs=4", "train.log_every=2", cwd=tmp_path, env=ENV)
    assert longer.returncode == 0, longer.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["resumes"][-1]["changed"] == {"train.epochs": [3, 4], "train.log_every": [1, 2]}
    assert "epochs: 4" in (run / "recipe.yaml").read_text()
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert state["epoch"] == 4


def test_empty_checkpoint_is_one_line_and_leftovers_are_removed(tmp_path):
    run, err = interrupted(tmp_path)
    leftover = run / "checkpoints" / ".last.abc123.partial.pt"
    leftover.write_bytes(b"half a checkpoint")
    resumed = run_cli("run", "--resume", str(run), cwd=tmp_path, env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert not leftover.exists()
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    empty = run_cli("run", "--resume", str(run), cwd=tmp_path, env=ENV)
    assert empty.returncode == 2
    assert "checkpoint is empty (0 bytes)" in one_error_line(empty)


def test_data_error_mid_epoch_saves_progress_and_resumes_exactly(tmp_path):
    """A record that cannot be read stops the run with the dataset's own line, after saving."""
    reference = run_cli("run", str(TOY), "+deterministic=true", "train.epochs=2", "--run-dir",
                        str(tmp_path / "reference"), cwd=tmp_path, env=ENV)
    assert reference.returncode == 0, reference.stderr
    fixed = tmp_path / "fixed"
    flaky = ["+deterministic=true", "train.epochs=2", "data.train.dataset.use=toy_flaky_blobs",
             "+data.train.dataset.bad=5", "+data.train.dataset.fail_on=2", f"+data.train.dataset.fixed={fixed}",
             "+data.train.workers=1"]  # record 5 fails when read the second time: in epoch 2
    run = tmp_path / "run"
    failed = run_cli("run", str(TOY), *flaky, "--run-dir", str(run), cwd=tmp_path, env=ENV)
    assert failed.returncode == 2
    line = one_error_line(failed)
    assert line.startswith("kitpose: error: data/blobs.json: record 5: image blob_5.png not found")
    assert "progress saved at step" in line and f"kitpose run --resume {run}" in line
    assert len(line) < 400  # the dataset's message, not the worker's traceback
    fixed.write_text("")
    resumed = run_cli("run", "--resume", str(run), cwd=tmp_path, env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert same_weights(weights(run), weights(tmp_path / "reference"))


def test_full_disk_mid_run_is_one_line_and_leaves_whole_files(tmp_path):
    run = tmp_path / "run"
    full = run_cli("run", str(TOY), "train.epochs=3", "train.log_every=1", "+monitors.full={use: toy_disk_full, at_step: 6}",
                   "--run-dir", str(run), cwd=tmp_path, env=ENV)
    assert full.returncode == 1, full.stderr
    line = one_error_line(full)
    assert "cannot write" in line and "errno" in line
    assert f"resume with: kitpose run --resume {run}" in line  # epoch 1's checkpoint is kept
    assert len(full.stderr.splitlines()) < 30
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(text) for text in lines)  # whole records only, none cut mid-line
    assert [json.loads(text).get("step") for text in lines if '"step"' in text][-1] == 6


def test_divergence_stops_with_one_line(tmp_path):
    diverging = run_cli("run", str(TOY), "train.optimizer.lr=1.0e6", "train.epochs=3", "--run-dir",
                        str(tmp_path / "run"), cwd=tmp_path, env=ENV)
    assert diverging.returncode == 2
    line = one_error_line(diverging)
    assert "diverged" in line or "the loss is nan" in line or "the loss is inf" in line
    kept = (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert ("the last good checkpoint is kept" in line) == kept
    assert ("no checkpoint was written" in line) == (not kept)


def test_second_ctrl_c_stops_at_once_and_says_what_is_lost(tmp_path):
    recipe = write_recipe(tmp_path, train_call=6)
    run = tmp_path / "run"
    process = start("run", str(recipe), "--run-dir", str(run), cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / "ready").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "progress since the last checkpoint is lost" in err and "Traceback" not in err
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert state["step"] == 4  # epoch 1's checkpoint, untouched by the abort

