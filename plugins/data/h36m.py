"""The ``h36m`` dataset: Human3.6M in the widely used preprocessed ``.npz`` layout.

The annotation file holds one record per image and person:

- ``imgname`` [N] image paths relative to ``image_dir``, e.g.
  ``S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg``: the subject,
  action and camera are read from the file name (``S1``, ``Directions``, ``54138969``);
- ``center`` [N, 2] and ``scale`` [N]: the person box, a square of 200 * scale pixels;
- ``part`` [N, 17, 3]: 2D joints in image pixels and their visibility;
- ``S`` [N, 17, 4]: 3D joints and their visibility, in the camera's coordinates and in
  metres as mmpose's ``preprocess_h36m.py`` writes them (the defaults ``frame: camera``,
  ``unit: m``), or in world coordinates (``frame: world``, moved into each camera with
  ``cameras.pkl``) and millimetres (``unit: mm``, which applies to the cameras' T too).
  When the dataset is built, a few records of every subject and camera are projected and
  compared with ``part``: settings that do not fit the file are one line naming the ones
  that do.

``cameras.pkl`` is a dict keyed by ``(subject, camera)``, e.g. ``(1, 1)``, ``(1,
'54138969')`` or ``('S1', '54138969')``, of ``{R, T, f, c, k, p}``: ``X_camera = R (X -
T)`` (``translation: center``, T is the camera's position, as the common Human3.6M
camera files store it) or ``R X + T`` (``translation: offset``); ``f``, ``c`` the focal
lengths and principal point in pixels, ``k`` radial and ``p`` tangential distortion
(see :func:`project`). The file is read with an unpickler that builds numbers and numpy
arrays only, so a camera file cannot run code.
"""
from __future__ import annotations

import itertools
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from kitpose.registry import Range
from kitpose_plugins.data.checks import AnnotationRecords, non_finite, off_image
from kitpose_plugins.data.io import SKIP_HINT, DataError, missing_files, read_image
from kitpose_plugins.data.joints import H36M

NUM_JOINTS = 17
PIXEL_STD = 200.0
#: the 15 actions in the order the field's tables use
ACTIONS: tuple[str, ...] = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing",
                            "Purchases", "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking",
                            "WalkTogether")
#: other spellings of the same actions in Human3.6M's file names
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkingTogether": "WalkTogether"}
#: the four cameras, by the index (1-4) many camera files use
CAMERAS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
#: the standard protocol's subjects
SUBJECTS = {"train": (1, 5, 6, 7, 8), "test": (9, 11)}
_NAME = re.compile(r"S(?P<subject>\d+)_(?P<action>[A-Za-z]+)[^./]*?[._ ](?P<camera>\d{8})(?:[._](?P<frame>\d+))?")
_ARRAYS = ("imgname", "center", "scale", "part", "S")
#: the range a person's 3D joints span along their widest axis, in mm, in any plausible recording
_PERSON_MM = (300.0, 4000.0)
#: how S and the cameras may be stored (the consistency check tries each to suggest the one that fits)
_GEOMETRY = {"frame": ("camera", "world"), "unit": ("m", "mm"), "translation": ("center", "offset")}
_LAYOUT = "imgname [N], center [N, 2], scale [N], part [N, 17, 3] and S [N, 17, 4]"


def project(points: np.ndarray, camera: np.ndarray, distortion: np.ndarray | None = None) -> np.ndarray:
    """Image pixels ``[..., 2]`` of camera-frame points ``[..., 3]`` through ``camera`` (fx, fy,
    cx, cy) and, if given, Human3.6M's ``distortion`` (k1, k2, k3, p1, p2): the normalised
    point ``x`` is scaled by ``1 + k1 r² + k2 r⁴ + k3 r⁶ + p1 y + p2 x`` and shifted by ``(p2,
    p1) r²`` before the focal lengths and principal point apply (the dataset's own model).
    Leading dimensions broadcast with ``camera`` ``[..., 4]``."""
    points = np.asarray(points, dtype=np.float64)
    camera = np.asarray(camera, dtype=np.float64)
    if camera.ndim == points.ndim - 1:  # one camera per set of joints
        camera = camera[..., None, :]
    xy = points[..., :2] / points[..., 2:3]
    if distortion is not None:
        d = np.asarray(distortion, dtype=np.float64)
        if d.ndim == points.ndim - 1:
            d = d[..., None, :]
        k1, k2, k3, p1, p2 = (d[..., i] for i in range(5))
        r2 = (xy ** 2).sum(-1)
        scale = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3 + p1 * xy[..., 1] + p2 * xy[..., 0]
        xy = xy * scale[..., None] + np.stack([p2 * r2, p1 * r2], -1)
    return xy * camera[..., :2] + camera[..., 2:]


