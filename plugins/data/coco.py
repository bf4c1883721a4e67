"""The ``coco`` dataset: COCO keypoint annotation files, one sample per person instance.

Reads the official ``person_keypoints_*.json`` layout (``images``, ``annotations``,
``categories``). A sample is the whole image with the instance's keypoints and its
ground-truth ``bbox``: add ``top_down_affine`` (and, for training, its random
options and ``random_flip: {flip_pairs: coco}``) to crop it to the model's input.
Coordinates are used as written in the file, as COCOeval compares them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kitpose_plugins.data.checks import AnnotationRecords, non_finite, off_image
from kitpose_plugins.data.io import DataError, missing_files, read_image, read_json
from kitpose_plugins.data.joints import COCO, COCO_SIGMAS

NUM_JOINTS = 17


class CocoKeypoints(AnnotationRecords):
    """COCO person keypoints (17 joints): one sample per labelled person, with its box for top-down crops.

    Parameters: ``ann_file`` (a ``person_keypoints_*.json``), ``image_dir`` (the folder
    of its images), ``min_keypoints`` (instances with fewer labelled joints, crowds
    and non-person annotations are left out), ``skip_invalid`` (instead of raising:
    records with wrong fields, NaN values, joints off the image, empty boxes or missing
    images are left out when the dataset is built, counted and reported once; an image
    found corrupt or truncated when loaded is dropped from its batch and counted, never
    replaced by another sample), ``head_ratio`` (``head_size`` = head_ratio x the
    box's longer side: COCO has no head box; 0.11 matches MPII's proportions, so
    PCKh-style metrics work; OKS uses ``area``).

    Each sample: ``image`` (full image, RGB uint8), ``keypoints`` [17, 2],
    ``visible`` [17] (1 = labelled, COCO v > 0), ``bbox`` (x, y, w, h), ``area`` (the
    annotation's, in image pixels; transforms leave it so, since OKS is scored on the
    image after ``inverse``), ``head_size``, ``image_id``, ``annotation_id``.
    """

    provides = ("head_size", "bbox", "area", "image_id", "annotation_id")
    #: parameters naming files and folders that must exist (``kitpose check`` looks for them)
    paths = {"ann_file": "annotation file", "image_dir": "image folder"}
    joint_names = COCO.joint_names
    flip_pairs = COCO.flip_pairs
    skeleton = COCO.skeleton
    sigmas = COCO_SIGMAS
    what = "coco instance"

    def __init__(self, ann_file: str, image_dir: str, min_keypoints: int = 1, skip_invalid: bool = False,
                 head_ratio: float = 0.11) -> None:
        super().__init__("coco", ann_file, image_dir, skip_invalid)
        self.min_keypoints, self.head_ratio = int(min_keypoints), float(head_ratio)
        data = read_json(self.ann_file)
        if not isinstance(data, Mapping) or not isinstance(data.get("annotations"), list) \
                or not isinstance(data.get("images"), list):
            raise DataError("not a COCO keypoint file: it needs 'images' and 'annotations' lists",
                            file=self.ann_file, hint="give a person_keypoints_*.json file as ann_file")
        self.images = self._read_images(data["images"])
        people = self._person_categories(data.get("categories"))
        self._read_annotations(data["annotations"], people)
        self._drop_missing_images()
        if len(self) == 0:
            if self.skipped.total:
                raise DataError(f"every instance was skipped: {self.skipped.reasons()}",
                                file=self.ann_file, hint="check ann_file and image_dir")
            raise DataError("no usable person instance (labelled keypoints, not crowd)", file=self.ann_file,
                            hint=f"check the file, or lower min_keypoints (now {self.min_keypoints})")
        self.skipped.report(len(self))

    # -- reading the file -----------------------------------------------------------------
    def _read_images(self, records: list[Any]) -> dict[int, tuple[str, int, int]]:
        images: dict[int, tuple[str, int, int]] = {}
        for i, rec in enumerate(records):
            try:
                image_id, name = _whole(rec["id"]), rec["file_name"]
                width, height = _whole(rec["width"]), _whole(rec["height"])
            except (KeyError, TypeError, ValueError):
                raise DataError("an image record needs id, file_name, width and height (whole numbers)",
                                file=self.ann_file, path=f"images[{i}]",
                                hint="is this a COCO annotation file?") from None
            if not isinstance(name, str) or not name or width <= 0 or height <= 0:
                raise DataError(f"an image record needs a file_name and a positive width and height, not "
                                f"{name!r}, {width} x {height}", file=self.ann_file, path=f"images[{i}]",
                                hint="fix the record")
            images[image_id] = (name, width, height)
        return images

    def _person_categories(self, categories: Any) -> set[int] | None:
        if categories is None or categories == []:
            return None  # no categories: every annotation is a person
        if not isinstance(categories, list):
            raise DataError(f"categories must be a list of {{id, name, keypoints}}, not {_shown(categories)}",
                            file=self.ann_file, path="categories", hint="give a person_keypoints_*.json file")
        ids = set()
        for i, cat in enumerate(categories):
            if not isinstance(cat, Mapping):
                raise DataError(f"a category must be a mapping {{id, name, keypoints}}, not {_shown(cat)}",
                                file=self.ann_file, path=f"categories[{i}]", hint="fix the record")
            try:
                cat_id = _whole(cat.get("id"))
            except (TypeError, ValueError):
                raise DataError(f"a category id must be a whole number, not {_shown(cat.get('id'))}",
                                file=self.ann_file, path=f"categories[{i}]", hint="fix the record") from None
            if cat.get("name") == "person" or "keypoints" in cat:
                ids.add(cat_id)
        if not ids:
            raise DataError("no 'person' category (a category with keypoints)", file=self.ann_file,
                            path="categories", hint="give a person_keypoints_*.json file")
        return ids

    def _read_annotations(self, records: list[Any], people: set[int] | None) -> None:
        keypoints, boxes, areas, image_ids, ann_ids = [], [], [], [], []
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                self._invalid(f"annotations[{i}]", "wrong format: an annotation must be a mapping")
                continue
            where = f"annotations[{i}] (id {_shown(rec.get('id', '?'))})"
            fields = self._fields(rec, i)
            if isinstance(fields, str):
                self._invalid(where, fields)
                continue
            category, crowd, ann_id, area = fields
            if (people is not None and category not in people) or crowd:
                continue
            try:
                kps = np.asarray(rec["keypoints"], dtype=np.float64).reshape(NUM_JOINTS, 3)
                box = np.asarray(rec["bbox"], dtype=np.float64).reshape(4)
                image_id = _whole(rec["image_id"])
            except (KeyError, TypeError, ValueError):
                self._invalid(where, "wrong format: needs keypoints (17 x [x, y, v]), bbox [x, y, w, h] "
                                     "and image_id")
                continue
            labelled = kps[:, 2] > 0
            if labelled.sum() < self.min_keypoints:
                continue
            problem = self._check(kps, labelled, box, image_id)
            if problem:
                self._invalid(where, problem)
                continue
            width, height = self.images[image_id][1:]
            x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
            x1, y1 = min(box[0] + box[2], float(width)), min(box[1] + box[3], float(height))
            keypoints.append(kps)
            boxes.append((x0, y0, x1 - x0, y1 - y0))
            areas.append(area or float(box[2] * box[3]))
            image_ids.append(image_id)
            ann_ids.append(ann_id)
        self.keypoints = np.asarray(keypoints, dtype=np.float32).reshape(-1, NUM_JOINTS, 3)
        self.boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        self.areas = np.asarray(areas, dtype=np.float32)
        self.image_ids = np.asarray(image_ids, dtype=np.int64)
        self.annotation_ids = np.asarray(ann_ids, dtype=np.int64)

    @staticmethod
    def _fields(rec: Mapping[str, Any], i: int) -> tuple[int | None, bool, int, float] | str:
        """``(category_id, iscrowd, id, area)`` of an annotation, or why they are wrong."""
        try:
            category = None if rec.get("category_id") is None else _whole(rec["category_id"])
        except (TypeError, ValueError):
            return f"wrong format: category_id must be a whole number, not {_shown(rec['category_id'])}"
        crowd = rec.get("iscrowd", 0)
        if crowd not in (0, 1, None):  # True and False are 1 and 0
            return f"wrong format: iscrowd must be 0 or 1, not {_shown(crowd)}"
        try:
            ann_id = _whole(rec.get("id", i))
        except (TypeError, ValueError):
            return f"wrong format: id must be a whole number, not {_shown(rec.get('id'))}"
        area = rec.get("area")
        if area is not None and (isinstance(area, bool) or not isinstance(area, (int, float))
                                 or not np.isfinite(area) or area < 0):
            return f"wrong format: area must be a number >= 0, not {_shown(area)}"
        return category, bool(crowd), ann_id, float(area or 0.0)

    def _drop_missing_images(self) -> None:
        """Find missing image files now (one folder listing, not one look-up per image), so a
        run does not stop on one mid-epoch; with skip_invalid their instances are left out."""
        if not len(self):
            return
        names = {int(i): self.images[int(i)][0] for i in np.unique(self.image_ids)}
        missing = missing_files(self.image_dir, names.values())
        if not missing:
            return
        keep = np.ones(len(self), dtype=bool)
        for k, image_id in enumerate(self.image_ids.tolist()):
            name = names[image_id]
            if name in missing:
                record = f"image_id {image_id}, annotation id {int(self.annotation_ids[k])}"
                self._missing_image(name, record)
                keep[k] = False
        for attr in ("keypoints", "boxes", "areas", "image_ids", "annotation_ids"):
            setattr(self, attr, getattr(self, attr)[keep])

    def _check(self, kps: np.ndarray, labelled: np.ndarray, box: np.ndarray, image_id: int) -> str:
        """Why an instance is unusable, or an empty string."""
        if image_id not in self.images:
            return f"image_id {image_id} is not in the file's images"
        width, height = self.images[image_id][1:]
        problem = non_finite(kps, bbox=box) or off_image(kps, labelled, width, height, COCO.joint_names)
        if problem:
            return problem
        x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
        if min(box[0] + box[2], width) - x0 <= 0 or min(box[1] + box[3], height) - y0 <= 0:
            return f"empty bbox: {box.tolist()} on a {width} x {height} image"
        return ""

    # -- samples ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"CocoKeypoints({self.ann_file!r}, {len(self)} instances)"

    def _load(self, i: int) -> dict[str, Any]:
        image_id = int(self.image_ids[i])
        name, width, height = self.images[image_id]
        record = f"image_id {image_id}, annotation id {int(self.annotation_ids[i])}"
        image = read_image(self.image_dir / name, record)
        if image.shape[:2] != (height, width):
            raise DataError(f"image is {image.shape[1]} x {image.shape[0]} but the annotation says "
                            f"{width} x {height}", file=str(self.image_dir / name), path=record,
                            hint="is image_dir the folder that matches ann_file?")
        kps = self.keypoints[i]
        box = self.boxes[i]
        return {
            "image": image,
            "keypoints": np.ascontiguousarray(kps[:, :2]),
            "visible": (kps[:, 2] > 0).astype(np.float32),
            "bbox": box.copy(),
            "area": np.float32(self.areas[i]),
            "head_size": np.float32(self.head_ratio * max(float(box[2]), float(box[3]))),
            "image_id": np.int64(image_id),
            "annotation_id": np.int64(self.annotation_ids[i]),
        }


def _whole(value: Any) -> int:
    """``value`` as an int when it is a whole number (``3`` or ``3.0``); TypeError or ValueError
    otherwise (``"3"``, ``3.5``, ``True``, ``[3]``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"not a number: {value!r}")
    if not float(value).is_integer():
        raise ValueError(f"not a whole number: {value!r}")
    return int(value)


def _shown(value: Any, limit: int = 40) -> str:
    """A value as it may appear in a one-line message (short)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
