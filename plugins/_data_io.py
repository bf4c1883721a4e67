"""Reading dataset files with errors that name the file and the record.

Every problem with a user's data raises :class:`DataError` (a
:class:`~kitpose.errors.KitposeError`), so the command line prints one line such as
``annotations/train.json: annotations[3] (id 1207): keypoint 5 is NaN; fix the
record or set skip_invalid: true``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from kitpose.errors import KitposeError

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
    """An image as H x W x 3 uint8 RGB; a missing or undecodable file raises :class:`DataError`."""
    import cv2

    file = str(path)
    image = cv2.imread(file, cv2.IMREAD_COLOR)
    if image is None:
        if not Path(file).is_file():
            raise DataError("image not found", file=file, path=record or None,
                            hint="check image_dir, or set skip_invalid: true to skip and count")
        raise DataError("cannot decode the image (corrupt or not an image)", file=file,
                        path=record or None, hint="replace the file, or set skip_invalid: true")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_or_skip(load: Any, index: int, size: int, *, skip: bool, counter: "SkipCounter", what: str,
                 file: str, reason: Any = None) -> dict[str, Any]:
    """``load(index)``; when ``skip`` is set, a bad record is counted and the next one is loaded.

    ``reason(error)`` names the kind of problem a skipped record had (default: its message).
    """
    index = int(index) + (size if int(index) < 0 else 0)
    if not 0 <= index < size:
        raise IndexError(f"{what} {index} out of range ({size})")
    for attempt in range(size):
        try:
            return load((index + attempt) % size)
        except DataError as exc:
            if not skip:
                raise
            counter.add(reason(exc) if reason else exc.message, f"{exc.file} ({exc.path})")
    raise DataError(f"every {what} was skipped: no usable image", file=file, hint="check image_dir")


class SkipCounter:
    """Counts skipped records by reason; warns once per reason so a run log shows them."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.counts: dict[str, int] = {}

    def add(self, reason: str, example: str) -> None:
        if reason not in self.counts:
            import warnings

            warnings.warn(f"{self.owner}: skipping samples: {reason} (first: {example})", stacklevel=3)
        self.counts[reason] = self.counts.get(reason, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __repr__(self) -> str:
        return f"SkipCounter({self.counts})"
