"""The engine: run directories, determinism, resume, NaN, monitors, checkpoints, DDP."""
import csv
import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, kitpose_env, run_cli
from kitpose.engine import run_recipe
from kitpose.errors import RunError


def code_in(root):
    """What run.json should say of the code in ``root``: its commit and changes, read with git."""
    if not (root / ".git").exists():
        return None
    git = ["git", "-C", str(root)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    changes = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, check=True).stdout
    return {"commit": commit.strip(), "dirty": bool(changes.strip()), "checkout": str(root.resolve())}


def results(folder):
    with open(folder / "results.csv") as handle:
        return {row["decoder"]: row for row in csv.DictReader(handle)}


def test_run_writes_the_whole_run_directory(toy_recipe, tmp_path):
    out = run_recipe(str(toy_recipe), ["train.epochs=2"], run_dir=str(tmp_path / "run"))
    run = tmp_path / "run"
    for name in ("recipe.yaml", "recipe.resolved.yaml", "run.json", "run.log", "metrics.jsonl",
                 "results.md", "results.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert set(out) == {"peak", "shifted"}
    assert out["peak"]["N"] == 16  # every test sample scored once
    table = results(run)
    assert float(table["peak"]["EPE"]) == pytest.approx(out["peak"]["EPE"])
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines if l["kind"] == "val"] == [1, 2]
    assert lines[-1]["kind"] == "test"
    info = json.loads((run / "run.json").read_text())
    assert any(p["name"] == "optim" and p["status"] == "loaded" for p in info["plugins"])
    assert info["code"] == code_in(ROOT)
    log = (run / "run.log").read_text()  # written as the run goes: the start, steps, validations, the test
    for line in ("INFO run toy/run -> ", "INFO epoch 1 step ", "INFO epoch 2 validation", "INFO test: ",
                 "INFO test results"):
        assert line in log, line
    assert "${vars.size}" in (run / "recipe.yaml").read_text()
    assert "${" not in (run / "recipe.resolved.yaml").read_text()


def test_default_run_directory_layout(toy_recipe, tmp_path):
    run_recipe(str(toy_recipe), ["train.epochs=1", f"+runs_dir={tmp_path}"])
    runs = list((tmp_path / "toy").iterdir())
    assert len(runs) == 1 and (runs[0] / "results.md").is_file()


def test_deterministic_runs_give_identical_metrics(toy_recipe, tmp_path):
    a = run_recipe(str(toy_recipe), ["+deterministic=true"], run_dir=str(tmp_path / "a"))
    b = run_recipe(str(toy_recipe), ["+deterministic=true"], run_dir=str(tmp_path / "b"))
    assert a == b


