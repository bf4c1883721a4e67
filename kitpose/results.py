"""Results tables: one row per branch (decoder), one column per metric."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path

from kitpose.files import write_atomic


def columns(results: Mapping[str, Mapping[str, float]]) -> list[str]:
    return list(dict.fromkeys(k for row in results.values() for k in row))


def markdown(results: Mapping[str, Mapping[str, float]], *, first: str = "decoder") -> str:
    """A Markdown table of ``{row: {column: value}}``."""
    cols = columns(results)
    lines = ["| " + " | ".join([first, *cols]) + " |", "|" + "---|" * (len(cols) + 1)]
    for row, values in results.items():
        cells = [_fmt(values.get(c)) for c in cols]
        lines.append("| " + " | ".join([row, *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(results: Mapping[str, Mapping[str, float]], *, first: str = "decoder") -> str:
    cols = columns(results)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([first, *cols])
    for row, values in results.items():
        writer.writerow([row, *[values.get(c, "") for c in cols]])
    return out.getvalue()


def write(results: Mapping[str, Mapping[str, float]], folder: Path, *, stem: str = "results",
          per_joint: Mapping[str, Mapping[str, list[float]]] | None = None) -> str:
    """Write ``results.md``, ``results.csv`` (and per-joint JSON); return the Markdown."""
    table = markdown(results)
    write_atomic(folder / f"{stem}.md", table)
    write_atomic(folder / f"{stem}.csv", to_csv(results))
    if per_joint:
        write_atomic(folder / f"{stem}_per_joint.json", json.dumps(per_joint, indent=1))
    return table


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
