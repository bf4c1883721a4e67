"""The ``mpii`` dataset: MPII human pose in the widely used JSON record format.

The file is a list of records ``{"image": NAME, "center": [x, y], "scale": s,
"joints": 16 x [x, y], "joints_vis": 16 x 0/1}`` (the layout of the common
``mpii/annot/*.json`` files), optionally with a head box ``"headbox": [x1, y1, x2,
y2]`` (or ``[[x1, y1], [x2, y2]]``). Those files store MATLAB's 1-based pixel
coordinates; ``one_based: true`` (the default) moves them to 0-based pixel centres.
The person box follows the usual convention: a square of 200 * scale pixels around
the centre moved down by 15 * scale; ``top_down_affine``'s ``padding: 1.25`` then
gives the customary crop.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kitpose_plugins.data.checks import AnnotationRecords, non_finite, off_image
from kitpose_plugins.data.io import SKIP_HINT, DataError, missing_files, read_image, read_json
from kitpose_plugins.data.joints import MPII

NUM_JOINTS = 16
NECK, HEAD_TOP = 8, 9
PIXEL_STD = 200.0


class MpiiJson(AnnotationRecords):
    """MPII human pose (16 joints) from JSON records (image, center, scale, joints, joints_vis), for top-down crops.

    Parameters: ``ann_file``, ``image_dir``, ``one_based`` (coordinates in the file
    start at 1, as in the common MPII JSON files), ``skip_invalid`` (instead of raising:
    bad records and missing images are left out when the dataset is built, counted and
    reported once; an image found unreadable when loaded is dropped from its batch).

    Each sample: ``image`` (full image, RGB uint8), ``keypoints`` [16, 2],
    ``visible`` [16] (1 = labelled), ``bbox`` (the person square, x, y, w, h) and
    ``head_size``: 0.6 x the head box diagonal (MPII's PCKh normaliser) or, without a
    head box, the upper-neck to head-top distance.
    """

    provides = ("head_size", "bbox")
    #: parameters naming files and folders that must exist (``kitpose check`` looks for them)
    paths = {"ann_file": "annotation file", "image_dir": "image folder"}
    joint_names = MPII.joint_names
    flip_pairs = MPII.flip_pairs
    skeleton = MPII.skeleton
    what = "mpii record"

    def __init__(self, ann_file: str, image_dir: str, one_based: bool = True, skip_invalid: bool = False) -> None:
        super().__init__("mpii", ann_file, image_dir, skip_invalid)
        self.offset = 1.0 if one_based else 0.0
        data = read_json(self.ann_file)
        if isinstance(data, Mapping):
            data = data.get("annotations", data.get("annolist"))
        if not isinstance(data, list):
            raise DataError("not an MPII JSON file: expected a list of records with image, center, scale, "
                            "joints and joints_vis", file=self.ann_file)
        names, keypoints, boxes, heads, records = [], [], [], [], []
        parsed_all = [(i, self._parse(i, rec)) for i, rec in enumerate(data)]
        missing = missing_files(self.image_dir, {p[0] for _, p in parsed_all if p is not None})
        for i, parsed in parsed_all:
            if parsed is None:
                continue
            if parsed[0] in missing:  # found now, not mid-epoch
                self._missing_image(parsed[0], f"record {i}")
                continue
            names.append(parsed[0])
            keypoints.append(parsed[1])
            boxes.append(parsed[2])
            heads.append(parsed[3])
            records.append(i)
        if not names:
            raise DataError("the file holds no usable record" + (
                f": every record was skipped: {self.skipped.reasons()}" if self.skipped.total else ""),
                file=self.ann_file, hint="point ann_file at an MPII JSON annotation file, image_dir at its images")
        self.skipped.report(len(names))
        self.names = names
        #: each sample's record number in the file (errors name the record as the file has it)
        self.records = records
        self.keypoints = np.asarray(keypoints, dtype=np.float32)
        self.boxes = np.asarray(boxes, dtype=np.float32)
        self.head_sizes = np.asarray(heads, dtype=np.float32)

    def _parse(self, i: int, rec: Any) -> tuple[str, np.ndarray, tuple[float, ...], float] | None:
        where = f"record {i}"
        if not isinstance(rec, Mapping):
            self._invalid(where, "wrong format: a record must be a mapping")
            return None
        image = rec.get("image")
        where = f"record {i} ({image if isinstance(image, str) else '?'})"
        try:
            if not isinstance(image, str) or not image:
                raise TypeError("image must be a file name")
            name = image
            center = np.asarray(rec["center"], dtype=np.float64).reshape(2) - self.offset
            scale = rec["scale"]
            if isinstance(scale, bool) or not isinstance(scale, (int, float)):
                raise TypeError("scale must be a number")
            scale = float(scale)
            joints = np.asarray(rec["joints"], dtype=np.float64).reshape(NUM_JOINTS, 2) - self.offset
            vis = np.asarray(rec.get("joints_vis", [1] * NUM_JOINTS), dtype=np.float64).reshape(NUM_JOINTS)
            headbox = rec.get("headbox", rec.get("head_box"))
            headbox = None if headbox is None else np.asarray(headbox, dtype=np.float64).reshape(4)
        except (KeyError, TypeError, ValueError):
            self._invalid(where, "wrong format: needs image, center [x, y], scale, joints (16 x [x, y]) "
                                 "and joints_vis (16 values)")
            return None
        labelled = vis > 0
        problem = non_finite(np.where(labelled[:, None], joints, 0.0), center=center, scale=scale, headbox=headbox)
        if problem:
            self._invalid(where, problem)
            return None
        if scale <= 0:
            self._invalid(where, f"scale must be positive, not {scale:g}")
            return None
        if headbox is not None:
            head = 0.6 * float(np.hypot(headbox[2] - headbox[0], headbox[3] - headbox[1]))
        elif labelled[NECK] and labelled[HEAD_TOP]:
            head = float(np.hypot(*(joints[HEAD_TOP] - joints[NECK])))
        else:
            self._invalid(where, "no head size: no headbox and upper_neck or head_top is not labelled")
            return None
        if not head > 0:
            self._invalid(where, "no head size: the head box or neck-to-head-top distance is zero")
            return None
        side = PIXEL_STD * scale
        cx, cy = center[0], center[1] + 15.0 * scale
        box = (cx - side / 2.0, cy - side / 2.0, side, side)
        joints[~labelled] = 0.0
        return name, np.concatenate([joints, labelled[:, None].astype(np.float64)], axis=1), box, head

    def __repr__(self) -> str:
        return f"MpiiJson({self.ann_file!r}, {len(self)} people)"

    def _load(self, i: int) -> dict[str, Any]:
        file = self.image_dir / self.names[i]
        record = f"record {self.records[i]}"
        image = read_image(file, record)
        kps = self.keypoints[i]
        h, w = image.shape[:2]
        problem = off_image(kps, kps[:, 2] > 0, w, h, MPII.joint_names, first=-0.5)  # pixel centres
        if problem:
            raise DataError(problem, file=self.ann_file, path=f"{record} ({self.names[i]})", hint=SKIP_HINT)
        return {
            "image": image,
            "keypoints": np.ascontiguousarray(kps[:, :2]),
            "visible": kps[:, 2].astype(np.float32),
            "bbox": self.boxes[i].copy(),
            "head_size": np.float32(self.head_sizes[i]),
        }
