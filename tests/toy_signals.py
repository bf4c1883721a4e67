"""Test components that stop a real ``kitpose run`` at a chosen point (loaded with ``-p toy_signals``).

``toy_pause`` (a flow node) and ``toy_pause_monitor`` (a monitor, called right after an
optimizer step) hold the run at their N-th call: they create the file ``ready`` and
wait until the test has sent its signal and created ``go``. A pause that has happened
once (``ready`` exists) never happens again, so the resumed run goes through.
"""
from __future__ import annotations

import os
import resource
import signal
import time
from pathlib import Path

import torch

from kitpose import hookimpl
from kitpose.errors import RecipeError
from kitpose.metric import Metric


def _hold(ready: str, go: str) -> None:
    Path(ready).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


class Pause:
    """Pass ``x`` through; at call ``at_call`` (of this process) hold until the test says go."""

    outputs = ("x",)

    def __init__(self, at_call: int = 0, ready: str = "", go: str = "", rank: int | None = None,
                 sleep: float = 0.0, kill: bool = False) -> None:
        self.at_call, self.ready, self.go, self.rank, self.sleep = at_call, ready, go, rank, sleep
        self.kill = kill
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> dict:
        self.calls += 1
        if self.calls == self.at_call and (self.rank is None or self.rank == int(os.environ.get("RANK", 0))):
            if self.kill:  # a rank that dies mid-step
                os.kill(os.getpid(), signal.SIGKILL)
            if self.sleep:  # a rank that is alive but stuck
                time.sleep(self.sleep)
            elif not Path(self.ready).exists():
                _hold(self.ready, self.go)
        return {"x": x}


class PauseMonitor:
    """Hold the run in ``on_step`` (right after the optimizer step) at ``at_step``."""

    def __init__(self, at_step: int, ready: str, go: str) -> None:
        self.at_step, self.ready, self.go = at_step, ready, go

    def on_step(self, step, epoch, scalars):
        if step == self.at_step and not Path(self.ready).exists():
            _hold(self.ready, self.go)


class DiskFull:
    """From step ``at_step`` on, no file may grow past ``spare`` bytes beyond ``file``'s size
    (RLIMIT_FSIZE; the writes then fail with EFBIG as on a full disk)."""

    def __init__(self, at_step: int, file: str = "metrics.jsonl", spare: int = 10) -> None:
        self.at_step, self.file, self.spare = at_step, file, spare
        self.dir: Path | None = None

    def on_start(self, run):
        self.dir = Path(run.dir)

    def on_step(self, step, epoch, scalars):
        if step == self.at_step:
            assert self.dir is not None
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            limit = (self.dir / self.file).stat().st_size + self.spare
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


class FlakyBlobs:
    """Blobs whose sample ``bad`` cannot be read the ``fail_on``-th time it is asked for (counted in
    a file, across worker processes), until the file ``fixed`` exists."""

    provides = ("head_size",)
    joint_names = ("a", "b", "c")
    flip_pairs = ((0, 2),)
    skeleton = ((0, 1), (1, 2))

    def __init__(self, size: int = 32, image_size: int = 16, split: str = "train", bad: int = -1,
                 fail_on: int = 1, fixed: str = "") -> None:
        from toy_plugin import Blobs

        self.blobs = Blobs(size=size, image_size=image_size, split=split)
        self.bad, self.fail_on, self.fixed = bad, fail_on, fixed

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> dict:
        if i == self.bad and not Path(self.fixed).exists():
            counter = Path(self.fixed + ".reads")
            with counter.open("a") as handle:
                handle.write("x")
            if counter.stat().st_size < self.fail_on:
                return self.blobs[i]
            raise RecipeError(f"record {i}: image blob_{i}.png not found", file="data/blobs.json",
                              hint="check image_dir")
        return self.blobs[i]


class Level(Metric):
    """The mean predicted heatmap value: moves with any change of the model, however small."""

    names = ("level",)

    def update(self, heatmaps: torch.Tensor) -> None:
        self.accumulate(level=heatmaps.double().mean((1, 2, 3)))

    def compute(self) -> dict:
        return {"level": float(self.gathered("level").mean())}


@hookimpl
def kitpose_register(registry):
    registry.metric("toy_level", Level)
    registry.backbone("toy_pause", Pause)
    registry.monitor("toy_pause_monitor", PauseMonitor)
    registry.monitor("toy_disk_full", DiskFull)
    registry.dataset("toy_flaky_blobs", FlakyBlobs)