def parse_name(name: str) -> tuple[int, str, str] | None:
    """``(subject, action, camera)`` of an image name such as
    ``S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg``, or None."""
    found = _NAME.search(Path(name).name) or _NAME.search(name)
    if not found:
        return None
    action = ACTION_ALIASES.get(found["action"], found["action"])
    return int(found["subject"]), action, found["camera"]


class _NumbersOnly(pickle.Unpickler):
    """Unpickles containers, numbers and numpy arrays; refuses every other class."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
                ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"), ("builtins", "slice"),
                ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a camera file")


def _subject(value: Any) -> int | None:
    text = str(value).strip()
    text = text[1:] if text[:1] in "sS" else text
    return int(text) if text.isdigit() else None


def _camera_id(value: Any, entry: Mapping[str, Any]) -> str | None:
    text = str(value).strip()
    if text.isdigit() and len(text) == 8:
        return text
    if text.isdigit() and 1 <= int(text) <= len(CAMERAS):
        named = str(entry.get("name", "")).strip()
        return named if named.isdigit() and len(named) == 8 else CAMERAS[int(text) - 1]
    return None


def read_cameras(path: str) -> dict[tuple[int, str], dict[str, np.ndarray]]:
    """``{(subject, camera id): {R, T, f, c, k, p}}`` from a ``cameras.pkl``; problems raise
    :class:`DataError` naming the file and the entry."""
    try:
        with open(path, "rb") as handle:
            raw = _NumbersOnly(handle, encoding="latin1").load()  # latin1: pickles written by Python 2
    except FileNotFoundError:
        raise DataError("camera file not found", file=path,
                        hint="check camera_file (or data.root=/path/to/h36m)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, MemoryError,
            RecursionError, IndexError, KeyError) as exc:
        raise DataError(f"not a camera file: {exc}", file=path,
                        hint="give a pickled dict {(subject, camera): {R, T, f, c, k, p}} of numbers and arrays") \
            from None
    if not isinstance(raw, Mapping):
        raise DataError("not a camera file: expected a dict keyed by (subject, camera)", file=path)
    cameras = {}
    for key, entry in raw.items():
        where = f"entry {key!r}"
        if not (isinstance(key, tuple) and len(key) == 2 and isinstance(entry, Mapping)):
            raise DataError("each entry must be (subject, camera): {R, T, f, c, k, p}", file=path, path=where)
        subject, camera = _subject(key[0]), _camera_id(key[1], entry)
        if subject is None or camera is None:
            raise DataError("the key must be (subject, camera) such as (1, 1) or ('S1', '54138969')",
                            file=path, path=where)
        fields = {}
        for name, shape, default in (("R", (3, 3), None), ("T", (3,), None), ("f", (2,), None),
                                     ("c", (2,), None), ("k", (3,), 0.0), ("p", (2,), 0.0)):
            value = entry.get(name)
            if value is None and default is None:
                raise DataError(f"no '{name}'", file=path, path=where, hint="each camera needs R, T, f and c")
            try:
                array = np.full(shape, default) if value is None else np.asarray(value, dtype=np.float64)
                array = array.reshape(shape)
            except (TypeError, ValueError):
                raise DataError(f"'{name}' must hold {int(np.prod(shape))} numbers", file=path, path=where) from None
            if not np.isfinite(array).all():
                raise DataError(f"NaN or infinite values in '{name}'", file=path, path=where)
            fields[name] = array
        cameras[subject, camera] = fields
    return cameras


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise DataError("annotation file not found", file=path,
                        hint="check ann_file (or data.root=/path/to/h36m)") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError("the file stores Python objects (e.g. imgname as an object array)", file=path,
                            hint="save imgname as a string array: np.savez(..., imgname=names.astype(str))") \
                from None
        raise DataError(f"not a .npz file: {exc}", file=path) from None
    except OSError as exc:
        raise DataError(f"cannot read the annotation file: {exc}", file=path) from None
    except Exception as exc:  # zipfile.BadZipFile and the like: a cut-off or foreign file
        raise DataError(f"not a .npz file: {type(exc).__name__}: {exc}", file=path,
                        hint="point ann_file at the preprocessed Human3.6M .npz") from None
    lacking = [name for name in _ARRAYS if name not in arrays]
    if lacking:
        raise DataError(f"no array {', '.join(map(repr, lacking))}", file=path, hint=f"the file needs {_LAYOUT}")
    return arrays


def _to_camera(world: np.ndarray, keys: Sequence[tuple[int, str]],
               table: Mapping[tuple[int, str], Mapping[str, np.ndarray]], *, frame: str, unit: str,
               translation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame joints in mm (``unit`` applies to S and to the cameras' T), intrinsics and
    distortion per record, one camera at a time."""
    scale = 1000.0 if unit == "m" else 1.0
    points = world[..., :3] * scale
    out = np.empty_like(points)
    intrinsics = np.empty((len(keys), 4))
    distortion = np.empty((len(keys), 5))
    _, group = np.unique(np.array([f"{s}:{c}" for s, c in keys]), return_inverse=True)
    for g in range(int(group.max()) + 1 if len(group) else 0):  # at most 11 subjects x 4 cameras
        rows = np.flatnonzero(group == g)
        cam = table[keys[rows[0]]]
        if frame == "camera":
            out[rows] = points[rows]
        elif translation == "center":
            out[rows] = (points[rows] - cam["T"] * scale) @ cam["R"].T
        else:
            out[rows] = points[rows] @ cam["R"].T + cam["T"] * scale
        intrinsics[rows] = np.r_[cam["f"], cam["c"]]
        distortion[rows] = np.r_[cam["k"], cam["p"]]
    visible = world[..., 3:] > 0
    return (np.where(visible, out, 0.0).astype(np.float32), intrinsics.astype(np.float32),
            distortion.astype(np.float32))


