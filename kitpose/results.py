"""Results tables: one row per branch (decoder), one column per metric."""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
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
          joint_names: Sequence[str] = (),
          per_group: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None) -> str:
    """Write ``results.md`` and ``results.csv``; return the main table's Markdown.

    With ``per_joint`` (``{branch: {metric: [value per joint]}}``) also per-joint tables in
    ``results.md`` and ``results_per_joint.csv``; with ``per_group`` (``{branch: {"MPJPE by
    action": {group: value}}}``) tables per group in ``results.md`` and ``results_per_group.csv``.
    """
    table = markdown(results)
    rows = per_joint_rows(per_joint or {}, joint_names)
    groups = per_group_rows(per_group or {})
    write_atomic(folder / f"{stem}.md", table + (per_group_markdown(groups) if groups else "")
                 + (per_joint_markdown(rows) if rows else ""))
    write_atomic(folder / f"{stem}.csv", to_csv(results))
    if groups:
        _write_rows(folder / f"{stem}_per_group.csv", ["decoder", "metric", "group", "value"], groups)
    if rows:
        _write_rows(folder / f"{stem}_per_joint.csv", ["decoder", "metric", "joint", "value"], rows)
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


def per_group_rows(per_group: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[tuple[str, str, str, float]]:
    """``(branch, title, group, value)`` for every value of ``{branch: {title: {group: value}}}``."""
    return [(branch, title, group, float(value)) for branch, titles in per_group.items()
            for title, values in titles.items() for group, value in values.items()]


def per_group_markdown(rows: Sequence[tuple[str, str, str, float]]) -> str:
    """One Markdown table per title ("MPJPE by action"): a row per group, a column per branch."""
    return _tables(rows, "Per group", lambda title: title.split(" by ", 1)[1] if " by " in title else "group")


def per_joint_markdown(rows: Sequence[tuple[str, str, str, float]]) -> str:
    """One Markdown table per metric: a row per joint, a column per branch."""
    return _tables(rows, "Per joint", lambda metric: "joint")


def _tables(rows: Sequence[tuple[str, str, str, float]], heading: str, first: Callable[[str], str]) -> str:
    """A ``## heading`` and, per title of ``(branch, title, row, value)`` rows, a table whose
    rows are ``row`` (first column named ``first(title)``) and whose columns are the branches."""
    parts = [f"\n## {heading}\n"]
    for title in dict.fromkeys(title for _, title, _, _ in rows):
        cells: dict[str, dict[str, float]] = {}
        for branch, name, row, value in rows:
            if name == title:
                cells.setdefault(row, {})[branch] = value
        parts.append(f"\n### {title}\n\n" + markdown(cells, first=first(title)))
    return "".join(parts)


def _write_rows(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(path, out.getvalue())


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
