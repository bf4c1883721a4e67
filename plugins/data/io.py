"""Reading dataset files with errors that name the file and the record.

Every problem with a user's data raises :class:`DataError` (a
:class:`~kitpose.errors.KitposeError`), so the command line prints one line such as
``annotations/train.json: annotations[3] (id 1207): keypoint 5 is NaN; fix the
record or set skip_invalid: true``.

With ``skip_invalid: true`` a dataset leaves bad records out of its index when it is
built (bad annotations, missing images: counted, reported once by :class:`SkipCounter`);
an image that turns out corrupt or truncated only when loaded comes back as an invalid
sample that :func:`kitpose.data.collate` drops and counts (:func:`load_checked`). No
record is ever replaced by another, so none is scored twice.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kitpose.errors import KitposeError
from kitpose.files import truncation

SKIP_HINT = "fix the record or set skip_invalid: true to skip and count such samples"


class DataError(KitposeError):
    """A dataset file or record is missing, unreadable or invalid."""


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON annotation file; empty, missing or corrupt files raise :class:`DataError`."""
    file = str(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError("annotation file not found", file=file,
                        hint="check ann_file (relative paths start from the current folder)") from None
    except OSError as exc:
        raise DataError(f"cannot read the annotation file: {exc.strerror or exc}", file=file) from None
    if not raw.strip():
        raise DataError("the annotation file is empty", file=file,
                        hint="point ann_file at a JSON annotation file")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise DataError(f"not valid JSON{where}: {getattr(exc, 'msg', exc)}", file=file,
                        hint="the file is truncated or not a JSON annotation file") from None


def read_image(path: str | os.PathLike[str], record: str = "") -> np.ndarray:
    """An image as H x W x 3 uint8 RGB.

    A missing, unreadable, truncated (JPEG, PNG) or undecodable file raises
    :class:`DataError` naming the file and ``record``.
    """
    import cv2

    file = str(path)
    try:
        data = Path(file).read_bytes()
    except FileNotFoundError:
        raise DataError("image not found", file=file, path=record or None,
                        hint="check image_dir, or set skip_invalid: true to skip and count") from None
    except OSError as exc:
        raise DataError(f"cannot read the image: {exc.strerror or exc}", file=file, path=record or None,
                        hint="check the file, or set skip_invalid: true to skip and count") from None
    cut = truncation(data)
    if cut:
        raise DataError(f"{cut}: the file is cut off", file=file, path=record or None,
                        hint="replace the file, or set skip_invalid: true")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise DataError("cannot decode the image (corrupt or not an image)", file=file,
                        path=record or None, hint="replace the file, or set skip_invalid: true")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def missing_files(folder: Path, names: Iterable[str]) -> set[str]:
    """Those of ``names`` (paths relative to ``folder``) that are not files, found by listing
    each folder once rather than asking for every file (fast for 100,000 images)."""
    listings: dict[Path, set[str] | None] = {}
    missing = set()
    for name in names:
        path = folder / name
        parent = path.parent
        if parent not in listings:
            try:
                listings[parent] = {e.name for e in os.scandir(parent) if not e.is_dir()}
            except OSError:
                listings[parent] = None
        listing = listings[parent]
        if listing is None or path.name not in listing:
            missing.add(name)
    return missing


def load_checked(load: Callable[[int], dict[str, Any]], index: int, size: int, *, skip: bool,
                 what: str) -> dict[str, Any]:
    """``load(index)``. With ``skip``, a record that turns out bad only when loaded (a corrupt
    or truncated image) comes back as ``{INVALID_KEY: reason}``: :func:`kitpose.data.collate`
    drops it from its batch and counts it, so no other sample is ever returned in its place."""
    from kitpose.data import INVALID_KEY

    index = int(index) + (size if int(index) < 0 else 0)
    if not 0 <= index < size:
        raise IndexError(f"{what} {index} out of range ({size})")
    try:
        return load(index)
    except DataError as exc:
        if not skip:
            raise
        return {INVALID_KEY: str(exc).split("; ")[0], "index": index}


class SkipCounter:
    """Counts the records a dataset leaves out, by reason, and reports them once."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def add(self, reason: str, example: str) -> None:
        """Count one record left out for ``reason``; ``example`` names it (the first is kept)."""
        self.first.setdefault(reason, example)
        self.counts[reason] = self.counts.get(reason, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reasons(self) -> str:
        """Why records were skipped: how many for each reason, and the first of each."""
        return "; ".join(f"{n} {reason} (first: {self.first[reason]})" for reason, n in self.counts.items())

    def summary(self, kept: int) -> str:
        """One line: how many records were skipped, why, and the first of each kind."""
        return f"{self.owner}: skipped {self.total} of {self.total + kept} records (skip_invalid): {self.reasons()}"

    def report(self, kept: int) -> None:
        """Say once, on the console and in the run's log, what was skipped (nothing if none)."""
        if not self.total:
            return
        line = self.summary(kept)
        print(f"kitpose: warning: {line}", file=sys.stderr, flush=True)
        logging.getLogger("kitpose").info(line)

    def __repr__(self) -> str:
        return f"SkipCounter({self.counts})"
