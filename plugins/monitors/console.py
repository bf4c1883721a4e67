"""Console progress: tqdm on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from kitpose.monitor import Monitor, RunInfo, Snapshot
from kitpose_plugins.monitors.figures.series import StepFilter


def _format(scalars: Mapping[str, float], keys: tuple[str, ...] | None = None) -> str:
    items = [(k, v) for k, v in scalars.items() if keys is None or k in keys]
    return " ".join(f"{k}={v:.4g}" for k, v in items)


def _threads_note(run: RunInfo) -> str:
    """What the run does about a busy machine: the ``threads`` setting's choice, when the
    recipe made one, and passive OpenMP waiting, when kitpose chose it."""
    from kitpose.threads import DEFAULT_REASON, passive_wait_reason

    notes = []
    if run.cpu_threads and run.threads_reason != DEFAULT_REASON:
        notes.append(f"{_count(run.cpu_threads, 'CPU thread')} ({run.threads_reason})")
    reason = passive_wait_reason()
    if reason:
        notes.append(f"{reason}: OMP_WAIT_POLICY=PASSIVE")
    return "; " + "; ".join(notes) if notes else ""


_PLURALS = {"batch": "batches"}


def _count(n: int, word: str) -> str:
    """``1 epoch``, ``8 epochs``, ``2 batches``."""
    return f"{n} {word}" if n == 1 else f"{n} {_PLURALS.get(word, word + 's')}"


class ConsoleMonitor(Monitor):
    """Progress bar with loss, speed and ETA on a terminal; plain lines when output is not a TTY."""

    def __init__(self, every: int = 0, stream: str = "stderr", bar: bool | None = None) -> None:
        self.every = int(every)
        self.stream: IO[str] = sys.stderr if stream == "stderr" else sys.stdout
        self.use_bar = self.stream.isatty() if bar is None else bool(bar)
        self.bar: Any = None
        self.test_bar: Any = None
        self.total = 0
        self.start = time.perf_counter()
        self.first = 0  # the step this process started from (a resumed run starts past 0)
        self.lines = StepFilter(self.every) if self.every else None
        self.last_line = 0.0

    def on_start(self, run: RunInfo) -> None:
        self.total = run.total_steps
        done = run.start_epoch * run.steps_per_epoch
        self.start, self.first = time.perf_counter(), done
        print(f"kitpose: run {run.name} -> {run.dir} ({_count(run.epochs, 'epoch')} x "
              f"{_count(run.steps_per_epoch, 'step')}{_threads_note(run)})", file=self.stream, flush=True)
        if self.use_bar and self.total:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=done, file=self.stream, unit="step",
                            dynamic_ncols=True, desc="train")

    def on_step(self, step: int, epoch: int, scalars: Mapping[str, float]) -> None:
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix_str(_format(scalars, ("loss", "lr", "images_per_s")), refresh=True)
            return
        now = time.perf_counter()
        if self.lines is not None and not self.lines(step):
            return
        if self.lines is None and now - self.last_line < 5.0 and step != self.total:
            return
        self.last_line = now
        eta = (now - self.start) / max(step - self.first, 1) * max(self.total - step, 0)
        print(f"epoch {epoch + 1} step {step}/{self.total} {_format(scalars)} eta {eta:.0f}s",
              file=self.stream, flush=True)

    def on_evaluate(self, stage: str, done: int, total: int) -> None:
        """Validation shows in the training bar's label; the test, after training, gets its own
        bar (the training bar is closed first, so nothing is drawn after the results table)."""
        if not self.use_bar:
            if stage == "test" and (done == 0 or done == total or time.perf_counter() - self.last_line >= 5.0):
                self.last_line = time.perf_counter()
                print(f"test batch {done}/{total}" if done else f"test: {_count(total, 'batch')}",
                      file=self.stream, flush=True)
            return
        if stage == "test":
            if done == 0:
                self.close()
                from tqdm import tqdm

                self.test_bar = tqdm(total=total, file=self.stream, unit="batch", dynamic_ncols=True,
                                     desc="test", leave=False)
            elif self.test_bar is not None:
                self.test_bar.update(done - self.test_bar.n)
            if done == total and self.test_bar is not None:
                self.test_bar.close()
                self.test_bar = None
        elif self.bar is not None:
            self.bar.set_description(f"{stage} {done}/{total}" if done < total else "train", refresh=True)

    def on_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
                 snapshot: Snapshot | None = None) -> None:
        lines = [f"  {branch}: {_format(values)}" for branch, values in metrics.items()]
        text = f"epoch {epoch} validation\n" + "\n".join(lines)
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        for name in ("bar", "test_bar"):
            bar = getattr(self, name)
            if bar is not None:
                bar.close()
                setattr(self, name, None)
