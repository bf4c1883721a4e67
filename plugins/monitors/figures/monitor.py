"""The ``figures`` monitor: pictures of a run in its directory, no server needed.

After each validation it writes ``predictions.png`` (a few validation samples, one
column per decoder, predicted skeleton red, ground truth cyan) and ``heatmaps.png``
(ground-truth and predicted heatmaps over the images); after each validation and
at the end, ``curves.png`` (loss parts, learning rate, throughput, and every
validation metric per decoder). ``show`` names the tensors drawn (see
:mod:`kitpose_plugins.monitors.figures.show`). Drawing and writing happen on a background
thread; ``close`` waits for the last pictures.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path

from kitpose.errors import KitposeError, ParameterError
from kitpose.monitor import Monitor, RunInfo, Snapshot
from kitpose.paths import RunPath, run_path

from kitpose_plugins.monitors.figures.guard import LatestJobs, OnceWarner, never_raises
from kitpose_plugins.monitors.figures.series import Curves, StepFilter
from kitpose_plugins.monitors.figures.show import show_names

log = logging.getLogger("kitpose.figures")

_GROUND_TRUTH_TEXT = (170, 150, 0)  # a darker cyan: readable on white


def _check_png_name(key: str, value: str) -> str:
    """A file name ending in .png; where it may go (inside the run directory) is the
    ``RunPath`` annotation's business, checked with the recipe."""
    name = str(value)
    if not name.endswith(".png") or name.startswith("."):
        error = ParameterError(f"figures: {key} must be a file name ending in .png, got {value!r}",
                               hint=f"e.g. {key}: {key}.png")
        error.param = key
        raise error
    return name


class FiguresMonitor(Monitor):
    """PNGs in the run directory: predictions on validation samples and training curves."""

    def __init__(self, samples: int = 4, every: int = 1, predictions: RunPath = "predictions.png",
                 heatmaps: RunPath = "heatmaps.png", curves: RunPath = "curves.png", dpi: int = 100,
                 wait: float = 60.0, show: dict[str, str | None] | None = None) -> None:
        if int(samples) < 1:
            raise ParameterError(f"figures: samples must be at least 1, got {samples}")
        if int(every) < 1:
            raise ParameterError(f"figures: every must be at least 1 step, got {every}")
        self.samples = int(samples)
        self.every = int(every)
        self.show = show_names("figures", show)
        self._keep = StepFilter(self.every)
        self.files = {"predictions": _check_png_name("predictions", predictions),
                      "heatmaps": _check_png_name("heatmaps", heatmaps),
                      "curves": _check_png_name("curves", curves)}
        self.dpi = int(dpi)
        self.wait = float(wait)
        self.curves = Curves()
        self._warn = OnceWarner(log)
        self._dir: Path | None = None
        self._paths: dict[str, Path] = {}
        self._title = ""
        self._skeleton: tuple[tuple[int, int], ...] = ()
        self._jobs = LatestJobs("kitpose-figures", self._job_failed)

    # -- hooks ------------------------------------------------------------------------------
    @never_raises
    def on_start(self, run: RunInfo) -> None:
        self._dir = Path(run.dir)
        try:  # each file inside the run directory, even through a link already there
            self._paths = {key: run_path(self._dir, name, what=f"figures: {key}")
                           for key, name in self.files.items()}
        except KitposeError as exc:
            self._warn("path", f"{exc}; no pictures are written")
            return
        self._title = str(run.name)
        self._skeleton = tuple(run.skeleton or ())

    @never_raises
    def on_step(self, step: int, epoch: int, scalars: Mapping[str, float]) -> None:
        if self._keep(step):
            self.curves.add_step(step, scalars)

    @never_raises
    def on_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
                 snapshot: Snapshot | None = None) -> None:
        self.curves.add_epoch(epoch, metrics)
        self._submit_curves()
        if snapshot is not None:
            self._jobs.submit("samples", lambda: self._write_samples(epoch, snapshot))

    @never_raises
    def on_end(self, results: Mapping[str, Mapping[str, float]], table: str) -> None:
        self._submit_curves()

    @never_raises
    def close(self) -> None:
        if not self._jobs.stop(self.wait):
            self._warn("close", f"figures: pictures not finished after {self.wait:g} s; left unwritten")

    # -- work on the background thread ------------------------------------------------------
    def _target(self, key: str) -> Path | None:
        if self._dir is None:
            self._warn("no-dir", "figures: the run directory is unknown (on_start was not called); "
                                 "no pictures are written")
            return None
        return self._paths.get(key)  # none when on_start refused the path

    def _submit_curves(self) -> None:
        frozen = copy.deepcopy(self.curves)  # the training thread keeps appending
        self._jobs.submit("curves", lambda: self._write_curves(frozen))

    def _write_curves(self, curves: Curves) -> None:
        from kitpose_plugins.monitors.figures.curves import plot_curves

        path = self._target("curves")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            plot_curves(curves, path, title=self._title, dpi=self.dpi)

    def _write_samples(self, epoch: int, snapshot: Snapshot) -> None:
        import numpy as np

        from kitpose_plugins.monitors.figures.curves import write_png
        from kitpose_plugins.monitors.figures.draw import RED, grid, header, snapshot_panels

        panels = snapshot_panels(snapshot, self.samples, self._skeleton, self.show)
        path = self._target("predictions")
        if path is None or not panels:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if "skeletons" in panels:
            legend = [(f"epoch {epoch}", (60, 60, 60)), ("red: predicted", RED),
                      ("cyan: ground truth", _GROUND_TRUTH_TEXT)]
            write_png(path, header(panels["skeletons"], legend))
        maps = [panels[k] for k in ("target", "heatmaps") if k in panels]
        if maps:
            names = [("top: ground truth", _GROUND_TRUTH_TEXT), ("bottom: predicted", RED)] \
                if len(maps) == 2 else [("predicted" if "heatmaps" in panels else "ground truth", RED)]
            stacked = grid([[m] for m in maps], pad=0)
            target = self._target("heatmaps")
            if target is not None:
                write_png(target, header(np.ascontiguousarray(stacked),
                                         [(f"epoch {epoch} heatmaps", (60, 60, 60))] + names))

    def _job_failed(self, key: str, exc: BaseException) -> None:
        self._warn(f"job:{key}", f"figures: cannot write the {key} pictures: {type(exc).__name__}: {exc}")
