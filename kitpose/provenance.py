"""Which code a run ran: the git commit of the kitpose checkout, and whether it had changes.

Recorded in ``run.json`` (and for every resume), so a number can be traced to the code that
gave it. Only a checkout (an editable install from a git clone) has one; an installed
wheel has its version alone, and git missing or slow simply records nothing.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kitpose

_TIMEOUT = 5.0


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version() -> dict[str, Any] | None:
    """``{"commit": SHA, "dirty": bool, "checkout": PATH}`` when kitpose runs from a git
    checkout, else None. ``dirty``: tracked files differ from the commit (untracked files,
    such as a user's notes, do not count)."""
    root = Path(kitpose.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    if commit is None or status is None:
        return None
    return {"commit": commit.strip(), "dirty": bool(status.strip()), "checkout": str(root)}
