"""The (u, v, z) representation of 3D keypoints used by integral regression.

``u, v`` are image pixels (after every geometric transform, so they follow
``keypoints``), ``z`` is the depth relative to a root joint in millimetres. A
volumetric encoder bins ``z`` over a depth range; :meth:`ImageDepthTargets.to_camera`
lifts predictions back to the camera frame with the pinhole model and the root's
depth, the usual protocol for MPJPE when the root depth is known.

Samples with depth only for a ``depth_fraction`` of them (the rest 2D-only, z weight 0)
let 2D-only and 3D data supervise the same volume, as in the two-step integral.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kitpose.errors import ComponentError


class ImageDepthTargets:
    """Adds ``keypoints_uvz`` [K,3], ``uvz_weights`` [K,3], ``root_depth`` and ``camera`` from keypoints_3d."""

    provides = ("keypoints_uvz", "uvz_weights", "root_depth", "camera")
    flow_methods = ("to_camera",)

    def __init__(self, root: int = 6, depth_fraction: float = 1.0) -> None:
        if not 0.0 <= float(depth_fraction) <= 1.0:
            raise ComponentError(f"uvz: depth_fraction must be within [0, 1], not {depth_fraction}")
        self.root = int(root)
        self.depth_fraction = float(depth_fraction)

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        for key in ("keypoints_3d", "camera"):
            if key not in sample:
                raise ComponentError(f"uvz needs '{key}' in the sample",
                                     hint="use a dataset that provides 3D keypoints and its camera")
        out = dict(sample)
        xyz = np.asarray(sample["keypoints_3d"], dtype=np.float32)
        root_depth = np.float32(xyz[self.root, 2])
        uvz = np.concatenate([np.asarray(sample["keypoints"], np.float32), xyz[:, 2:3] - root_depth], axis=1)
        visible = np.asarray(sample["visible"], np.float32)
        has_depth = np.float32(rng.random() < self.depth_fraction)
        out["keypoints_uvz"] = uvz.astype(np.float32)
        out["uvz_weights"] = np.stack([visible, visible, visible * has_depth], axis=1)
        out["root_depth"] = root_depth
        out["camera"] = np.asarray(sample["camera"], np.float32)
        return out

    def to_camera(self, uvz: Any, camera: Any, root_depth: Any) -> Any:
        """Camera-frame millimetres [B,K,3] from (u, v, relative z) [B,K,3], camera [B,4], root depth [B]."""
        fx, fy, cx, cy = (camera[:, i, None] for i in range(4))
        z = uvz[..., 2] + root_depth[:, None]
        x = (uvz[..., 0] - cx) * z / fx
        y = (uvz[..., 1] - cy) * z / fy
        stack = np.stack if isinstance(uvz, np.ndarray) else __import__("torch").stack
        return stack([x, y, z], -1)
