"""``errors.npz``: what every test number of a run is made of, per test sample and joint.

The test pass keeps, for every branch (decoder) and every metric that is a mean over
(sample, joint) entries, the entries themselves (:class:`kitpose.metric.PerSample`) and the
dataset index of each sample. Two decoders of one run, or two runs scored on the same test
images, can then be compared sample by sample (``kitpose study``'s paired intervals).

Layout (``numpy.load``): ``index`` ``[N]``, ``joint_names`` ``[K]``, and per number
``values/BRANCH/METRIC`` ``[N, K]`` (float64), ``counted/BRANCH/METRIC`` ``[N, K]`` (bool);
``root`` lists the ``BRANCH/METRIC`` keys whose number is the square root of the mean (RMSE).
A number scored on other samples than ``index`` names (a metric that skipped batches, or
test batches without an ``index``) is left out: it could not be paired image by image.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kitpose.files import write_atomic
from kitpose.metric import PerSample

FILE = "errors.npz"
MAPS = "heatmaps.npz"


@dataclass
class SampleErrors:
    """One run's ``errors.npz``: ``numbers[branch][metric]`` is a :class:`PerSample` of arrays."""

    index: np.ndarray
    joint_names: tuple[str, ...] = ()
    numbers: dict[str, dict[str, PerSample]] = field(default_factory=dict)

    def get(self, branch: str, metric: str) -> PerSample | None:
        """The entries of ``metric`` on ``branch``, or None when the run did not keep them."""
        return self.numbers.get(branch, {}).get(metric)


def write(folder: str | Path, index: Any, samples: Mapping[str, Mapping[str, PerSample]],
          joint_names: Sequence[str] = ()) -> Path:
    """Write ``errors.npz`` into ``folder`` (whole or not at all) and return its path."""
    order = _numpy(index).astype(np.int64).reshape(-1)
    arrays: dict[str, np.ndarray] = {"index": order, "joint_names": np.asarray(list(joint_names), dtype=str)}
    roots = []
    for branch, numbers in samples.items():
        for metric, entry in numbers.items():
            if len(entry.values) != order.size:  # scored on other samples than the index names: unpairable
                continue
            key = f"{branch}/{metric}"
            arrays[f"values/{key}"] = _numpy(entry.values).astype(np.float64)
            arrays[f"counted/{key}"] = _numpy(entry.counted).astype(bool)
            if entry.root:
                roots.append(key)
    arrays["root"] = np.asarray(roots, dtype=str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = Path(folder) / FILE
    write_atomic(path, buffer.getvalue())
    return path


def read(folder: str | Path) -> SampleErrors:
    """Load a run directory's ``errors.npz`` (FileNotFoundError when the run has none)."""
    with np.load(Path(folder) / FILE, allow_pickle=False) as data:
        roots = set(data["root"].tolist())
        out = SampleErrors(index=data["index"], joint_names=tuple(data["joint_names"].tolist()))
        for name in data.files:
            if not name.startswith("values/"):
                continue
            key = name[len("values/"):]
            branch, metric = key.split("/", 1)
            out.numbers.setdefault(branch, {})[metric] = PerSample(
                data[name], data[f"counted/{key}"], root=key in roots)
    return out


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


@dataclass
class HeatmapNames:
    """Where a test flow holds what ``heatmaps.npz`` keeps: ``tensors`` maps ``heatmaps``,
    ``keypoints`` and ``visible`` to the flow's names; ``encoder`` is the component whose
    ``to_image`` maps decoded cells to pixels (empty when the flow calls none)."""

    tensors: dict[str, str]
    encoder: str


def heatmap_names(flow: Any) -> HeatmapNames | None:
    """The names of the decoders' input maps and of the metrics' ``target`` and ``visible``
    in a test flow; None when it decodes no heatmaps or scores no targets."""
    decoder = next((n for n in flow.nodes if n.kind == "decoder" and n.method is None and "heatmaps" in n.inputs), None)
    metric = next((n for n in flow.nodes if n.is_metric and "target" in n.inputs), None)
    if decoder is None or metric is None:
        return None
    tensors = {"heatmaps": decoder.inputs["heatmaps"], "keypoints": metric.inputs["target"]}
    if "visible" in metric.inputs:
        tensors["visible"] = metric.inputs["visible"]
    mapper = next((n.component for n in flow.nodes if n.method == "to_image"), "")
    return HeatmapNames(tensors, mapper)


def write_heatmaps(folder: str | Path, index: Any, tensors: Mapping[str, Any], encoder: str) -> Path:
    """Write ``heatmaps.npz``: ``heatmaps`` ``[N, K, (d,) h, w]`` (float32), ``keypoints`` and
    ``visible`` as the metrics read them, ``index`` and the name of the ``encoder`` whose
    ``to_image`` the flow calls."""
    arrays = {key: _numpy(value) for key, value in tensors.items()}
    order = _numpy(index).astype(np.int64).reshape(-1)
    arrays["index"] = order if order.size == len(arrays["heatmaps"]) else np.arange(len(arrays["heatmaps"]))
    arrays["encoder"] = np.asarray(encoder)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = Path(folder) / MAPS
    write_atomic(path, buffer.getvalue())
    return path
