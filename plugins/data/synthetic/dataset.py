"""The ``synthetic`` dataset: procedural human figures rendered on the fly.

Randomness is drawn from streams keyed by (seed, split, ...), never from global
state, so sample ``i`` of split ``s`` with seed ``n`` is the same on every run,
process and worker, whatever order samples are asked in; train / val / test use
distinct streams and share no sample. Figures are posed in chunks of
:data:`CHUNK` samples at once (vectorised; chunk ``c`` uses the stream
``[n, TAG, code(s), 0, c]`` and keeps about 0.8 kB per sample in memory);
each sample's scene (clutter, colours, noise) uses its own stream ``[n, TAG,
code(s), 1, i]``. Keypoints are the exact float projections of the 3D joints,
never rounded.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import cv2
import numpy as np

from kitpose.errors import KitposeError
from kitpose.registry import Range
from kitpose_plugins.data.synthetic import pose
from kitpose_plugins.data.synthetic import render
from kitpose_plugins.data.geometry import as_size, inside
from kitpose_plugins.data.joints import MPII

_TAG = 0x5F1D  # separates these streams from the transform streams (seed, epoch, index)
CHUNK = 256
_SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
MODALITIES = ("depth", "grey", "colour")
_SHAPE_SCALES = np.array([[0.05, 0.35], [0.08, 0.25]])  # clutter, occluders: share of the image
_ALIASES = {"gray": "grey", "color": "colour", "rgb": "colour"}
_SKIN = np.array([[233, 190, 160], [198, 134, 96], [141, 85, 54], [255, 219, 172], [110, 70, 45]], dtype=np.float64)


class SyntheticPoses:
    """Procedural 3D human figures (16 MPII joints) rendered with exact sub-pixel keypoints, no files needed.

    Parameters: ``size`` samples; ``image_size`` (int or [w, h]; 128 by default, 64
    works); ``split`` (train / val / test, disjoint); ``seed``; ``modality``: ``depth``
    (H x W x 1 float32, depth / max_depth, 0 = no reading, like HUMAN4D's depth
    maps), ``grey`` (H x W x 1 uint8) or ``colour`` (H x W x 3 uint8 RGB).
    Difficulty: ``clutter`` (mean number of background shapes / 4), ``occlusion``
    (chance of an occluder in front of the figure), ``pose_range`` (0 = everyone
    stands straight, 1 = the full joint ranges), ``view_range`` (largest turn away
    from the camera, degrees; 90 by default, 180 = all round, where telling left from
    right is harder), ``noise`` (sensor noise, 0..1),
    ``figure_size`` ([low, high] share of the image the figure spans). ``cache``
    keeps made samples in memory (per process).

    Each sample: ``image``, ``keypoints`` [16, 2] float32 px, ``visible`` [16] (1 when
    inside the image), ``keypoints_3d`` [16, 3] camera frame mm (pinhole, principal
    point at the image centre), ``head_size`` (upper neck to head top, px; the PCKh
    normaliser), ``bbox`` (x, y, w, h of the drawn figure, px) and ``camera``
    (fx, fy, cx, cy: keypoints = f * (X, Y) / Z + c).
    """

    provides = ("keypoints_3d", "head_size", "bbox", "camera")
    joint_names = MPII.joint_names
    flip_pairs = MPII.flip_pairs
    skeleton = MPII.skeleton

    #: ``size`` at most 10 million: every epoch the data sampler lists each index in memory
    def __init__(self, size: Annotated[int, Range(1, 10_000_000)] = 2000,
                 image_size: int | Sequence[int] = 128, split: str = "train",
                 seed: Annotated[int, Range(0, None)] = 0,
                 modality: Literal["depth", "grey", "colour", "gray", "color", "rgb"] = "depth",
                 clutter: Annotated[float, Range(0, 10)] = 1.0,
                 occlusion: Annotated[float, Range(0, 1)] = 0.3,
                 pose_range: Annotated[float, Range(0, 1)] = 1.0,
                 view_range: Annotated[float, Range(0, 180)] = 90.0,
                 noise: Annotated[float, Range(0, 1)] = 0.5,
                 figure_size: Sequence[float] = (0.65, 0.95), max_depth: float = 8000.0,
                 cache: bool = False) -> None:
        self.size = int(size)
        if self.size < 1:
            raise KitposeError(f"synthetic: size must be at least 1, not {size}")
        self.image_size = as_size(image_size, "image_size")
        if not isinstance(split, str) or not split:
            raise KitposeError(f"synthetic: split must be a name such as train, val or test, not {split!r}")
        self.split, self.seed = split, int(seed)
        self.split_code = _SPLIT_CODES.get(split, 1000 + zlib.crc32(split.encode()) % 1_000_000)
        modality = _ALIASES.get(str(modality), str(modality))
        if modality not in MODALITIES:
            raise KitposeError(f"synthetic: unknown modality '{modality}'", hint="use depth, grey or colour")
        self.modality = modality
        for name, value, top in (("clutter", clutter, 10.0), ("occlusion", occlusion, 1.0),
                                 ("pose_range", pose_range, 1.0), ("noise", noise, 1.0),
                                 ("view_range", view_range, 180.0)):
            if not 0.0 <= float(value) <= top:
                raise KitposeError(f"synthetic: {name} must be between 0 and {top:g}, not {value}")
        self.clutter, self.occlusion = float(clutter), float(occlusion)
        self.pose_range, self.view_range, self.noise = float(pose_range), float(view_range), float(noise)
        lo, hi = (float(v) for v in figure_size)
        if not 0.1 <= lo <= hi <= 1.5:
            raise KitposeError(f"synthetic: figure_size must be [low, high] within 0.1..1.5, not {figure_size}")
        self.figure_size = (lo, hi)
        self.max_depth = float(max_depth)
        self.camera = pose.Camera.for_image(*self.image_size)
        self._camera = np.array([self.camera.focal, self.camera.focal, *self.camera.centre], dtype=np.float32)
        self.cache: dict[int, dict[str, Any]] | None = {} if cache else None
        self._noise: render.NoiseBank | None = None
        self._figures: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        w, h = self.image_size
        return f"SyntheticPoses(split={self.split!r}, size={self.size}, image_size={w}x{h}, modality={self.modality})"

    def rng_for(self, index: int) -> np.random.Generator:
        """The random stream of the scene of sample ``index`` (this split and seed)."""
        return np.random.default_rng([self.seed, _TAG, self.split_code, 1, int(index)])

    def figure(self, index: int) -> dict[str, np.ndarray]:
        """Sample ``index``'s posed figure: 3D points, projections, drawing order, box, head size."""
        chunk, row = divmod(int(index), CHUNK)
        table = self._figures.get(chunk)
        if table is None:
            table = self._figures[chunk] = self._pose_chunk(chunk)
        return {key: value[row] for key, value in table.items()}

    def _pose_chunk(self, chunk: int) -> dict[str, np.ndarray]:
        """Pose and project the CHUNK figures of one chunk at once (no loop over samples or joints)."""
        rng = np.random.default_rng([self.seed, _TAG, self.split_code, 0, chunk])
        u = rng.random((CHUNK, pose.BODY_UNIFORMS + pose.PLACE_UNIFORMS))
        bodies = pose.sample_bodies(u[:, :pose.BODY_UNIFORMS], self.pose_range)
        points = pose.place(u[:, pose.BODY_UNIFORMS:], bodies, self.camera, self.view_range,
                            15.0 * self.pose_range, self.figure_size).astype(np.float32)
        uv = self.camera.project(points.astype(np.float64))
        depth = points[..., 2].astype(np.float64)
        seg_depth = 0.5 * (depth[:, pose.SEG_A] + depth[:, pose.SEG_B])
        radius = self.camera.focal * pose.SEG_RADIUS / seg_depth
        outlines = render.capsules(uv[:, pose.SEG_A].reshape(-1, 2), uv[:, pose.SEG_B].reshape(-1, 2),
                                   radius.reshape(-1)).reshape(CHUNK, -1, 2)
        drawn = np.concatenate([outlines, uv[:, :16]], axis=1)  # the figure and its joints
        lo, hi = drawn.min(axis=1), drawn.max(axis=1)
        keypoints = uv[:, :16].astype(np.float32)
        neck_to_top = uv[:, pose.HEAD_TOP] - uv[:, pose.NECK]
        return {  # compact: about 0.8 kB per sample
            "points": points, "uv": uv.astype(np.float32), "seg_depth": seg_depth.astype(np.float32),
            "radius": radius.astype(np.float32),
            "order": np.argsort(-seg_depth, axis=1, kind="stable").astype(np.int16),  # paint far to near
            "visible": inside(keypoints, self.image_size),
            "bbox": np.concatenate([lo, hi - lo], axis=1).astype(np.float32),
            "head_size": np.sqrt((neck_to_top ** 2).sum(axis=1)).astype(np.float32),
            "span_lo": uv[:, :16].min(axis=1).astype(np.float32),  # where occluders go
            "span_hi": uv[:, :16].max(axis=1).astype(np.float32),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(f"synthetic sample {index} out of range (size {self.size})")
        if self.cache is not None and index in self.cache:
            return dict(self.cache[index])
        sample = self.make(self.figure(index), self.rng_for(index))
        if self.cache is not None:
            self.cache[index] = sample
            return dict(sample)
        return sample

    # -- making one sample ----------------------------------------------------------------
    def make(self, fig: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, Any]:
        """Draw a posed figure (see :meth:`figure`) in a scene from ``rng`` (the work behind ``dataset[i]``)."""
        w, h = self.image_size
        uv, seg_depth, order = fig["uv"], fig["seg_depth"], fig["order"]
        n_fig = len(seg_depth)
        # clutter behind the figure anywhere, occluders in front of it over its joints
        counts = rng.random(2)
        n_back = int(rng.poisson(4.0 * self.clutter))
        n_front = int(counts[0] < self.occlusion) * (1 + int(counts[1] < 0.3))
        regions = np.empty((n_back + n_front, 5))
        regions[:n_back] = (0.0, 0.0, w - 1.0, h - 1.0, min(w, h))
        lo, hi = fig["span_lo"], fig["span_hi"]
        regions[n_back:] = (lo[0], lo[1], hi[0], hi[1], min(w, h))
        scales = np.repeat(_SHAPE_SCALES, (n_back, n_front), axis=0)
        a, b, r, boxy = render.random_shapes(rng.random((n_back + n_front, 6)), regions, scales)
        outlines = render.capsules(np.concatenate([uv[pose.SEG_A[order]], a]),
                                   np.concatenate([uv[pose.SEG_B[order]], b]),
                                   np.concatenate([fig["radius"][order], r]))
        render.make_boxy(outlines[n_fig:], boxy)
        drawn = render.fixed(np.concatenate([outlines[n_fig:n_fig + n_back], outlines[:n_fig],
                                             outlines[n_fig + n_back:]]))
        if self.modality == "depth":
            image = self._paint_depth(rng, drawn, (n_back, n_front), seg_depth[order], fig["points"][:, 2])
        else:
            image = self._paint_colour(rng, drawn, (n_back, n_front), order, seg_depth)
        return {"image": image, "keypoints": uv[:16].copy(), "visible": fig["visible"].copy(),
                "keypoints_3d": fig["points"][:16].copy(), "head_size": fig["head_size"].copy(),
                "bbox": fig["bbox"].copy(), "camera": self._camera.copy()}

    def _bank(self, kind: str) -> render.NoiseBank:
        bank = self._noise
        if bank is None:
            if kind == "colour":
                bank = render.NoiseBank(self.seed, self.image_size, kind, 12.0 * self.noise)
            else:
                bank = render.NoiseBank(self.seed, self.image_size, kind, 0.015 * self.noise, 0.03 * self.noise)
            self._noise = bank
        return bank

    def _paint_depth(self, rng: np.random.Generator, drawn: np.ndarray, counts: tuple[int, int],
                     part_depth: np.ndarray, joint_depth: np.ndarray) -> np.ndarray:
        n_back, n_front = counts
        u = rng.random(7 + n_back + n_front)
        codes = render.depth_background(u[:5], self.image_size, self.camera.focal, self.max_depth)
        near, far = float(joint_depth.min()), float(joint_depth.max())
        back = far + 300.0 + 2500.0 * u[7:7 + n_back]
        front = np.maximum(near - 300.0 - 900.0 * u[7 + n_back:], 400.0)
        depth = np.concatenate([back, part_depth, front])
        render.fill(codes, drawn, np.clip(np.rint(depth * (255.0 / self.max_depth)), 1, 255)[:, None])
        if self.noise:  # depth = code / 255 x (1 + noise), 0 in the holes
            image = cv2.multiply(codes, self._bank("depth").window(u[5:7]), scale=1.0 / 255.0, dtype=cv2.CV_32F)
        else:
            image = codes.astype(np.float32) * np.float32(1.0 / 255.0)
        return image[..., None]

    def _paint_colour(self, rng: np.random.Generator, drawn: np.ndarray, counts: tuple[int, int],
                      order: np.ndarray, seg_depth: np.ndarray) -> np.ndarray:
        n_back, n_front = counts
        u = rng.random(12 + 12 + 4 + 2 + 3 * (n_back + n_front))
        canvas = render.colour_background(u[:12], self.image_size)
        palette = np.empty((len(pose.PART_KINDS), 3))
        palette[0:2] = 25 + 205 * u[12:18].reshape(2, 3)  # bottom, top
        skin = _SKIN[int(u[18] * len(_SKIN))] * (0.85 + 0.3 * u[19])
        palette[2] = palette[1] if u[20] < 0.5 else skin  # sleeves or bare forearms
        palette[3] = 120 * u[21:24]  # shoes
        palette[4] = skin
        palette[5] = skin * 0.55  # face: darker, marks the front of the head
        spread = max(float(seg_depth.max() - seg_depth.min()), 1.0)
        shade = 1.15 - 0.3 * (seg_depth - seg_depth.min()) / spread  # nearer parts brighter
        figure = np.clip(palette[pose.SEG_KIND] * shade[:, None], 0, 255)[order]
        others = 255 * u[30:].reshape(-1, 3)
        colours = np.concatenate([others[:n_back], figure, others[n_back:]])
        render.fill(canvas, drawn, colours)
        if self.noise:
            canvas = cv2.add(canvas, self._bank("colour").window(u[28:30]), dtype=cv2.CV_8U)
        if self.modality == "grey":
            return cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)[..., None]
        return canvas
