"""Run the recipes a study lists, one after another (once per seed), and combine their results.

A study recipe::

    kitpose: 1
    name: study_dark
    study:
      runs:
        - {recipe: hrnet_quant.yaml, label: {model: HRNet, encoding: w/ quant}}
        - {recipe: hrnet_dark.yaml,  label: {model: HRNet, encoding: w/o quant}}
      seeds: [1314, 1, 2]                  # optional: every run once per seed
      overrides: [train.epochs=4]          # for every run
      metrics: [PCKh@0.1, PCKh@0.5, RMSE]  # columns of the combined table
      chart: PCKh@0.1                      # the metric drawn in study.png
      claims:                              # optional: judged from paired intervals
        - {metric: PCKh@0.1, better: {decoder: dark}, than: {decoder: standard}, for_each: [encoding]}

Every run writes its own run directory under the study folder. Running the same command
again skips finished runs and resumes an interrupted one from its last checkpoint.
``study.md`` holds the table (mean ± sd over seeds), the claims with their intervals and
verdicts (see :mod:`kitpose_plugins.study.claims`), per-group tables (metrics with
``groups``, such as Human3.6M's actions) and the per-joint files; ``study.csv`` one row per
run and decoder, ``study_claims.csv``, ``study_per_group.csv`` and ``study_per_joint.csv``
the rest.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitpose import pages, samples
from kitpose import results as results_io
from kitpose.errors import RecipeError, RunError, suggestion
from kitpose.files import write_atomic
from kitpose.recipe import load_recipe
from kitpose_plugins.study.claims import SEED, Cell, Claim, check_values, judge, parse_claims
from kitpose_plugins.study.stats import Side, caption


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


def read_run_rows(folder: Path, file: str) -> list[dict[str, str]]:
    """A run's ``results_per_joint.csv`` or ``results_per_group.csv`` rows (decoder, metric,
    joint or group, value); none if absent."""
    path = folder / file
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@dataclass
class Run:
    """One run of the study: its recipe, label (with ``seed`` when the study has seeds),
    overrides and folder."""

    recipe: str
    label: dict[str, Any]
    overrides: list[str]
    folder: Path

    @property
    def factors(self) -> dict[str, str]:
        """The label without the seed: what the runs of one table row share."""
        return {k: str(v) for k, v in self.label.items() if k != SEED}

    @property
    def seed(self) -> str:
        return str(self.label.get(SEED, ""))


def _seeds(study: Mapping[str, Any], file: str) -> list[int] | None:
    seeds = study.get("seeds")
    if seeds is None:
        return None
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise RecipeError("seeds must be a non-empty list of integers", file=file, path="study.seeds",
                          hint="write seeds: [1314, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise RecipeError("seeds must be different from each other", file=file, path="study.seeds")
    return list(seeds)


def plan_runs(study: Mapping[str, Any], file: str, root: Path) -> list[Run]:
    """Every run of the study, once per seed when it lists ``seeds``, with its folder."""
    seeds = _seeds(study, file)
    out = []
    for i, run in enumerate(_runs(study, file)):
        recipe = _locate(run["recipe"], Path(file))
        if seeds is None:
            out.append(Run(recipe, run["label"], run["overrides"], root / f"{i + 1:02d}-{_slug(run['label'])}"))
            continue
        if SEED in run["label"]:
            raise RecipeError("a study with seeds: gives every run its seed; leave 'seed' out of the labels",
                              file=file, path=f"study.runs[{i}].label.seed")
        for seed in seeds:
            out.append(Run(recipe, {**run["label"], SEED: seed}, [*run["overrides"], f"seed={seed}"],
                           root / f"{i + 1:02d}-{_slug(run['label'])}-seed{seed}"))
    return out


def run_study(path: str, overrides: Iterable[str] = (), *, folder: str | None = None,
              fresh: bool = False, page: str | None = None) -> Path:
    """Run (or resume) every run of the study; write study.md, study.csv, study.png and,
    with claims, study_claims.csv; with per-joint results, study_per_joint.csv and .png."""
    from kitpose.engine import run_recipe
    from kitpose.plan import branch_labels, check_recipe

    overrides = list(overrides)
    own = [o for o in overrides if o.lstrip("+~").startswith("study.")]  # the study's own settings
    study_recipe = load_recipe(path, own)
    study = study_recipe.select("study")
    if not isinstance(study, Mapping):
        raise RecipeError("not a study recipe: it has no 'study' section", file=study_recipe.file,
                          path="study", hint="see recipes/study_dark.yaml")
    shared = [*(study.get("overrides") or []), *(o for o in overrides if o not in own)]
    root = Path(folder) if folder else Path(study_recipe.select("runs_dir", "runs") or "runs") / study_recipe.name
    runs = plan_runs(study, study_recipe.file, root)
    factors = [*dict.fromkeys(k for run in runs for k in run.factors), "decoder"]
    claims = parse_claims(study.get("claims"), factors, study_recipe.file)
    metrics = list(study.get("metrics") or [])
    for i, claim in enumerate(claims):
        if metrics and claim.metric not in metrics:
            raise RecipeError(f"'{claim.metric}' is not one of the study's metrics{suggestion(claim.metric, metrics)}",
                              file=study_recipe.file, path=f"study.claims[{i}].metric",
                              hint="metrics: " + ", ".join(metrics))
    if page:
        pages.check(page, study_recipe.name)
    branches: dict[tuple, list[str]] = {}
    for run in runs:  # every run's recipe, before hours of training; and the decoders it will test
        key = (run.recipe, tuple([*shared, *run.overrides]))
        if key not in branches:
            test = check_recipe(run.recipe, [*shared, *run.overrides]).flows.get("test")
            branches[key] = list(branch_labels(test)) if test is not None else []
    if claims:
        expected = [Cell({**run.factors, "decoder": decoder}, run.seed, str(run.folder))
                    for run in runs for decoder in branches[(run.recipe, tuple([*shared, *run.overrides]))]]
        check_values(claims, expected, study_recipe.file)
    if fresh:  # only what this study writes: --dir may name a folder holding other work
        for item in [*(run.folder for run in runs), *(root / name for name in OUTPUTS)]:
            if item.is_dir():
                shutil.rmtree(item)
            elif item.exists():
                item.unlink()
    root.mkdir(parents=True, exist_ok=True)
    done = 0
    times = RunTimes(root / "study_times.json")
    for run in runs:
        if (run.folder / "results.csv").is_file():
            print(f"study: {run.folder.name} is done; skipping")
            done += 1
            continue
        resume = str(run.folder) if (run.folder / "checkpoints" / "last.pt").is_file() else None
        print(f"study: {'resuming' if resume else 'running'} {run.folder.name} ({run.recipe})", flush=True)
        with times.measure(run.folder.name):
            run_recipe(run.recipe, [*shared, *run.overrides], resume=resume,
                       run_dir=None if resume else str(run.folder))
    if done:
        print(f"study: {done} of {len(runs)} runs were already done")
    results = [(run, read_results(run.folder)) for run in runs]
    text = write_tables(results, root, metrics)
    write_atomic(root / "study.md", text)  # the tables first: judging the claims reads more files
    if claims:
        text += judge_claims(claims, results, root, seeds=len({run.seed for run in runs}))
    grouped = write_per_group(runs, root)
    if grouped:
        text += grouped
    joints = write_per_joint(runs, root, study.get("chart") or (metrics[0] if metrics else None))
    if joints:
        text += f"\nPer joint: {', '.join(joints)}.\n"
    text += f"\n{times.summary([run.folder.name for run in runs])}\n"
    write_atomic(root / "study.md", text)
    chart = study.get("chart") or (metrics[0] if metrics else None)
    if chart:
        draw_chart(results, root / "study.png", chart)
    print(text)
    if page:
        pages.fill(page, study_recipe.name, text, [root / "study.png", root / "study_per_joint.png"])
        print(f"study: tables written into {page}")
    print(f"study: written to {root}")
    return root


class RunTimes:
    """Seconds each run of the study took, kept in ``study_times.json`` (a resumed run adds
    the time of each part), so the study can say how long it took on this machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started
            write_atomic(self.path, json.dumps(self.seconds, indent=1))

    def summary(self, names: Sequence[str]) -> str:
        known = [self.seconds[n] for n in names if n in self.seconds]
        if not known:
            return "Run time: not recorded (runs made before the study kept times)."
        total = sum(known)
        runs = "1 run" if len(names) == 1 else f"{len(names)} runs"
        what = runs if len(known) == len(names) else f"{len(known)} of {runs} (the others not recorded)"
        each = (f"{known[0] / 60:.1f} min" if len(known) == 1
                else f"{min(known) / 60:.1f}-{max(known) / 60:.1f} min each")
        return f"Run time: {int(total // 3600)} h {int(total % 3600 // 60)} min {int(total % 60)} s for {what}, {each}."


