"""Random 3D human figures with the 16 MPII joints, posed by forward kinematics.

Body frame (mm): origin at the pelvis, +x the figure's left, +y up, +z the way it
faces (right-handed). Each limb has two segments: the upper one swings in its
parent's frame (flexion forward, abduction sideways, twist about its own axis),
the lower one bends at a hinge (knees backward, elbows forward). The four limbs are
computed together as stacks of rotation matrices, so there is no loop over joints.

Besides the joints, a figure carries the capsules it is drawn with (limbs, torso,
neck, head, nose, hands, feet); feet and nose point forward, so the way a figure
faces, and with it left and right, can be seen in the picture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# joint indices (MPII order)
R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE, PELVIS, THORAX, NECK, HEAD_TOP = range(10)
R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST = range(10, 16)
# extra points used only for drawing
R_TOE, L_TOE, R_HAND, L_HAND, HEAD_LOW, HEAD_HIGH, NOSE_BASE, NOSE_TIP = range(16, 24)

#: drawn capsules as (from point, to point, radius mm, part kind)
CAPSULES: tuple[tuple[int, int, float, str], ...] = (
    (R_HIP, R_KNEE, 70.0, "bottom"), (R_KNEE, R_ANKLE, 52.0, "bottom"),
    (L_HIP, L_KNEE, 70.0, "bottom"), (L_KNEE, L_ANKLE, 52.0, "bottom"),
    (R_SHOULDER, R_ELBOW, 48.0, "top"), (R_ELBOW, R_WRIST, 38.0, "sleeve"),
    (L_SHOULDER, L_ELBOW, 48.0, "top"), (L_ELBOW, L_WRIST, 38.0, "sleeve"),
    (R_ANKLE, R_TOE, 40.0, "shoe"), (L_ANKLE, L_TOE, 40.0, "shoe"),
    (R_WRIST, R_HAND, 36.0, "skin"), (L_WRIST, L_HAND, 36.0, "skin"),
    (R_HIP, R_SHOULDER, 78.0, "top"), (L_HIP, L_SHOULDER, 78.0, "top"), (PELVIS, THORAX, 105.0, "top"),
    (THORAX, NECK, 46.0, "skin"), (HEAD_LOW, HEAD_HIGH, 95.0, "skin"), (NOSE_BASE, NOSE_TIP, 24.0, "face"),
)
SEG_A = np.array([c[0] for c in CAPSULES])
SEG_B = np.array([c[1] for c in CAPSULES])
SEG_RADIUS = np.array([c[2] for c in CAPSULES])
PART_KINDS = ("bottom", "top", "sleeve", "shoe", "skin", "face")
SEG_KIND = np.array([PART_KINDS.index(c[3]) for c in CAPSULES])
HEAD_RADIUS = 95.0

# limbs, in the order r_leg, l_leg, r_arm, l_arm
_SIDE = np.array([-1.0, 1.0, -1.0, 1.0])
_HINGE = np.array([1.0, 1.0, -1.0, -1.0])  # knees bend backward, elbows forward
# (low, high) degrees of flexion, abduction, twist, hinge bend per limb at pose_range = 1
_FLEX = np.array([[-25, 95], [-25, 95], [-45, 160], [-45, 160]], dtype=np.float64)
_ABDUCT = np.array([[-8, 40], [-8, 40], [-5, 110], [-5, 110]], dtype=np.float64)
_TWIST = np.array([[-30, 30], [-30, 30], [-60, 60], [-60, 60]], dtype=np.float64)
_BEND = np.array([[0, 130], [0, 130], [0, 150], [0, 150]], dtype=np.float64)
# torso lean, side bend, twist; neck pitch; head pitch, yaw, roll
_TRUNK = np.array([[-15, 35], [-20, 20], [-30, 30], [-20, 30], [-30, 30], [-60, 60], [-20, 20]],
                  dtype=np.float64)
# bone lengths (mm) of an average figure: hip half-width, thigh, shin, spine, neck, head,
# shoulder half-width, upper arm, forearm, foot, hand
_BONES = np.array([95, 440, 420, 480, 110, 210, 170, 300, 260, 170, 80], dtype=np.float64)


def rotations(axis: str, angles: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] about ``axis`` ('x', 'y' or 'z') by ``angles`` radians."""
    angles = np.asarray(angles, dtype=np.float64)
    c, s = np.cos(angles), np.sin(angles)
    out = np.zeros(angles.shape + (3, 3))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    k = 3 - i - j
    out[..., k, k] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., j, i] = s
    out[..., i, j] = -s
    return out


