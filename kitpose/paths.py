"""Where a recipe may write: names and paths it gives are kept inside the run directory.

A recipe is shared like code but must not act like code: every file a component writes
is named relative to the run directory and may not leave it, and every name that ends
up as a file or key name (the run name, component and group member keys) is restricted
to a safe character set.

Components declare a parameter that names an output file with the :data:`RunPath`
annotation; ``kitpose check`` then refuses an absolute path or one with ``..`` before
anything is built, and at run time :func:`run_path` resolves it inside the run directory.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from kitpose.errors import RunError


class RunPath(str):
    """Annotation for a parameter naming a file inside the run directory (``metrics.jsonl``)."""


#: letters, digits, ``_``, ``-``, ``.`` and ``@``; starts with a letter, digit or ``_``
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$")


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot be used as a file or key name, or None when it can."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not SAFE_NAME.match(value) or ".." in value:
        return (f"{value!r} is not a safe name: use letters, digits, '_', '-', '.' or '@' "
                "(at most 128, no '..', not starting with '.' or '-')")
    return None


def path_problem(value: object) -> str | None:
    """Why ``value`` cannot name a file inside the run directory, or None when it can."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty relative path"
    if "\x00" in value:
        return "contains a NUL byte"
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or value.startswith("~"):
        return f"{value!r} is absolute; give a path relative to the run directory"
    if ".." in posix.parts or ".." in windows.parts:
        return f"{value!r} leaves the run directory ('..')"
    return None


def run_path(run_dir: str | Path, relative: str, *, what: str = "path") -> Path:
    """``relative`` inside ``run_dir``; raises :class:`RunError` when it would leave it
    (also through a symbolic link already in the run directory)."""
    problem = path_problem(relative)
    root = Path(run_dir).resolve()
    target = (root / relative).resolve()
    if problem is None and target != root and root not in target.parents:
        problem = f"{relative!r} leaves the run directory (through a link)"
    if problem:
        raise RunError(f"{what} {problem}", file=str(run_dir))
    return target
