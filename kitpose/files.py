"""Files written whole or not at all.

Every file of a run directory (checkpoints, results, figures, the recipe) is written to
a temporary name next to it and renamed into place, so a kill or a full disk leaves the
previous version, never half a file; a failed write removes its temporary file. The
temporary names (``.NAME.XXXX.partial.EXT``) keep the extension, for writers that pick
the format from it, and :func:`remove_leftovers` clears those a kill left behind.
:func:`truncation` tells a cut-off image file, which OpenCV would decode without a word.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL = ".partial"


@contextmanager
def replacing(path: str | Path, *, sync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it replaces
    ``path`` (``sync``: flushed to disk first), otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{PARTIAL}{path.suffix}", dir=path.parent)
    os.fchmod(fd, 0o666 & ~UMASK)  # the mode open() would give, not mkstemp's owner-only 0600
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        if sync:
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: read once, at import (before any writer thread starts): reading it means setting it
UMASK = _read_umask()


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all."""
    with replacing(path) as temporary:
        temporary.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete the temporary files in ``folder`` of writes that a kill cut short."""
    removed = []
    for leftover in Path(folder).glob(f".*{PARTIAL}*"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


#: trailing bytes some writers leave after a JPEG's end-of-image marker
_JPEG_PADDING = b"\x00\xff \t\r\n"


def truncation(data: bytes) -> str | None:
    """Why ``data`` is a cut-off JPEG or PNG, or None. OpenCV decodes such files without a
    word (the missing part comes out grey), so the end markers are checked: a JPEG must end
    with its end-of-image marker (FF D9, padding allowed), a PNG must hold its IEND chunk."""
    if data[:3] == b"\xff\xd8\xff":
        if not data.rstrip(_JPEG_PADDING).endswith(b"\xff\xd9"):
            return "truncated JPEG (no end-of-image marker FF D9)"
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if data.rfind(b"IEND", max(0, len(data) - 1024)) < 0:
            return "truncated PNG (no IEND chunk)"
    return None
