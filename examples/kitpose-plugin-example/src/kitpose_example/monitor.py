"""A monitor that keeps a run's numbers as CSV files in its run directory.

``steps.csv`` holds one row per logged training step (``step, epoch, name, value``) and
``validation.csv`` one row per number of each validation (``epoch, branch, metric,
value``). The long format keeps the columns fixed whatever the recipe logs, and loads
into any spreadsheet or ``pandas.read_csv`` as is.
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from kitpose.monitor import Monitor, RunInfo, Snapshot

log = logging.getLogger(__name__)

HEADERS = {"steps.csv": ("step", "epoch", "name", "value"),
           "validation.csv": ("epoch", "branch", "metric", "value"),
           "test.csv": ("branch", "metric", "value")}


class CsvMonitor(Monitor):
    """Training curves and validation metrics as CSV files in the run directory (long format)."""

    def __init__(self, every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            from kitpose.errors import ParameterError

            raise ParameterError(f"monitor 'csv': every must be a whole number >= 1, got {every!r}")
        self.every = every
        self.folder: Path | None = None
        self.handles: dict[str, IO[str]] = {}
        self.broken = False

    def on_start(self, run: RunInfo) -> None:
        self.folder = Path(run.dir)

    def on_step(self, step: int, epoch: int, scalars: Mapping[str, float]) -> None:
        if step % self.every == 0:
            self.write("steps.csv", [(step, epoch + 1, name, value) for name, value in scalars.items()])

    def on_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
                 snapshot: Snapshot | None = None) -> None:
        self.write("validation.csv", [(epoch, branch, name, value) for branch, row in metrics.items()
                                      for name, value in row.items()])

    def on_end(self, results: Mapping[str, Mapping[str, float]], table: str) -> None:
        self.write("test.csv", [(branch, name, value) for branch, row in results.items()
                                for name, value in row.items()])

    def close(self) -> None:
        for handle in self.handles.values():
            try:
                handle.close()
            except OSError:
                pass
        self.handles.clear()

    def write(self, file: str, rows: Sequence[Sequence[Any]]) -> None:
        """Append rows (a header first in a new file); an error is logged once, never raised."""
        if self.folder is None or self.broken or not rows:
            return
        try:
            handle = self.handles.get(file)
            if handle is None:
                path = self.folder / file
                fresh = not path.exists() or path.stat().st_size == 0
                handle = self.handles[file] = path.open("a", newline="", encoding="utf-8")
                if fresh:
                    csv.writer(handle).writerow(HEADERS[file])
            csv.writer(handle).writerows(rows)
            handle.flush()
        except (OSError, ValueError) as exc:
            self.broken = True
            log.warning("monitor 'csv': cannot write %s in %s (%s); no more CSV rows for this run",
                        file, self.folder, exc)