#: uniforms one figure needs: body (35) and placement (6)
BODY_UNIFORMS, PLACE_UNIFORMS = 35, 6


def _between(u: np.ndarray, ranges: np.ndarray, spread: float) -> np.ndarray:
    lo, hi = ranges[..., 0], ranges[..., 1]
    return np.radians(spread * (lo + (hi - lo) * u))


def _apply(frames: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``frames`` [..., 3, 3] applied to ``vectors`` [..., 3]."""
    return np.einsum("...ij,...j->...i", frames, vectors)


def sample_bodies(u: np.ndarray, pose_range: float = 1.0) -> np.ndarray:
    """Points [N, 24, 3] (joints then drawing points) of N figures in the body frame.

    ``u`` [N, BODY_UNIFORMS] are uniforms in [0, 1); all N figures are posed at once.
    """
    n = len(u)
    flex, abduct = _between(u[:, 0:4], _FLEX, pose_range), _between(u[:, 4:8], _ABDUCT, pose_range)
    twist, bend = _between(u[:, 8:12], _TWIST, pose_range), _between(u[:, 12:16], _BEND, pose_range)
    trunk = _between(u[:, 16:23], _TRUNK, pose_range)  # lean, side, turn, neck, head pitch, yaw, roll
    bones = _BONES * (0.85 + 0.3 * u[:, 23:24]) * (0.94 + 0.12 * u[:, 24:35])
    hip, thigh, shin, spine, neck, head, shoulder, upper_arm, forearm, foot, hand = bones.T
    # every rotation of every figure in three batched calls
    rx = rotations("x", np.concatenate([trunk[:, [0, 3, 4]], -flex, _HINGE * bend], axis=1))
    ry = rotations("y", np.concatenate([trunk[:, [2, 5]], _SIDE * twist], axis=1))
    rz = rotations("z", np.concatenate([trunk[:, [1, 6]], _SIDE * abduct], axis=1))
    zero = np.zeros(n)

    def vec(x: Any, y: Any, z: Any) -> np.ndarray:
        return np.stack(np.broadcast_arrays(x, y, z, zero), axis=-1)[..., :3]

    pts = np.zeros((n, 24, 3))
    pts[:, R_HIP, 0], pts[:, L_HIP, 0] = -hip, hip
    torso = ry[:, 0] @ rz[:, 0] @ rx[:, 0]
    pts[:, THORAX] = _apply(torso, vec(0.0, spine, 0.0))
    pts[:, R_SHOULDER] = pts[:, THORAX] + _apply(torso, vec(-shoulder, -20.0, 0.0))
    pts[:, L_SHOULDER] = pts[:, THORAX] + _apply(torso, vec(shoulder, -20.0, 0.0))
    neck_frame = torso @ rx[:, 1]
    pts[:, NECK] = pts[:, THORAX] + _apply(neck_frame, vec(0.0, neck, 0.0))
    head_frame = neck_frame @ ry[:, 1] @ rx[:, 2] @ rz[:, 1]
    pts[:, HEAD_TOP] = pts[:, NECK] + _apply(head_frame, vec(0.0, head, 0.0))
    r = HEAD_RADIUS * head / _BONES[5]
    pts[:, HEAD_HIGH] = pts[:, HEAD_TOP] - _apply(head_frame, vec(0.0, r, 0.0))
    pts[:, HEAD_LOW] = pts[:, NECK] + _apply(head_frame, vec(0.0, 0.3 * head, 0.05 * r))
    pts[:, NOSE_BASE] = pts[:, HEAD_HIGH] + _apply(head_frame, vec(0.0, -0.35 * r, 0.55 * r))
    pts[:, NOSE_TIP] = pts[:, HEAD_HIGH] + _apply(head_frame, vec(0.0, -0.45 * r, 1.2 * r))

    # the four limbs of every figure at once: frames [N, 4, 3, 3]
    parent = np.stack([np.broadcast_to(np.eye(3), torso.shape)] * 2 + [torso] * 2, axis=1)
    upper = parent @ rz[:, 2:] @ rx[:, 3:7] @ ry[:, 2:]
    lower = upper @ rx[:, 7:]
    down = np.array([0.0, -1.0, 0.0])
    roots = pts[:, [R_HIP, L_HIP, R_SHOULDER, L_SHOULDER]]
    lengths1 = np.stack([thigh, thigh, upper_arm, upper_arm], axis=1)
    lengths2 = np.stack([shin, shin, forearm, forearm], axis=1)
    mids = roots + lengths1[..., None] * (upper @ down)
    ends = mids + lengths2[..., None] * (lower @ down)
    pts[:, [R_KNEE, L_KNEE, R_ELBOW, L_ELBOW]] = mids
    pts[:, [R_ANKLE, L_ANKLE, R_WRIST, L_WRIST]] = ends
    toe = np.array([0.0, -0.2, 0.98])
    pts[:, [R_TOE, L_TOE]] = ends[:, :2] + foot[:, None, None] * (lower[:, :2] @ toe)
    pts[:, [R_HAND, L_HAND]] = ends[:, 2:] + hand[:, None, None] * (lower[:, 2:] @ down)
    return pts


@dataclass
class Camera:
    """A pinhole camera looking along +z (x right, y down), principal point at the image centre."""

    focal: float
    width: int
    height: int

    @classmethod
    def for_image(cls, width: int, height: int, fov_degrees: float = 55.0) -> "Camera":
        return cls(min(width, height) / 2.0 / math.tan(math.radians(fov_degrees) / 2.0), width, height)

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates [..., 2] of camera-frame points [..., 3] (mm)."""
        return self.focal * points[..., :2] / points[..., 2:3] + self.centre


def place(u: np.ndarray, bodies: np.ndarray, camera: Camera, yaw_range: float, tilt_range: float,
          fill: tuple[float, float]) -> np.ndarray:
    """Turn N body-frame figures [N, 24, 3] into the camera frame, each filling ``fill`` of the image.

    ``u`` [N, PLACE_UNIFORMS]: turn away from the camera (up to ``yaw_range``
    degrees), camera tilt and roll (``tilt_range``), size and position in the image.
    """
    yaw = np.radians(yaw_range * (2.0 * u[:, 0] - 1.0))
    pitch = np.radians(tilt_range * (2.0 * u[:, 1] - 1.0))
    roll = np.radians(tilt_range * (2.0 * u[:, 2] - 1.0))
    # the figure faces the camera at yaw 0: body +y (up) -> camera -y, body +z -> camera -z
    facing = np.diag([1.0, -1.0, -1.0])
    turn = rotations("z", roll) @ rotations("x", pitch) @ facing @ rotations("y", yaw)
    pts = bodies @ np.swapaxes(turn, -1, -2)
    lo, hi = pts.min(axis=1), pts.max(axis=1)
    span = hi[:, :2] - lo[:, :2] + 2.0 * HEAD_RADIUS
    share = fill[0] + (fill[1] - fill[0]) * u[:, 3]
    depth = camera.focal * np.maximum(span[:, 1] / (share * camera.height), span[:, 0] / (share * camera.width))
    depth = np.maximum(depth, 900.0 - lo[:, 2])  # the nearest point stays 0.9 m away
    image = np.array([camera.width, camera.height], dtype=np.float64)
    room = np.maximum(image - camera.focal * span / depth[:, None], 0.0) / 2.0
    offset_px = room * (2.0 * u[:, 4:6] - 1.0)
    shift = np.empty((len(u), 1, 3))
    shift[:, 0, :2] = offset_px * depth[:, None] / camera.focal - (lo[:, :2] + hi[:, :2]) / 2.0
    shift[:, 0, 2] = depth
    return pts + shift