#: what a study writes in its folder (besides the runs' own folders)
OUTPUTS = ("study.md", "study.csv", "study.png", "study_claims.csv", "study_per_group.csv", "study_per_joint.csv",
           "study_per_joint.png", "study_times.json")


def _groups(results: Sequence[tuple[Run, dict[str, dict[str, float]]]]) -> dict[tuple, list[dict[str, float]]]:
    """``{(factors..., decoder): [metrics of each seed's run]}`` in the study's order."""
    groups: dict[tuple, list[dict[str, float]]] = {}
    for run, rows in results:
        for decoder, values in rows.items():
            groups.setdefault((tuple(run.factors.items()), decoder), []).append(values)
    return groups


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return mean, sd


def write_tables(results: Sequence[tuple[Run, dict[str, dict[str, float]]]], root: Path,
                 metrics: Sequence[str]) -> str:
    """``study.csv`` (a row per run and decoder) and the Markdown table, mean ± sd over seeds."""
    label_keys = list(dict.fromkeys(k for run, _ in results for k in run.label))
    if not metrics:
        metrics = list(dict.fromkeys(m for _, res in results for r in res.values() for m in r))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*label_keys, "decoder", *metrics])
    for run, rows in results:
        for decoder, values in rows.items():
            writer.writerow([str(run.label.get(k, "")) for k in label_keys] + [decoder]
                            + ["" if values.get(m) is None else values[m] for m in metrics])
    write_atomic(root / "study.csv", buffer.getvalue())
    factor_keys = [k for k in label_keys if k != SEED]
    groups = _groups(results)
    replicated = any(len(runs) > 1 for runs in groups.values())
    header = [*factor_keys, "decoder", *metrics] + (["seeds"] if replicated else [])
    rows = []
    for (factors, decoder), per_seed in groups.items():
        cells = [dict(factors).get(k, "") for k in factor_keys] + [decoder]
        for metric in metrics:
            cells.append(_cell([v[metric] for v in per_seed if v.get(metric) is not None], replicated))
        rows.append(cells + ([str(len(per_seed))] if replicated else []))
    text = results_io.table(header, rows)
    if replicated:
        seeds = list(dict.fromkeys(run.seed for run, _ in results))
        text += f"\nMean ± standard deviation over the seeds ({', '.join(seeds)}); `seeds`: runs per row.\n"
    return text


