"""HTML for Visdom text panels: the results table and the run card.

Visdom shows text panels as HTML and does not read Markdown, so the Markdown
results table (pipe table) becomes an HTML table; anything else is shown as
preformatted text. Every piece of user text is escaped.
"""
from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

_TABLE_STYLE = "border-collapse:collapse;font-family:monospace;font-size:13px"
_CELL_STYLE = "border:1px solid #ccc;padding:2px 8px"


def _cells(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|"):
        body = body[:-1]
    return [c.strip() for c in body.split("|")]


def _is_rule(line: str) -> bool:
    cells = _cells(line)
    return bool(cells) and all(c and set(c) <= set("-: ") and "-" in c for c in cells)


def _table(lines: Sequence[str]) -> str:
    head, body = _cells(lines[0]), [_cells(l) for l in lines[2:]]
    align = []
    for rule in _cells(lines[1]):
        right = rule.endswith(":") and not rule.startswith(":")
        align.append("right" if right else "left")

    def row(cells: Iterable[str], tag: str) -> str:
        out = []
        for i, cell in enumerate(cells):
            side = align[i] if i < len(align) else "left"
            out.append(f'<{tag} style="{_CELL_STYLE};text-align:{side}">{html.escape(cell)}</{tag}>')
        return "<tr>" + "".join(out) + "</tr>"

    rows = [row(head, "th")] + [row(cells, "td") for cells in body]
    return f'<table style="{_TABLE_STYLE}">' + "".join(rows) + "</table>"


def markdown_to_html(text: str) -> str:
    """Pipe tables become HTML tables; other lines stay as escaped preformatted text."""
    lines = text.strip("\n").splitlines()
    parts: list[str] = []
    loose: list[str] = []
    i = 0

    def flush_loose() -> None:
        if any(l.strip() for l in loose):
            parts.append("<pre>" + html.escape("\n".join(loose).strip("\n")) + "</pre>")
        loose.clear()

    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and _is_rule(lines[i + 1]):
            end = i + 2
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            flush_loose()
            parts.append(_table(lines[i:end]))
            i = end
        else:
            loose.append(lines[i])
            i += 1
    flush_loose()
    return "".join(parts)


def definition_list(title: str, items: Iterable[tuple[str, object]]) -> str:
    """A small card: a bold title and ``key: value`` lines (escaped)."""
    rows = "".join(f"<tr><td style=\"padding-right:12px;color:#666\">{html.escape(str(k))}</td>"
                   f"<td>{html.escape(str(v))}</td></tr>" for k, v in items)
    return f"<b>{html.escape(title)}</b><table style=\"font-size:13px\">{rows}</table>"
