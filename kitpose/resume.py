"""Resuming a run from its own directory.

A run directory holds the recipe it was started with (``recipe.yaml``: merged, with
the command-line overrides applied), so ``kitpose run --resume RUN_DIR`` needs no
recipe and continues the run exactly as it was recorded. A recipe or overrides given
on resume are compared with the run's own: only the keys in :data:`SAFE_ON_RESUME`
(how long to train, how often to log, where to show it, which device) may change, and
the changes are recorded in ``run.json``; any other difference is refused, naming the keys.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitpose.errors import RecipeError, RunError
from kitpose.recipe import Recipe, load_recipe
from kitpose.settings import safe_on_resume

#: dotted keys (glob patterns) a resumed run may change, anything below them too: the
#: settings the schema marks ``resume=True``
SAFE_ON_RESUME: tuple[str, ...] = safe_on_resume()


@dataclass(frozen=True)
class Change:
    """One key whose value differs between the run's recipe and the one given on resume."""

    key: str
    old: Any
    new: Any

    @property
    def safe(self) -> bool:
        return any(fnmatch.fnmatchcase(self.key, pattern) or fnmatch.fnmatchcase(self.key, pattern + ".*")
                   for pattern in SAFE_ON_RESUME)


def run_recipe_file(run_dir: Path) -> Path:
    """The recipe a run directory was started with; a clear error if it is not a run."""
    recipe = run_dir / "recipe.yaml"
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise RunError("nothing to resume: no checkpoints/last.pt", file=str(run_dir),
                       hint="give a run directory made by 'kitpose run'")
    if not recipe.is_file():
        raise RunError("nothing to resume: no recipe.yaml", file=str(run_dir),
                       hint="give a run directory made by 'kitpose run'")
    return recipe


def load_run_recipe(run_dir: Path, overrides: Iterable[str] = ()) -> Recipe:
    """The run's own recipe, with ``overrides`` applied (for the keys that may change)."""
    return load_recipe(run_recipe_file(run_dir), overrides, search_dirs=[])


def changes(old: Recipe, new: Recipe) -> list[Change]:
    """Every key whose resolved value differs, in recipe order (lists compare whole)."""
    before, after = _flat(_with_name(old)), _flat(_with_name(new))
    keys = list(before) + [k for k in after if k not in before]
    missing = object()
    return [Change(k, before.get(k), after.get(k)) for k in keys
            if before.get(k, missing) != after.get(k, missing)]


def check_changes(found: list[Change], run_dir: Path, given: str) -> None:
    """Refuse a resume whose recipe differs from the run's own in a key that is not safe."""
    refused = [c for c in found if not c.safe]
    if not refused:
        return
    shown = ", ".join(f"{c.key} ({_show(c.old)} -> {_show(c.new)})" for c in refused[:4])
    more = f" and {len(refused) - 4} more" if len(refused) > 4 else ""
    raise RecipeError(f"cannot resume {run_dir}: {given} differs from the run's own recipe at "
                      f"{shown}{more}", file=given,
                      hint="only " + ", ".join(SAFE_ON_RESUME) + " may change on resume; start a new "
                           "run for other changes ('kitpose run --resume RUN_DIR' alone continues as recorded)")


def _with_name(recipe: Recipe) -> dict[str, Any]:
    resolved = recipe.resolved()
    resolved["name"] = recipe.name
    return resolved


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