def judge_claims(claims: Sequence[Claim], results: Sequence[tuple[Run, dict[str, dict[str, float]]]],
                 root: Path, *, seeds: int) -> str:
    """Judge every claim from the runs' ``errors.npz``; write ``study_claims.csv`` and return
    the Markdown section."""
    cells = [Cell({**run.factors, "decoder": decoder}, run.seed, str(run.folder))
             for run, rows in results for decoder in rows]
    kept: dict[str, samples.SampleErrors] = {}

    def side(cell: Cell, metric: str) -> Side:
        if cell.run not in kept:
            try:
                kept[cell.run] = samples.read(cell.run)
            except FileNotFoundError:
                raise RunError(f"{cell.run} has no {samples.FILE}: its test pass kept no per-sample errors",
                               hint="rerun the study with --fresh (runs made before kitpose kept them)") from None
        entry = kept[cell.run].get(cell.factors["decoder"], metric)
        if entry is None:
            raise RunError(f"{cell.run}: no per-sample values of {metric} for decoder "
                           f"'{cell.factors['decoder']}' in {samples.FILE}",
                           hint="claims need metrics that give per_sample() (PCK, PCKh, AUC, RMSE, EPE, MPJPE ...) "
                                "scored on every test sample, and test batches that carry their 'index'")
        return Side.from_entries(kept[cell.run].index, entry.values, entry.counted, entry.root)

    lines = ["", "## Claims", "", "| claim | for | difference | 95% interval | verdict | seeds |",
             "|---|---|---|---|---|---|"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["claim", "for", "metric", "difference", "low", "high", "verdict", "seeds", "images"])
    for claim in claims:
        for judgement in judge(claim, cells, side):
            where = ", ".join(f"{k} {v}" for k, v in judgement.group.items()) or "all"
            r = judgement.result
            if r is None:
                lines.append(f"| {claim.text()} | {where} | | | {judgement.note} | |")
                writer.writerow([claim.text(), where, claim.metric, "", "", "", judgement.note, "", ""])
                continue
            lines.append(f"| {claim.text()} | {where} | {r.difference:+.4f} | [{r.low:+.4f}, {r.high:+.4f}] | "
                         f"{r.verdict} | {r.seeds} |")
            writer.writerow([claim.text(), where, claim.metric, r.difference, r.low, r.high, r.verdict,
                             r.seeds, r.images])
    write_atomic(root / "study_claims.csv", buffer.getvalue())
    return "\n".join([*lines, "", caption(seeds), ""])


