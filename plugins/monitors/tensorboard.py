"""The ``tensorboard`` monitor: a run in TensorBoard, next to (or instead of) Visdom.

Writes event files under ``RUN_DIR/tensorboard`` (``tensorboard --logdir runs`` shows every
run):

- scalars: ``train/loss`` (and every loss part), ``train/lr``, ``train/images_per_s`` per
  logged step; ``val/METRIC/DECODER`` per validation, with a "Custom Scalars" layout that
  draws every decoder of a metric on one chart; ``test/METRIC/DECODER`` at the end;
- images: the validation predictions (skeletons, one column per decoder) and heatmaps, as the
  ``figures`` monitor draws them;
- text: the results table;
- HParams: the recipe's scalar settings (``vars``, the optimizer, the epochs and batch sizes)
  with the test results as the metrics, so runs can be compared in the HParams tab.

A resumed run drops the events written after the step it resumes from (``purge_step``).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kitpose.errors import ComponentError
from kitpose.monitor import Monitor, RunInfo, Snapshot
from kitpose.paths import RunPath, run_path
from kitpose_plugins.monitors.figures.show import show_names

log = logging.getLogger("kitpose.tensorboard")

#: recipe sections whose scalar values become hyper-parameters
_HPARAM_SECTIONS = ("vars", "train.optimizer", "train.scheduler")


def hyperparameters(recipe: Mapping[str, Any]) -> dict[str, float | int | str | bool]:
    """The recipe's scalar settings worth comparing runs by, flattened to dotted names."""
    out: dict[str, Any] = {"seed": recipe.get("seed"), "train.epochs": (recipe.get("train") or {}).get("epochs")}
    for split in ("train", "val", "test"):
        out[f"data.{split}.batch_size"] = ((recipe.get("data") or {}).get(split) or {}).get("batch_size")

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}.{key}", item)
        elif isinstance(value, (bool, int, float, str)):
            out[prefix] = value
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            out[prefix] = str(list(value))

    for section in _HPARAM_SECTIONS:
        node: Any = recipe
        for part in section.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            walk(section, node)
    return {k: v for k, v in out.items() if v is not None}


class TensorBoardMonitor(Monitor):
    """Scalars, pictures, the results table and HParams of a run as TensorBoard event files.

    ``dir``: the folder inside the run directory (default ``tensorboard``); ``images``: write
    the validation pictures (default true); ``samples``: how many validation samples they show;
    ``show``: the tensors the pictures draw, as the ``figures`` and ``visdom`` monitors take it.
    """

    def __init__(self, dir: RunPath = RunPath("tensorboard"), images: bool = True, samples: int = 4,
                 show: Mapping[str, Any] | None = None) -> None:
        try:
            import tensorboard  # noqa: F401  (torch's SummaryWriter needs it)
        except ImportError:
            raise ComponentError("monitor 'tensorboard' needs the tensorboard package",
                                 hint='pip install "kitpose[tensorboard]"') from None
        if int(samples) < 1:
            raise ComponentError(f"monitor 'tensorboard': samples must be at least 1, got {samples}")
        self.folder = dir
        self.images = bool(images)
        self.samples = int(samples)
        self.writer: Any = None
        self.recipe: Mapping[str, Any] = {}
        self.skeleton: tuple[tuple[int, int], ...] = ()
        self.show = show_names("tensorboard", show)
        self.laid_out = False

    def on_start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        path = run_path(Path(run.dir), self.folder, what="monitors.tensorboard.dir")
        self.writer = SummaryWriter(log_dir=str(path), purge_step=run.start_step if run.resumed else None)
        self.recipe = run.recipe
        self.skeleton = tuple(run.skeleton)
        self.writer.add_text("recipe", "```yaml\n" + _yaml(run.recipe) + "\n```", run.start_step)

    def on_step(self, step: int, epoch: int, scalars: Mapping[str, float]) -> None:
        if self.writer is None:
            return
        for name, value in scalars.items():
            self.writer.add_scalar(f"train/{name}", value, step)

    def on_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
                 snapshot: Snapshot | None = None) -> None:
        if self.writer is None:
            return
        if not self.laid_out:
            self._layout(metrics)
        for branch, values in metrics.items():
            for name, value in values.items():
                self.writer.add_scalar(f"val/{name}/{branch}", value, epoch)
        if snapshot is not None and self.images:
            self._pictures(epoch, snapshot)
        self.writer.flush()

    def on_end(self, results: Mapping[str, Mapping[str, float]], table: str) -> None:
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        self.writer.add_text("results", table)
        final = {f"test/{name}/{branch}": float(value) for branch, values in results.items()
                 for name, value in values.items() if np.isfinite(value)}
        for tag, value in final.items():
            self.writer.add_scalar(tag, value)
        # written into this run's own event file (SummaryWriter.add_hparams would make a sub-run)
        for summary in hparams(hyperparameters(self.recipe), final):
            self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _layout(self, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """Custom Scalars: one chart per metric with a line per decoder."""
        names = list(dict.fromkeys(name for values in metrics.values() for name in values))
        charts = {name: ["Multiline", [f"val/{name}/{branch}" for branch in metrics]] for name in names}
        self.writer.add_custom_scalars({"validation (every decoder)": charts})
        self.laid_out = True

    def _pictures(self, epoch: int, snapshot: Snapshot) -> None:
        from kitpose_plugins.monitors.figures.draw import snapshot_panels

        panels = snapshot_panels(snapshot, self.samples, self.skeleton, self.show)
        for key, tag in (("skeletons", "predictions"), ("heatmaps", "heatmaps/predicted"),
                         ("target", "heatmaps/target")):
            if key in panels:
                rgb = np.ascontiguousarray(panels[key][..., ::-1])  # the panels are BGR
                self.writer.add_image(tag, rgb, epoch, dataformats="HWC")


def _yaml(config: Any) -> str:
    import yaml

    try:
        return yaml.safe_dump(config, sort_keys=False)
    except yaml.YAMLError:
        return str(config)
