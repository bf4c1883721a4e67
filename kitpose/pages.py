"""Markdown pages that quote the program: a command fills a marked block with what it printed.

A page (``docs/results.md``) holds, where a command's tables belong::

    <!-- kitpose:study_dark -->
    ... written by `kitpose study recipes/study_dark.yaml --page docs/results.md` ...
    <!-- /kitpose:study_dark -->

and the command replaces what lies between the two lines, so the numbers a page quotes are
the numbers the code printed, never numbers typed by hand.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from kitpose.errors import RunError
from kitpose.files import write_atomic


def markers(key: str) -> tuple[str, str]:
    """The opening and closing lines of block ``key``."""
    return f"<!-- kitpose:{key} -->", f"<!-- /kitpose:{key} -->"


def check(page: str | Path, key: str) -> str:
    """The page's text, when it has exactly one block ``key``; otherwise a one-line error
    naming the page and the lines to add (called before long work starts)."""
    page = Path(page)
    start, end = markers(key)
    try:
        content = page.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunError(f"{page}: cannot read the page ({exc.strerror or exc})") from None
    if content.count(start) != 1 or content.count(end) != 1 or content.index(start) > content.index(end):
        raise RunError(f"{page}: no block '{key}' to fill",
                       hint=f"put the lines '{start}' and '{end}' where its tables go")
    return content


def fill(page: str | Path, key: str, text: str, images: Sequence[Path] = ()) -> None:
    """Replace block ``key`` of ``page`` with ``text``; ``images`` are copied next to the page
    as ``KEY.png`` (the first) or ``KEY-STEM.png`` and linked below the text."""
    page = Path(page)
    content = check(page, key)
    start, end = markers(key)
    block = text.strip() + "\n"
    for number, image in enumerate(p for p in images if p.is_file()):
        name = f"{key}.png" if number == 0 else f"{key}-{image.stem}.png"
        shutil.copyfile(image, page.parent / name)
        block += f"\n![{key}: {image.stem}]({name})\n"
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    block = nest_headings(block, _level_above(head))
    write_atomic(page, f"{head}{start}\n{block}{end}{tail}")


def _headings(lines: list[str]) -> list[tuple[int, int]]:
    """``(line number, level)`` of every Markdown heading in ``lines``, code blocks aside."""
    found, fenced = [], False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.append((number, len(line) - len(line.lstrip("#"))))
    return found


def _level_above(text: str) -> int:
    """The level of the last Markdown heading in ``text`` (0 without one), code blocks aside."""
    found = _headings(text.splitlines())
    return found[-1][1] if found else 0


def nest_headings(text: str, parent: int) -> str:
    """``text``'s headings moved so that its top level sits just under a heading of level
    ``parent`` (a block filled under ``### Section`` gets ``####`` headings); code blocks
    are left as they are."""
    lines = text.split("\n")
    found = _headings(lines)
    if not found:
        return text
    shift = parent + 1 - min(level for _, level in found)
    for number, level in found:
        lines[number] = "#" * min(6, max(1, level + shift)) + lines[number][level:]
    return "\n".join(lines)
