"""Console progress (tqdm on a terminal, plain lines otherwise) and ``metrics.jsonl``."""
from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from kitpose.monitor import Monitor, RunInfo, Snapshot
from kitpose.files import write_atomic
from kitpose.paths import RunPath, run_path
from kitpose_plugins._figures_series import StepFilter


def _format(scalars: Mapping[str, float], keys: tuple[str, ...] | None = None) -> str:
    items = [(k, v) for k, v in scalars.items() if keys is None or k in keys]
    return " ".join(f"{k}={v:.4g}" for k, v in items)


class ConsoleMonitor(Monitor):
    """Progress bar with loss, speed and ETA on a terminal; plain lines when output is not a TTY."""

    def __init__(self, every: int = 0, stream: str = "stderr", bar: bool | None = None) -> None:
        self.every = int(every)
        self.stream: IO[str] = sys.stderr if stream == "stderr" else sys.stdout
        self.use_bar = self.stream.isatty() if bar is None else bool(bar)
        self.bar: Any = None
        self.total = 0
        self.start = time.perf_counter()
        self.first = 0  # the step this process started from (a resumed run starts past 0)
        self.lines = StepFilter(self.every) if self.every else None
        self.last_line = 0.0

    def on_start(self, run: RunInfo) -> None:
        self.total = run.total_steps
        done = run.start_epoch * run.steps_per_epoch
        self.start, self.first = time.perf_counter(), done
        print(f"kitpose: run {run.name} -> {run.dir} ({run.epochs} epochs x {run.steps_per_epoch} steps)",
              file=self.stream, flush=True)
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

    def on_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
                 snapshot: Snapshot | None = None) -> None:
        lines = [f"  {branch}: {_format(values)}" for branch, values in metrics.items()]
        text = f"epoch {epoch} validation\n" + "\n".join(lines)
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class JsonlMonitor(Monitor):
    """Append one JSON line per logged step and per validation to ``metrics.jsonl`` in the run directory.

    Every record is one whole line: a write that fails (full disk) is cut back. A resumed
    run first drops what was logged after the point it resumes from, so no step appears twice.
    """

    def __init__(self, file: RunPath = RunPath("metrics.jsonl")) -> None:
        self.file = file
        self.handle: IO[bytes] | None = None

    def on_start(self, run: RunInfo) -> None:
        path = run_path(run.dir, self.file, what="monitors.jsonl.file")
        if run.resumed and path.is_file():
            _keep_before(path, run)
        self.handle = path.open("ab", buffering=0)  # unbuffered: nothing left to flush after a failure

    def _write(self, record: dict[str, Any]) -> None:
        if self.handle is None:
            return
        record["time"] = round(time.time(), 3)
        data = memoryview((json.dumps(record) + "\n").encode("utf-8"))
        start = os.fstat(self.handle.fileno()).st_size
        try:
            while data:
                written = self.handle.write(data) or 0
                if written == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.handle.name)
                data = data[written:]
        except OSError:
            self._cut_back(start)
            raise

    def _cut_back(self, size: int) -> None:
        """Drop a partly written line (the disk filled up mid-write); keep the file's whole lines."""
        handle, self.handle = self.handle, None
        assert handle is not None
        try:
            os.ftruncate(handle.fileno(), size)
        finally:
            handle.close()

    def on_step(self, step: int, epoch: int, scalars: Mapping[str, float]) -> None:
        self._write({"kind": "step", "step": step, "epoch": epoch + 1, **scalars})

    def on_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
                 snapshot: Snapshot | None = None) -> None:
        self._write({"kind": "val", "epoch": epoch, "metrics": metrics})

    def on_end(self, results: Mapping[str, Mapping[str, float]], table: str) -> None:
        self._write({"kind": "test", "metrics": results})

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _keep_before(path: Path, run: RunInfo) -> None:
    """Rewrite ``path`` with the records made before the point the run resumes from."""
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        kind = record.get("kind") if isinstance(record, dict) else None
        if (kind == "step" and record.get("step", 0) <= run.start_step) or \
                (kind == "val" and record.get("epoch", 0) <= run.validated_epochs):
            kept.append(line + "\n")
    write_atomic(path, "".join(kept))
