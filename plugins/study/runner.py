"""Run the recipes a study lists, one after another, and combine their results.

A study recipe::

    kitpose: 1
    name: study_dark
    study:
      runs:
        - {recipe: hrnet_quant.yaml, label: {model: HRNet, encoding: w/ quant}}
        - {recipe: hrnet_dark.yaml,  label: {model: HRNet, encoding: w/o quant}}
      overrides: [train.epochs=4]          # for every run
      metrics: [PCKh@0.1, PCKh@0.5, RMSE]  # columns of the combined table
      chart: PCKh@0.1                      # the metric drawn in study.png

Every run writes its own run directory under the study folder. Running the same command
again skips finished runs and resumes an interrupted one from its last checkpoint.
"""
from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kitpose.errors import RecipeError
from kitpose.recipe import load_recipe


def _slug(label: Mapping[str, Any]) -> str:
    text = "_".join(str(v) for v in label.values())
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower() or "run"


def _runs(study: Mapping[str, Any], file: str) -> list[dict[str, Any]]:
    runs = study.get("runs")
    if not isinstance(runs, list) or not runs:
        raise RecipeError("a study needs a non-empty list of runs", file=file, path="study.runs",
                          hint="add study.runs: [{recipe: NAME.yaml, label: {model: ...}}]")
    out = []
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping) or "recipe" not in run:
            raise RecipeError("a study run needs 'recipe'", file=file, path=f"study.runs[{i}]")
        label = run.get("label") or {"recipe": Path(str(run["recipe"])).stem}
        if not isinstance(label, Mapping):
            raise RecipeError("label must be a mapping, e.g. {model: HRNet}", file=file,
                              path=f"study.runs[{i}].label")
        out.append({"recipe": str(run["recipe"]), "label": dict(label),
                    "overrides": list(run.get("overrides") or [])})
    return out


def _locate(name: str, study_file: Path) -> str:
    candidate = study_file.parent / name
    return str(candidate) if candidate.is_file() else name


def read_results(folder: Path) -> dict[str, dict[str, float]]:
    with open(folder / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {row.pop("decoder"): {k: float(v) for k, v in row.items() if v != ""} for row in rows}


def run_study(path: str, overrides: Iterable[str] = (), *, folder: str | None = None,
              fresh: bool = False) -> Path:
    """Run (or resume) every run of the study; write study.md, study.csv and study.png."""
    from kitpose.engine import run_recipe

    study_recipe = load_recipe(path)
    study = study_recipe.select("study")
    if not isinstance(study, Mapping):
        raise RecipeError("not a study recipe: it has no 'study' section", file=study_recipe.file,
                          path="study", hint="see recipes/study_dark.yaml")
    runs = _runs(study, study_recipe.file)
    shared = [*(study.get("overrides") or []), *overrides]
    root = Path(folder) if folder else Path(study_recipe.select("runs_dir", "runs") or "runs") / study_recipe.name
    run_dirs = [root / f"{i + 1:02d}-{_slug(run['label'])}" for i, run in enumerate(runs)]
    if fresh:  # only what this study writes: --dir may name a folder holding other work
        for item in [*run_dirs, *(root / f"study.{ext}" for ext in ("md", "csv", "png"))]:
            if item.is_dir():
                shutil.rmtree(item)
            elif item.exists():
                item.unlink()
    root.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[dict[str, Any], dict[str, dict[str, float]]]] = []
    for run, run_dir in zip(runs, run_dirs):
        recipe = _locate(run["recipe"], Path(study_recipe.file))
        options = [*shared, *run["overrides"]]
        if (run_dir / "results.csv").is_file():
            print(f"study: {run_dir.name} is done; skipping")
        else:
            resume = str(run_dir) if (run_dir / "checkpoints" / "last.pt").is_file() else None
            print(f"study: {'resuming' if resume else 'running'} {run_dir.name} ({recipe})", flush=True)
            run_recipe(recipe, options, resume=resume, run_dir=None if resume else str(run_dir))
        rows.append((run["label"], read_results(run_dir)))
    metrics = list(study.get("metrics") or [])
    write_tables(rows, root, metrics)
    chart = study.get("chart") or (metrics[0] if metrics else None)
    if chart:
        draw_chart(rows, root / "study.png", chart)
    print((root / "study.md").read_text(encoding="utf-8"))
    print(f"study: written to {root}")
    return root


def write_tables(rows: Sequence[tuple[dict[str, Any], dict[str, dict[str, float]]]], root: Path,
                 metrics: Sequence[str]) -> None:
    label_keys = list(dict.fromkeys(k for label, _ in rows for k in label))
    if not metrics:
        metrics = list(dict.fromkeys(m for _, res in rows for r in res.values() for m in r))
    header = [*label_keys, "decoder", *metrics]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for label, results in rows:
        for decoder, values in results.items():
            cells = [str(label.get(k, "")) for k in label_keys] + [decoder]
            numbers = [values.get(m) for m in metrics]
            table.append("| " + " | ".join(cells + ["" if v is None else f"{v:.4f}" for v in numbers]) + " |")
            writer.writerow(cells + ["" if v is None else v for v in numbers])
    (root / "study.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    (root / "study.csv").write_text(buffer.getvalue(), encoding="utf-8")


def draw_chart(rows: Sequence[tuple[dict[str, Any], dict[str, dict[str, float]]]], path: Path,
               metric: str) -> None:
    """Grouped bars: one group per run, one bar per decoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    decoders = list(dict.fromkeys(d for _, res in rows for d in res))
    groups = ["\n".join(str(v) for v in label.values()) for label, _ in rows]
    width = 0.8 / max(1, len(decoders))
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 2.4 * len(rows)), 4.0), dpi=120)
    for j, decoder in enumerate(decoders):
        values = [res.get(decoder, {}).get(metric, np.nan) for _, res in rows]
        ax.bar(x + (j - (len(decoders) - 1) / 2) * width, values, width, label=decoder)
    ax.set_xticks(x, groups)
    ax.set_ylabel(metric)
    keys = list(dict.fromkeys(k for label, _ in rows for k in label))  # the study's own labels
    ax.set_title(f"{metric} per {', '.join(keys + ['decoder'])}")
    ax.legend(ncols=min(4, len(decoders)), fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