class Human36M(AnnotationRecords):
    """Human3.6M (17 joints, 2D and 3D) from the preprocessed .npz and cameras.pkl, for top-down crops.

    Parameters: ``ann_file`` (the ``.npz``), ``image_dir``, ``camera_file`` (``cameras.pkl``);
    ``split`` (``train`` or ``test``: the standard protocol's subjects, S1, S5, S6, S7, S8
    and S9, S11) or ``subjects`` (a list such as ``[S9, S11]`` or ``[9, 11]``; overrides
    ``split``; neither: every subject); ``cameras`` (a subset, by id ``54138969`` or index
    1-4); ``every`` (keep every n-th record of each sequence and camera, in frame order:
    on mmpose's 10 fps files, which hold every 5th video frame, ``every: 64`` keeps every
    320th frame); ``root`` (the joint protocol 1 aligns on: 0, the pelvis; records
    without its 3D label are rejected); ``frame``, ``unit``, ``translation`` (how ``S``
    and the cameras are stored, see the module); ``keypoints_2d``: ``annotation`` (the
    file's ``part``, which includes the lens distortion) or ``projected`` (the pinhole
    projection of the 3D joints, so that 2D and 3D agree exactly, as Sun et al. train);
    ``skip_invalid`` (bad records and missing images are left out, counted and reported
    once, instead of raising).

    Each sample: ``image`` (RGB uint8), ``keypoints`` [17, 2] px, ``visible`` [17] (2D
    and 3D labels both present), ``keypoints_3d`` [17, 3] camera frame, mm, ``camera``
    (fx, fy, cx, cy), ``distortion`` (k1, k2, k3, p1, p2 of the original camera: the
    transforms do not update it), ``bbox`` (x, y, w, h), ``action`` (index into
    :data:`ACTIONS`) and ``subject``.
    """

    provides = ("keypoints_3d", "camera", "distortion", "bbox", "action", "subject")
    paths = {"ann_file": "annotation file", "image_dir": "image folder", "camera_file": "camera file"}
    joint_names = H36M.joint_names
    flip_pairs = H36M.flip_pairs
    skeleton = H36M.skeleton
    actions = ACTIONS
    what = "h36m record"

    def __init__(self, ann_file: str, image_dir: str, camera_file: str,
                 split: Literal["train", "test"] | None = None, subjects: Sequence[int | str] | None = None,
                 cameras: Sequence[int | str] | None = None, every: Annotated[int, Range(1, None)] = 1,
                 root: Annotated[int, Range(0, NUM_JOINTS - 1)] = 0,
                 frame: Literal["camera", "world"] = "camera", unit: Literal["m", "mm"] = "m",
                 translation: Literal["center", "offset"] = "center",
                 keypoints_2d: Literal["annotation", "projected"] = "annotation", skip_invalid: bool = False) -> None:
        super().__init__("h36m", ann_file, image_dir, skip_invalid)
        self.camera_file = str(camera_file)
        self.root = int(root)
        wanted_subjects = self._subjects(split, subjects)
        wanted_cameras = self._cameras(cameras)
        arrays = _read_npz(self.ann_file)
        names, center, scale, part, world = self._shaped(arrays)
        keep = np.ones(len(names), dtype=bool)
        parsed: list[tuple[int, str, str] | None] = [None] * len(names)
        for i, name in enumerate(names):  # once, when the dataset is built
            parsed[i] = parse_name(name)
            if parsed[i] is None:
                self._invalid(f"record {i} ({name})", "cannot read the subject, action and camera from the "
                                                      "image name (expected e.g. S1_Directions_1.54138969_000001.jpg)")
                keep[i] = False
            elif parsed[i][1] not in ACTIONS:
                self._invalid(f"record {i} ({name})", f"unknown action '{parsed[i][1]}'; the actions are "
                                                      + ", ".join(ACTIONS))
                keep[i] = False
        selected = np.array([p is not None and (wanted_subjects is None or p[0] in wanted_subjects)
                             and (wanted_cameras is None or p[2] in wanted_cameras) for p in parsed], dtype=bool)
        keep &= selected
        keep &= self._every(parsed, names, selected, int(every))
        keep &= self._valid(names, center, scale, part, world, keep)
        camera_table = read_cameras(self.camera_file)
        for i in np.flatnonzero(keep):
            key = parsed[i][0], parsed[i][2]
            if key not in camera_table:
                self._invalid(f"record {i} ({names[i]})",
                              f"no camera (S{key[0]}, {key[1]}) in {self.camera_file}")
                keep[i] = False
        missing = missing_files(self.image_dir, {names[i] for i in np.flatnonzero(keep)})
        for i in np.flatnonzero(keep):
            if names[i] in missing:
                self._missing_image(names[i], f"record {i}")
                keep[i] = False
        index = np.flatnonzero(keep)
        if not len(index):
            raise DataError("no usable record" + (
                f": every selected record was skipped: {self.skipped.reasons()}" if self.skipped.total else
                " for these subjects, cameras and frames"), file=self.ann_file,
                hint="check split / subjects / cameras, and that ann_file is the Human3.6M .npz")
        self.skipped.report(len(index))
        self.records = index
        #: a numpy array, not a list: DataLoader workers then share it instead of copying it page by page
        self.names = np.array([names[i] for i in index])
        meta = [parsed[i] for i in index]
        self.subject_ids = np.array([m[0] for m in meta], dtype=np.int64)
        self.action_ids = np.array([ACTIONS.index(m[1]) for m in meta], dtype=np.int64)
        self.camera_ids = np.array([m[2] for m in meta])
        self.keypoints = part[index].astype(np.float32)
        self.labelled_3d = world[index, :, 3] > 0
        side = PIXEL_STD * scale[index]
        self.boxes = np.stack([center[index, 0] - side / 2, center[index, 1] - side / 2, side, side], 1) \
            .astype(np.float32)
        keys = [(m[0], m[2]) for m in meta]
        geometry = {"frame": frame, "unit": unit, "translation": translation}
        self.points_3d, self.intrinsics, self.distortion = _to_camera(world[index], keys, camera_table, **geometry)
        self._check_geometry(world[index], keys, camera_table, geometry)
        if keypoints_2d == "projected":  # the pinhole projection of the 3D joints, as Sun et al. train on
            xy = project(self.points_3d, self.intrinsics)
            self.keypoints[..., :2] = np.where(self.labelled_3d[..., None], xy, 0.0)
            self.keypoints[..., 2] = self.labelled_3d

    def _check_geometry(self, world: np.ndarray, keys: Sequence[tuple[int, str]],
                        table: Mapping[tuple[int, str], Mapping[str, np.ndarray]], geometry: Mapping[str, str]) -> None:
        """The 3D joints, moved into each camera, must project onto the file's 2D joints: a few
        records of every subject and camera are checked, so that a ``frame``, ``unit`` or
        ``translation`` that does not fit the file is one line now, not wrong numbers later."""
        _, first = np.unique(np.array([f"{s}:{c}" for s, c in keys]), return_index=True)
        sample = np.unique(np.concatenate([first + k for k in range(4)]).clip(0, len(keys) - 1))
        sample_keys = [keys[i] for i in sample]

        def error(**settings: str) -> tuple[float, str]:
            points, intrinsics, distortion = _to_camera(world[sample], sample_keys, table, **settings)
            labelled = (self.keypoints[sample, :, 2] > 0) & self.labelled_3d[sample]
            if (points[:, self.root, 2] <= 0).any():
                return float("inf"), "the root joint lies behind the camera"
            # a projection cannot tell metres from millimetres: the people's size can
            span = np.where(self.labelled_3d[sample, :, None], points, np.nan)
            size = float(np.nanmedian((np.nanmax(span, 1) - np.nanmin(span, 1)).max(-1)))
            if not _PERSON_MM[0] <= size <= _PERSON_MM[1]:
                return float("inf"), f"people {size:.3g} mm across"
            with np.errstate(all="ignore"):
                xy = project(points, intrinsics, distortion)
            gap = np.linalg.norm(xy - self.keypoints[sample, :, :2], axis=-1)[labelled]
            return (float(np.median(gap)) if gap.size else 0.0), ""

        median, why = error(**geometry)
        tolerance = max(5.0, 0.05 * float(np.median(self.boxes[sample, 2])))
        if median <= tolerance:
            return
        fits = [dict(zip(geometry, combo)) for combo in itertools.product(*_GEOMETRY.values())
                if error(**dict(zip(geometry, combo)))[0] <= tolerance]
        now = ", ".join(f"{k}: {v}" for k, v in geometry.items())
        hint = ("these fit it: " + ", ".join(f"{k}: {v}" for k, v in fits[0].items()) if fits
                else "check the file's S array and cameras.pkl")
        raise DataError(f"the 3D joints do not project onto the 2D joints with {now} ("
                        + (why or f"median {median:.0f} px apart") + ")", file=self.ann_file, hint=hint)

    @staticmethod
    def _subjects(split: str | None, subjects: Sequence[int | str] | None) -> set[int] | None:
        if subjects is not None:
            ids = {_subject(s) for s in ([subjects] if isinstance(subjects, (str, int)) else subjects)}
            if None in ids or not ids:
                raise DataError(f"subjects must be a list such as [S9, S11] or [9, 11], not {subjects!r}")
            return ids  # type: ignore[return-value]
        if split is None:
            return None
        if split not in SUBJECTS:
            raise DataError(f"split must be train or test (the protocol's subjects), not {split!r}")
        return set(SUBJECTS[split])

    @staticmethod
    def _cameras(cameras: Sequence[int | str] | None) -> set[str] | None:
        if cameras is None:
            return None
        ids = {_camera_id(c, {}) for c in ([cameras] if isinstance(cameras, (str, int)) else cameras)}
        if None in ids or not ids:
            raise DataError(f"cameras must be camera ids ({', '.join(CAMERAS)}) or indices 1-4, not {cameras!r}")
        return ids  # type: ignore[return-value]

    def _shaped(self, arrays: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray, np.ndarray,
                                                                 np.ndarray, np.ndarray]:
        lengths = {name: len(arrays[name]) if arrays[name].ndim else 0 for name in _ARRAYS}
        if len(set(lengths.values())) > 1:
            raise DataError("arrays of different lengths: " + ", ".join(f"{k} {v}" for k, v in lengths.items()),
                            file=self.ann_file, hint="every array needs one entry per record")
        n = lengths["imgname"]
        try:
            names = [v.decode() if isinstance(v, bytes) else str(v) for v in arrays["imgname"].reshape(n)]
            center = np.asarray(arrays["center"], dtype=np.float64).reshape(n, 2)
            scale = np.asarray(arrays["scale"], dtype=np.float64).reshape(n)
            part = np.asarray(arrays["part"], dtype=np.float64).reshape(n, NUM_JOINTS, 3)
            world = np.asarray(arrays["S"], dtype=np.float64)
            if world.shape[1:] == (NUM_JOINTS, 3):  # no visibility column: every joint labelled
                world = np.concatenate([world, np.ones((n, NUM_JOINTS, 1))], axis=2)
            world = world.reshape(n, NUM_JOINTS, 4)
        except (TypeError, ValueError):
            shapes = ", ".join(f"{k} {list(arrays[k].shape)}" for k in _ARRAYS)
            raise DataError(f"wrong shapes: {shapes}", file=self.ann_file, hint=f"the file needs {_LAYOUT}") \
                from None
        return names, center, scale, part, world

    @staticmethod
    def _every(parsed: Sequence[tuple[int, str, str] | None], names: Sequence[str], selected: np.ndarray,
               every: int) -> np.ndarray:
        """Keep every ``every``-th selected frame of each sequence (its image folder or, without
        one, its name up to the frame number) and camera, in frame order."""
        if every <= 1:
            return np.ones(len(names), dtype=bool)
        rows = np.flatnonzero(selected)
        sequences = [re.sub(r"\d+(\.\w+)?$", "", names[i]) for i in rows]
        _, group = np.unique(sequences, return_inverse=True)
        frames = np.array([int(m[1]) if (m := re.search(r"(\d+)(\.\w+)?$", names[i])) else 0 for i in rows])
        order = np.lexsort((frames, group))
        starts = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1]
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        keep = np.zeros(len(names), dtype=bool)
        keep[rows[order[rank % every == 0]]] = True
        return keep

    def _valid(self, names: Sequence[str], center: np.ndarray, scale: np.ndarray, part: np.ndarray,
               world: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Reject (or skip and count) kept records with NaN values, a non-positive scale or no 3D root."""
        labelled2d, labelled3d = part[..., 2] > 0, world[..., 3] > 0
        finite = (np.isfinite(np.where(labelled2d[..., None], part[..., :2], 0)).all((1, 2))
                  & np.isfinite(np.where(labelled3d[..., None], world[..., :3], 0)).all((1, 2))
                  & np.isfinite(center).all(1) & np.isfinite(scale))
        bad = keep & ~(finite & (scale > 0) & labelled3d[:, self.root])
        for i in np.flatnonzero(bad):
            where = f"record {i} ({names[i]})"
            problem = non_finite(np.where(labelled2d[i, :, None], part[i, :, :2], 0.0), center=center[i],
                                 scale=scale[i]) \
                or non_finite(np.where(labelled3d[i, :, None], world[i, :, :3], 0.0)).replace("keypoint", "3D joint")
            if not problem and not scale[i] > 0:
                problem = f"scale must be positive, not {scale[i]:g}"
            if not problem:
                problem = f"the root joint ({H36M.joint_names[self.root]}) has no 3D label"
            self._invalid(where, problem)
        return ~bad

    def __repr__(self) -> str:
        return f"Human36M({self.ann_file!r}, {len(self)} records)"

    def _load(self, i: int) -> dict[str, Any]:
        record = f"record {self.records[i]}"
        image = read_image(self.image_dir / str(self.names[i]), record)
        kps = self.keypoints[i]
        visible = (kps[:, 2] > 0) & self.labelled_3d[i]
        h, w = image.shape[:2]
        problem = off_image(kps, kps[:, 2] > 0, w, h, H36M.joint_names, first=-0.5)
        if problem:
            raise DataError(problem, file=self.ann_file, path=f"{record} ({self.names[i]})", hint=SKIP_HINT)
        return {
            "image": image,
            "keypoints": np.ascontiguousarray(kps[:, :2], dtype=np.float32),
            "visible": visible.astype(np.float32),
            "keypoints_3d": self.points_3d[i].copy(),
            "camera": self.intrinsics[i].copy(),
            "distortion": self.distortion[i].copy(),
            "bbox": self.boxes[i].copy(),
            "action": self.action_ids[i],
            "subject": self.subject_ids[i],
        }