def _write_run_rows(runs: Sequence[Run], rows: Sequence[tuple[Run, dict[str, str]]], path: Path,
                    column: str) -> list[str]:
    """``path``: the runs' ``(decoder, metric, column, value)`` rows, each after its run's
    labels; returns the label keys."""
    label_keys = list(dict.fromkeys(k for run in runs for k in run.label))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*label_keys, "decoder", "metric", column, "value"])
    for run, row in rows:
        writer.writerow([str(run.label.get(k, "")) for k in label_keys]
                        + [row["decoder"], row["metric"], row[column], row["value"]])
    write_atomic(path, buffer.getvalue())
    return label_keys


def _cell(values: Sequence[float], replicated: bool) -> str:
    """A table cell: mean ± sd over seeds, the one value, or empty."""
    if not values:
        return ""
    return "{:.4f} ± {:.4f}".format(*_mean_sd(values)) if replicated else f"{values[0]:.4f}"


def write_per_group(runs: Sequence[Run], root: Path) -> str:
    """``study_per_group.csv`` from the runs' per-group results (Human3.6M's actions, ...) and
    the Markdown section: per metric, a row per table row's factors and decoder, a column per
    group, mean ± sd over seeds. Empty when no run has per-group results."""
    rows = [(run, row) for run in runs for row in read_run_rows(run.folder, "results_per_group.csv")]
    if not rows:
        return ""
    label_keys = _write_run_rows(runs, rows, root / "study_per_group.csv", "group")
    factor_keys = [k for k in label_keys if k != SEED]
    parts = ["", "## Per group", ""]
    for title in dict.fromkeys(row["metric"] for _, row in rows):
        values: dict[tuple, dict[str, list[float]]] = {}
        for run, row in rows:
            if row["metric"] == title and row["value"] != "":
                key = (tuple(run.factors.get(k, "") for k in factor_keys), row["decoder"])
                values.setdefault(key, {}).setdefault(row["group"], []).append(float(row["value"]))
        groups = list(dict.fromkeys(row["group"] for _, row in rows if row["metric"] == title))
        replicated = any(len(v) > 1 for cells in values.values() for v in cells.values())
        table = [[*factors, decoder, *(_cell(cells.get(group, []), replicated) for group in groups)]
                 for (factors, decoder), cells in values.items()]
        parts += [f"### {title}", "", results_io.table([*factor_keys, "decoder", *groups], table).rstrip("\n"), ""]
    return "\n".join(parts) + "\nPer group: study_per_group.csv (every run).\n"


