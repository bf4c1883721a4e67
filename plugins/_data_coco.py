"""The ``coco`` dataset: COCO keypoint annotation files, one sample per person instance.

Reads the official ``person_keypoints_*.json`` layout (``images``, ``annotations``,
``categories``). A sample is the whole image with the instance's keypoints and its
ground-truth ``bbox``: add ``top_down_affine`` (and, for training, its random
options and ``random_flip: {flip_pairs: coco}``) to crop it to the model's input.
Coordinates are used as written in the file, as COCOeval compares them.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kitpose_plugins._data_io import SKIP_HINT, DataError, SkipCounter, load_or_skip, read_image, read_json
from kitpose_plugins._data_joints import COCO, COCO_SIGMAS

NUM_JOINTS = 17


class CocoKeypoints:
    """COCO person keypoints (17 joints): one sample per labelled person, with its box for top-down crops.

    Parameters: ``ann_file`` (a ``person_keypoints_*.json``), ``image_dir`` (the folder
    of its images), ``min_keypoints`` (instances with fewer labelled joints, crowds
    and non-person annotations are left out), ``skip_invalid`` (skip and count
    records with NaN values, joints off the image, empty boxes, missing or corrupt
    images instead of raising), ``head_ratio`` (``head_size`` = head_ratio x the
    box's longer side: COCO has no head box; 0.11 matches MPII's proportions, so
    PCKh-style metrics work; OKS uses ``area``).

    Each sample: ``image`` (full image, RGB uint8), ``keypoints`` [17, 2],
    ``visible`` [17] (1 = labelled, COCO v > 0), ``bbox`` (x, y, w, h), ``area`` (the
    annotation's, in image pixels; transforms leave it so, since OKS is scored on the
    image after ``inverse``), ``head_size``, ``image_id``, ``annotation_id``.
    """

    provides = ("head_size", "bbox", "area", "image_id", "annotation_id")
    joint_names = COCO.joint_names
    flip_pairs = COCO.flip_pairs
    skeleton = COCO.skeleton
    sigmas = COCO_SIGMAS

    def __init__(self, ann_file: str, image_dir: str, min_keypoints: int = 1, skip_invalid: bool = False,
                 head_ratio: float = 0.11) -> None:
        self.ann_file, self.image_dir = str(ann_file), Path(image_dir)
        self.min_keypoints, self.skip_invalid = int(min_keypoints), bool(skip_invalid)
        self.head_ratio = float(head_ratio)
        self.skipped = SkipCounter(f"coco {self.ann_file}")
        data = read_json(self.ann_file)
        if not isinstance(data, Mapping) or not isinstance(data.get("annotations"), list) \
                or not isinstance(data.get("images"), list):
            raise DataError("not a COCO keypoint file: it needs 'images' and 'annotations' lists",
                            file=self.ann_file, hint="give a person_keypoints_*.json file as ann_file")
        self.images = self._read_images(data["images"])
        people = self._person_categories(data.get("categories"))
        self._read_annotations(data["annotations"], people)
        if len(self) == 0:
            raise DataError("no usable person instance (labelled keypoints, not crowd)", file=self.ann_file,
                            hint=f"check the file, or lower min_keypoints (now {self.min_keypoints})")

    # -- reading the file -----------------------------------------------------------------
    def _read_images(self, records: list[Any]) -> dict[int, tuple[str, int, int]]:
        images: dict[int, tuple[str, int, int]] = {}
        for i, rec in enumerate(records):
            try:
                images[int(rec["id"])] = (str(rec["file_name"]), int(rec["width"]), int(rec["height"]))
            except (KeyError, TypeError, ValueError):
                raise DataError("an image record needs id, file_name, width and height", file=self.ann_file,
                                path=f"images[{i}]", hint="is this a COCO annotation file?") from None
        return images

    def _person_categories(self, categories: Any) -> set[int] | None:
        if not categories:
            return None  # no categories: every annotation is a person
        ids = {int(c["id"]) for c in categories
               if isinstance(c, Mapping) and "id" in c and (c.get("name") == "person" or "keypoints" in c)}
        if not ids:
            raise DataError("no 'person' category (a category with keypoints)", file=self.ann_file,
                            path="categories", hint="give a person_keypoints_*.json file")
        return ids

    def _invalid(self, where: str, message: str) -> None:
        if not self.skip_invalid:
            raise DataError(message, file=self.ann_file, path=where, hint=SKIP_HINT)
        self.skipped.add(message.split(":")[0], where)

    def _read_annotations(self, records: list[Any], people: set[int] | None) -> None:
        keypoints, boxes, areas, image_ids, ann_ids = [], [], [], [], []
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                self._invalid(f"annotations[{i}]", "an annotation must be a mapping")
                continue
            where = f"annotations[{i}] (id {rec.get('id', '?')})"
            if people is not None and rec.get("category_id") not in people:
                continue
            if rec.get("iscrowd", 0):
                continue
            try:
                kps = np.asarray(rec["keypoints"], dtype=np.float64).reshape(NUM_JOINTS, 3)
                box = np.asarray(rec["bbox"], dtype=np.float64).reshape(4)
                image_id, ann_id = int(rec["image_id"]), int(rec.get("id", i))
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
            areas.append(float(rec.get("area") or box[2] * box[3]))
            image_ids.append(image_id)
            ann_ids.append(ann_id)
        self.keypoints = np.asarray(keypoints, dtype=np.float32).reshape(-1, NUM_JOINTS, 3)
        self.boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        self.areas = np.asarray(areas, dtype=np.float32)
        self.image_ids = np.asarray(image_ids, dtype=np.int64)
        self.annotation_ids = np.asarray(ann_ids, dtype=np.int64)

    def _check(self, kps: np.ndarray, labelled: np.ndarray, box: np.ndarray, image_id: int) -> str:
        """Why an instance is unusable, or an empty string."""
        if image_id not in self.images:
            return f"image_id {image_id} is not in the file's images"
        if not (np.isfinite(kps).all() and np.isfinite(box).all()):
            bad = int(np.flatnonzero(~np.isfinite(kps).all(axis=1))[0]) if not np.isfinite(kps).all() else -1
            return f"NaN or infinite values: keypoint {bad}" if bad >= 0 else "NaN or infinite values in bbox"
        width, height = self.images[image_id][1:]
        x, y = kps[:, 0], kps[:, 1]
        off = labelled & ((x < -1) | (x > width + 1) | (y < -1) | (y > height + 1))
        if off.any():
            j = int(np.flatnonzero(off)[0])
            return (f"out-of-image keypoint: {COCO.joint_names[j]} at ({x[j]:g}, {y[j]:g}) "
                    f"on a {width} x {height} image")
        x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
        if min(box[0] + box[2], width) - x0 <= 0 or min(box[1] + box[3], height) - y0 <= 0:
            return f"empty bbox: {box.tolist()} on a {width} x {height} image"
        return ""

    # -- samples ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keypoints)

    def __repr__(self) -> str:
        return f"CocoKeypoints({self.ann_file!r}, {len(self)} instances)"

    def __getitem__(self, index: int) -> dict[str, Any]:
        return load_or_skip(self._load, index, len(self), skip=self.skip_invalid, counter=self.skipped,
                            what="coco instance", file=self.ann_file)

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

