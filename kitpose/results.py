"""Results tables: one row per branch (decoder), one column per metric."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from kitpose.files import write_atomic


def columns(results: Mapping[str, Mapping[str, float]]) -> list[str]:
    return list(dict.fromkeys(k for row in results.values() for k in row))


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(results: Mapping[str, Mapping[str, float]], *, first: str = "decoder") -> str:
    """A Markdown table of ``{row: {column: value}}``."""
    cols = columns(results)
    return table([first, *cols], [[row, *(_fmt(values.get(c)) for c in cols)] for row, values in results.items()])


def to_csv(results: Mapping[str, Mapping[str, float]], *, first: str = "decoder") -> str:
    cols = columns(results)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([first, *cols])
    for row, values in results.items():
        writer.writerow([row, *[values.get(c, "") for c in cols]])
    return out.getvalue()


def write(results: Mapping[str, Mapping[str, float]], folder: Path, *, stem: str = "results",
          per_joint: Mapping[str, Mapping[str, list[float]]] | None = None,
          joint_names: Sequence[str] = ()) -> str:
    """Write ``results.md`` and ``results.csv`` (with ``per_joint``, ``{branch: {metric: [value
    per joint]}}``, also per-joint tables in ``results.md`` and ``results_per_joint.csv``);
    return the main table's Markdown."""
    table = markdown(results)
    rows = per_joint_rows(per_joint or {}, joint_names)
    write_atomic(folder / f"{stem}.md", table + (per_joint_markdown(rows) if rows else ""))
    write_atomic(folder / f"{stem}.csv", to_csv(results))
    if rows:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["decoder", "metric", "joint", "value"])
        writer.writerows(rows)
        write_atomic(folder / f"{stem}_per_joint.csv", out.getvalue())
    return table


def per_joint_rows(per_joint: Mapping[str, Mapping[str, list[float]]],
                   joint_names: Sequence[str] = ()) -> list[tuple[str, str, str, float]]:
    """``(branch, metric, joint, value)`` for every per-joint value; joints are named by
    ``joint_names`` where it has one name per value, else numbered from 0."""
    rows = []
    for branch, metrics in per_joint.items():
        for metric, values in metrics.items():
            names = list(joint_names) if len(joint_names) == len(values) else [str(i) for i in range(len(values))]
            rows.extend((branch, metric, name, float(value)) for name, value in zip(names, values))
    return rows


def per_joint_markdown(rows: Sequence[tuple[str, str, str, float]]) -> str:
    """One Markdown table per metric: a row per joint, a column per branch."""
    metrics = list(dict.fromkeys(metric for _, metric, _, _ in rows))
    parts = ["\n## Per joint\n"]
    for metric in metrics:
        cells: dict[str, dict[str, float]] = {}
        for branch, name, joint, value in rows:
            if name == metric:
                cells.setdefault(joint, {})[branch] = value
        parts.append(f"\n### {metric}\n\n" + markdown(cells, first="joint"))
    return "".join(parts)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
