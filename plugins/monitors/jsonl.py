"""``metrics.jsonl``: one JSON line per logged step, per validation and for the test results."""
from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from kitpose.monitor import Monitor, RunInfo, Snapshot
from kitpose.files import write_atomic
from kitpose.paths import RunPath, run_path


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