@pytest.mark.parametrize("how", ["interrupt", "kill"])
def test_resume_after_interruption_matches_an_uninterrupted_run(toy_recipe, tmp_path, how):
    base = ["train.epochs=3", "+deterministic=true"]
    whole = run_cli("run", str(toy_recipe), *base, "--run-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    stopper = ["+monitors.stop={use: toy_stopper, at_step: 6, how: %s}" % how]
    cut = run_cli("run", str(toy_recipe), *base, *stopper, "--run-dir", str(tmp_path / "cut"))
    assert cut.returncode != 0
    if how == "interrupt":
        assert cut.returncode == 130
        assert f"--resume {tmp_path / 'cut'}" in cut.stderr
    assert (tmp_path / "cut" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "cut" / "results.csv").exists()
    resumed = run_cli("run", str(toy_recipe), *base, "--resume", str(tmp_path / "cut"))
    assert resumed.returncode == 0, resumed.stderr
    assert results(tmp_path / "cut") == results(tmp_path / "whole")


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(toy_recipe, tmp_path):
    with pytest.raises(RunError, match=r"loss is nan at step 6 \(epoch 2\)"):
        run_recipe(str(toy_recipe), ["+components.loss.nan_at_call=6", "train.epochs=3"], run_dir=str(tmp_path))
    import torch

    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert last["state"]["epoch"] == 1  # the good state after epoch 1


def test_failing_monitor_is_reported_once_and_training_goes_on(toy_recipe, tmp_path, capsys):
    out = run_recipe(str(toy_recipe), ["+monitors.boom={use: toy_boom}", "train.log_every=1"],
                     run_dir=str(tmp_path))
    assert "peak" in out
    err = capsys.readouterr().err
    assert err.count("monitor 'boom' failed") == 1


def test_checkpoint_of_another_recipe_lists_mismatched_keys(toy_recipe, tmp_path):
    run_recipe(str(toy_recipe), ["train.epochs=1"], run_dir=str(tmp_path / "a"))
    run_recipe(str(toy_recipe), ["train.epochs=1", "+components.model.width=4"], run_dir=str(tmp_path / "b"))
    shutil.copy(tmp_path / "b" / "checkpoints" / "last.pt", tmp_path / "a" / "checkpoints" / "last.pt")
    with pytest.raises(RunError, match=r"does not fit this recipe's model: .*shape differs for parts.model"):
        run_recipe(None, ["train.epochs=2"], resume=str(tmp_path / "a"))


def test_unwritable_run_directory_fails_before_training(toy_recipe, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunError, match="cannot write the run directory"):
        run_recipe(str(toy_recipe), [], run_dir=str(blocker / "run"))


def test_nothing_to_resume(toy_recipe, tmp_path):
    with pytest.raises(RunError, match="nothing to resume"):
        run_recipe(str(toy_recipe), [], resume=str(tmp_path))


def test_flip_test_is_a_node_of_the_test_flow(toy_recipe, tmp_path):
    flow = ("+flows.val=[{call: model, in: {image: image}, out: {heatmaps: heatmaps}},"
            " {call: decoders, in: {heatmaps: heatmaps}, out: {keypoints: pred_hm}},"
            " {call: encoder.to_image, in: {xy: pred_hm}, out: {result: pred_keypoints}},"
            " {call: metrics, in: {pred: pred_keypoints, target: keypoints, visible: visible, head_size: head_size}}]")
    flipped = (flow.replace("+flows.val", "flows.test").replace("{heatmaps: heatmaps}, out: {keypoints",
                                                                "{heatmaps: flip_heatmaps}, out: {keypoints")
               .replace("[{call: model, in: {image: image}, out: {heatmaps: heatmaps}},",
                        "[{call: model, in: {image: image}, out: {heatmaps: heatmaps}}, {call: flip_test,"
                        " in: {heatmaps: heatmaps}, out: {heatmaps: flip_heatmaps}},"),
               '+components.flip_test={use: flip_test, encoder: "${components.encoder}", flip_pairs: [[0, 2]]}')
    plain = run_recipe(str(toy_recipe), ["train.epochs=1", flow], run_dir=str(tmp_path / "plain"))
    out = run_recipe(str(toy_recipe), ["train.epochs=1", flow, *flipped], run_dir=str(tmp_path / "flip"))
    def validations(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return [r["metrics"] for r in map(json.loads, lines) if r["kind"] == "val"]

    assert validations("flip") == validations("plain")  # validation has its own flow, without the flip
    assert out["peak"]["N"] == 16 and out["peak"]["EPE"] != plain["peak"]["EPE"]


def test_ddp_with_two_cpu_processes(toy_recipe, tmp_path):
    torchrun = shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert torchrun, "torchrun comes with torch"
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "kitpose", "run", str(toy_recipe),
         "--run-dir", str(tmp_path / "ddp"), "data.test.dataset.size=15"],
        env=kitpose_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, (f"exit {result.returncode}\n--- stdout\n{result.stdout[-1500:]}"
                                    f"\n--- stderr\n{result.stderr[-3000:]}")
    table = results(tmp_path / "ddp")
    # both ranks' shards gathered (8 + 7 samples), none scored twice
    assert float(table["peak"]["N"]) == 15
    assert result.stdout.count("Test results") == 1  # only rank 0 reports and writes


@pytest.mark.parametrize("size", [15, 16, 3])
def test_sampler_shards_cover_every_sample(size):
    from kitpose.distributed import EpochSampler

    def shards(pad):
        return [list(EpochSampler(size, shuffle=True, seed=3, rank=r, world=4, pad=pad)) for r in range(4)]

    scored = sum(shards(pad=False), [])
    assert sorted(scored) == list(range(size))  # evaluation: each sample exactly once
    trained = shards(pad=True)
    assert len({len(s) for s in trained}) == 1  # training: the same number of steps on every rank
    assert set(sum(trained, [])) == set(range(size))


@pytest.mark.parametrize("size, world, pad, drop_last", [
    (15, 4, True, False), (15, 4, False, False), (15, 4, False, True), (16, 1, True, True), (3, 4, False, False)])
def test_sampler_length_matches_its_indices(size, world, pad, drop_last):
    from kitpose.distributed import EpochSampler

    for rank in range(world):
        sampler = EpochSampler(size, shuffle=True, seed=1, batch_size=2, drop_last=drop_last,
                               rank=rank, world=world, pad=pad)
        indices = list(sampler)
        assert len(sampler) == len(indices)
        assert sampler.batches_per_epoch() == -(-len(indices) // 2)


def test_threads_setting_applies_for_the_run_only(toy_recipe, tmp_path):
    import torch

    from kitpose import threads

    before = torch.get_num_threads()
    run_recipe(str(toy_recipe), ["train.epochs=1", "+threads=1"], run_dir=str(tmp_path / "one"))
    assert "INFO 1 CPU threads (threads setting)" in (tmp_path / "one" / "run.log").read_text()
    assert torch.get_num_threads() == before  # given back when the run ends
    # auto: the cores other processes leave free, never more than torch's own count
    count, why = threads.choose("auto", 2)
    assert 1 <= count <= 2 and why.startswith("auto")
    assert threads.choose(None, 2) == (2, "torch's default")
