"""Every decoder on a finished run's predicted test heatmaps (``kitpose lab --run RUN_DIR``).

The run's test pass kept the maps its decoders read, the true keypoints and their
visibility (``heatmaps.npz``, see :mod:`kitpose.samples`). The truth is mapped to heatmap
cells with the run's own encoder (the component whose ``to_image`` its test flow calls,
built from the run's resolved recipe), and every decoder is scored against it on the
visible joints, in cells.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

import kitpose
from kitpose import samples
from kitpose.errors import RunError, first_line


def load(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """The run's maps ``[N, K, h, w]``, true keypoints in cells ``[N, K, 2]``, visibility
    ``[N, K]`` and encoder; a one-line error when the run kept no maps."""
    folder = Path(run_dir)
    path = folder / samples.MAPS
    if not path.is_file():
        raise RunError(f"{folder}: no {samples.MAPS}: the run kept no test heatmaps",
                       hint="run its recipe with test.keep_heatmaps=true")
    with np.load(path, allow_pickle=False) as data:
        maps, points = data["heatmaps"], data["keypoints"]
        visible = data["visible"] if "visible" in data.files else np.ones(points.shape[:2])
        name = str(data["encoder"])
    encoder = build_encoder(folder, name)
    if maps.ndim != 4:
        raise RunError(f"{path}: the maps are {maps.ndim - 2}D volumes; the lab decodes 2D heatmaps only")
    cells = encoder.to_heatmap(torch.from_numpy(points[..., :2]).double()).numpy() if encoder is not None else points
    return maps, cells, np.asarray(visible).reshape(points.shape[:2]) > 0, encoder


def build_encoder(folder: Path, name: str) -> Any:
    """The component ``name`` of the run's resolved recipe, built; None when the flow maps
    no cells to pixels (then the kept keypoints are already in cells)."""
    if not name:
        return None
    from omegaconf import OmegaConf

    recipe = folder / "recipe.resolved.yaml"
    try:
        spec = OmegaConf.to_container(OmegaConf.load(recipe)).get("components", {}).get(name)
    except (OSError, ValueError) as exc:
        raise RunError(f"{recipe}: cannot read the run's recipe ({first_line(str(exc))})") from None
    if not isinstance(spec, Mapping) or "use" not in spec:
        raise RunError(f"{recipe}: components.{name} is not a component", hint="is this a kitpose run directory?")
    params = {k: v for k, v in spec.items() if k not in ("use", "kind")}
    return kitpose.build(spec.get("kind") or "encoder", spec["use"], **params)


def score(decoders: Mapping[str, Any], maps: np.ndarray, cells: np.ndarray, visible: np.ndarray
          ) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Mean, median and 90th percentile error (cells) of every decoder on the visible joints;
    ``{decoder: reason}`` for those that cannot read these maps."""
    table, skipped = {}, {}
    heatmaps = torch.from_numpy(np.ascontiguousarray(maps))
    for name, decoder in decoders.items():
        try:
            with torch.no_grad():
                found = decoder(heatmaps=heatmaps)["keypoints"][..., :2].double().numpy()
        except Exception as exc:
            skipped[name] = first_line(str(exc)) or type(exc).__name__
            continue
        if found.shape != cells.shape:
            skipped[name] = f"gives {found.shape[1]} points per sample for {cells.shape[1]} joints"
            continue
        error = np.linalg.norm(found - cells, axis=-1)[visible]
        table[name] = {"mean": float(np.mean(error)), "median": float(np.median(error)),
                       "p90": float(np.percentile(error, 90))}
    return table, skipped