def write_per_joint(runs: Sequence[Run], root: Path, metric: str | None) -> list[str]:
    """``study_per_joint.csv`` from the runs' per-joint results and a chart of ``metric``
    per joint (mean over seeds); returns the files written."""
    rows = [(run, row) for run in runs for row in read_run_rows(run.folder, "results_per_joint.csv")]
    if not rows:
        return []
    _write_run_rows(runs, rows, root / "study_per_joint.csv", "joint")
    written = ["study_per_joint.csv"]
    if metric and any(row["metric"] == metric for _, row in rows):
        draw_per_joint(rows, root / "study_per_joint.png", metric)
        written.append("study_per_joint.png")
    return written


def draw_chart(results: Sequence[tuple[Run, dict[str, dict[str, float]]]], path: Path, metric: str) -> None:
    """Grouped bars: one group per table row's factors, one bar per decoder; the mean over
    seeds with a standard-deviation whisker when the study has seeds."""
    plt = _pyplot()
    import numpy as np

    groups = _groups(results)
    labels = list(dict.fromkeys(factors for factors, _ in groups))
    decoders = list(dict.fromkeys(decoder for _, decoder in groups))
    width = 0.8 / max(1, len(decoders))
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 2.4 * len(labels)), 4.0), dpi=120)
    for j, decoder in enumerate(decoders):
        stats = [_mean_sd([v[metric] for v in groups.get((label, decoder), []) if v.get(metric) is not None] or [np.nan])
                 for label in labels]
        errors = [sd for _, sd in stats] if any(len(g) > 1 for g in groups.values()) else None
        ax.bar(x + (j - (len(decoders) - 1) / 2) * width, [m for m, _ in stats], width, yerr=errors,
               capsize=2 if errors else 0, label=decoder)
    ax.set_xticks(x, ["\n".join(v for _, v in label) for label in labels])
    ax.set_ylabel(metric)
    keys = list(dict.fromkeys(k for label in labels for k, _ in label))  # the study's own labels
    ax.set_title(f"{metric} per {', '.join(keys + ['decoder'])}")
    ax.legend(ncols=min(4, len(decoders)), fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_per_joint(rows: Sequence[tuple[Run, dict[str, str]]], path: Path, metric: str) -> None:
    """One panel per table row's factors: ``metric`` per joint, a line per decoder (mean over seeds)."""
    plt = _pyplot()

    values: dict[tuple, dict[str, dict[str, list[float]]]] = {}
    for run, row in rows:
        if row["metric"] == metric:
            per_decoder = values.setdefault(tuple(run.factors.items()), {}).setdefault(row["decoder"], {})
            per_decoder.setdefault(row["joint"], []).append(float(row["value"]))
    panels = list(values)
    columns = min(2, len(panels))
    lines = -(-len(panels) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(6.5 * columns, 3.2 * lines), dpi=110, squeeze=False,
                             sharey=True)
    for ax, factors in zip(axes.flat, panels):
        for decoder, joints in values[factors].items():
            names = list(joints)
            ax.plot(range(len(names)), [sum(v) / len(v) for v in joints.values()], marker="o", ms=3, label=decoder)
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="x-small")
        ax.set_title(", ".join(v for _, v in factors) or "all", fontsize="small")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", ncols=2)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{metric} per joint" + (" (mean over seeds)" if any(r.seed for r, _ in rows) else ""))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
