"""The ``coco`` format of ``kitpose predict``: person boxes from a COCO detection-results file
in, COCO keypoint results out.

Detectors (mmdet, Detectron2, YOLO exporters ...) write their boxes as COCO detection
results, and COCO's keypoint evaluation reads keypoint results, so this is the format most
pipelines around a top-down pose model speak. Another format is a plugin away: register a
``format`` with the same members (see ``docs/plugins.md``).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kitpose.errors import KitposeError
from kitpose.predict import Person


class CocoFiles:
    """COCO files: ``--boxes`` reads detection results, the predictions are keypoint results.

    ``read_boxes`` takes a list of ``{image_id, bbox: [x, y, w, h], score, category_id}``
    (an entry's ``file_name`` may name the image instead of ``image_id``); ``records`` gives
    ``{image_id, category_id: 1, keypoints: [x, y, score] * K, score, file_name}`` per person.
    ``image_id`` is the number in a file's name (COCO's ``000000000139.jpg`` is 139).
    """

    #: the file ``kitpose predict`` writes the records to, in its output folder
    file_name = "keypoints.json"
    #: what that file holds, for the command's closing line
    description = "COCO keypoint results"

    def read_boxes(self, path: str | Path, files: Sequence[Path], *, min_score: float = 0.0) -> list[list[np.ndarray]]:
        """Per image file, its person boxes ``(x, y, w, h, score)``. Non-person categories
        (``category_id`` other than 1) and boxes scoring below ``min_score`` are left out; a
        file that matches none of the images is an error."""
        file = str(path)
        try:
            entries = json.loads(Path(file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KitposeError("detection file not found", file=file) from None
        except (OSError, ValueError) as exc:
            raise KitposeError(f"not a JSON detection file: {exc}", file=file) from None
        if not isinstance(entries, list):
            raise KitposeError("expected a list of {image_id, bbox, score} detections", file=file)
        by_id = {int(p.stem): i for i, p in enumerate(files) if p.stem.isdigit()}
        by_name = {p.name: i for i, p in enumerate(files)}
        boxes: list[list[np.ndarray]] = [[] for _ in files]
        matched = 0
        for n, det in enumerate(entries):
            if not isinstance(det, Mapping) or "bbox" not in det:
                raise KitposeError("each detection needs a bbox [x, y, w, h]", file=file, path=f"[{n}]")
            category, score = _whole(det.get("category_id", 1), file, n, "category_id"), det.get("score", 1.0)
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise KitposeError(f"score must be a number, not {score!r}", file=file, path=f"[{n}]")
            if "file_name" in det:
                where = by_name.get(str(det["file_name"]))
            else:
                where = by_id.get(_whole(det.get("image_id"), file, n, "image_id"))
            if where is None:
                continue  # a detection for an image not given
            matched += 1
            if category != 1 or score < min_score:
                continue
            boxes[where].append(np.append(_box(det["bbox"], file, n), np.float32(score)))
        if entries and not matched:
            raise KitposeError("no detection names one of the images (by image_id, the number in a file's "
                               "name, or by file_name)", file=file)
        return boxes

    def records(self, people: Sequence[Sequence[Person]], files: Sequence[Path]) -> list[dict[str, Any]]:
        """COCO keypoint results for the people found in each of ``files``."""
        out = []
        for file, found in zip(files, people):
            for person in found:
                scores = person.scores if person.scores is not None else np.ones(len(person.keypoints), np.float32)
                flat = np.concatenate([person.keypoints, scores[:, None]], 1).reshape(-1)
                out.append({"image_id": int(file.stem) if file.stem.isdigit() else file.name, "category_id": 1,
                            "keypoints": [round(float(v), 3) for v in flat], "score": round(person.score, 5),
                            "file_name": file.name})
        return out

    def dump(self, records: list[dict[str, Any]]) -> str:
        """The text of :attr:`file_name`: the records as a JSON list."""
        return json.dumps(records, indent=1)


def _box(value: Any, file: str, n: int) -> np.ndarray:
    """A detection's ``bbox`` as float32 ``[x, y, w, h]`` with a positive size, or an error."""
    try:
        box = np.asarray(value, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        box = np.zeros(0, np.float32)
    if box.size != 4 or not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise KitposeError(f"bbox must be [x, y, w, h] with a positive size, not {value}", file=file, path=f"[{n}]")
    return box


def _whole(value: Any, file: str, n: int, key: str) -> int:
    """A detection's id as a whole number ("139" and 139.0 are 139); anything else is an error."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number.is_integer():
        raise KitposeError(f"{key} must be a whole number, not {value!r}", file=file, path=f"[{n}]")
    return int(number)
