"""Checks of annotation records, shared by the datasets that read them (``coco``, ``mpii``).

One rule and one wording for each problem, so every dataset rejects the same records
with the same message. A check returns why a record is unusable ('' when it is fine);
:class:`AnnotationRecords` turns that into a :class:`~kitpose_plugins.data.io.DataError`
or, with ``skip_invalid``, into a record left out and counted under the message's text
up to its first ``:`` (``NaN or infinite values``, ``out-of-image keypoint`` ...).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kitpose_plugins.data.io import SKIP_HINT, DataError, SkipCounter, load_checked


def non_finite(keypoints: Any, **others: Any) -> str:
    """Why a record holds NaN or infinite values, or '': the first such row of ``keypoints``,
    else the first such array of ``others`` by name (None, a field the record lacks, passes).
    A caller that ignores the values of unlabelled joints zeroes their rows first."""
    rows = np.asarray(keypoints, dtype=np.float64)
    bad = ~np.isfinite(rows.reshape(len(rows), -1)).all(axis=1)
    if bad.any():
        return f"NaN or infinite values: keypoint {int(np.flatnonzero(bad)[0])}"
    for name, value in others.items():
        if value is not None and not np.isfinite(np.asarray(value, dtype=np.float64)).all():
            return f"NaN or infinite values in {name}"
    return ""


def off_image(points: Any, labelled: Any, width: int, height: int, names: Sequence[str], *,
              first: float = 0.0) -> str:
    """Why a labelled keypoint lies more than one pixel outside a ``width`` x ``height`` image,
    or ''. The image spans ``[first, first + width]`` in x (and the same in y): 0 where
    coordinates are pixel corners (COCO, used as written), -0.5 where they are pixel centres."""
    xy = np.asarray(points)
    x, y = xy[:, 0], xy[:, 1]
    low = first - 1
    off = np.asarray(labelled, dtype=bool) & ((x < low) | (x > first + width + 1) | (y < low)
                                              | (y > first + height + 1))
    if not off.any():
        return ""
    j = int(np.flatnonzero(off)[0])
    return f"out-of-image keypoint: {names[j]} at ({x[j]:g}, {y[j]:g}) on a {width} x {height} image"


class AnnotationRecords:
    """Base of a dataset of people read from one annotation file and a folder of images.

    It holds what such datasets share: a bad record raises :class:`DataError` naming the
    file and the record, or with ``skip_invalid`` is left out and counted (``skipped``,
    reported once); a sample whose image turns out unreadable when loaded is dropped from
    its batch (:func:`~kitpose_plugins.data.io.load_checked`). A subclass fills
    ``keypoints`` (one entry per sample) and defines ``_load(i)``; ``what`` names one
    sample in messages.
    """

    what = "record"
    keypoints: np.ndarray

    def __init__(self, name: str, ann_file: str, image_dir: str, skip_invalid: bool) -> None:
        self.ann_file, self.image_dir = str(ann_file), Path(image_dir)
        self.skip_invalid = bool(skip_invalid)
        self.skipped = SkipCounter(f"{name} {self.ann_file}")

    def _invalid(self, where: str, message: str) -> None:
        """Reject the record at ``where`` (a path in the file) because of ``message``."""
        self._reject(DataError(message, file=self.ann_file, path=where, hint=SKIP_HINT), where)

    def _missing_image(self, name: str, record: str) -> None:
        """Reject ``record``: its image file ``name`` is not in ``image_dir``."""
        file = self.image_dir / name
        self._reject(DataError("image not found", file=str(file), path=record,
                               hint="check image_dir, or set skip_invalid: true to skip and count"),
                     f"{file} ({record})")

    def _reject(self, error: DataError, example: str) -> None:
        if not self.skip_invalid:
            raise error
        self.skipped.add(error.message.split(":")[0], example)

    def __len__(self) -> int:
        return len(self.keypoints)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return load_checked(self._load, index, len(self), skip=self.skip_invalid, what=self.what)

    def _load(self, i: int) -> dict[str, Any]:
        raise NotImplementedError
