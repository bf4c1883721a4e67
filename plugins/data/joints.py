"""Joint sets: names, left/right flip pairs, limbs for drawing, COCO's OKS sigmas.

A joint set is plain data, so datasets, transforms and the preview share one
definition. Transforms accept a joint set by name (``flip_pairs: mpii``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kitpose.errors import KitposeError


@dataclass(frozen=True)
class JointSet:
    """The joints of one annotation format."""

    name: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]


MPII = JointSet(
    "mpii",
    ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
     "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"),
    ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    ((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
     (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15)),
)

COCO = JointSet(
    "coco",
    ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
     "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
     "left_knee", "right_knee", "left_ankle", "right_ankle"),
    ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO's own skeleton (1-based in the annotation files), here 0-based
    ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
     (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
)

H36M = JointSet(
    "h36m",
    ("pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
     "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"),
    ((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)),
    ((0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
     (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16)),
)

#: per-joint OKS sigmas of the 17 COCO joints (COCOeval's values)
COCO_SIGMAS: tuple[float, ...] = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
                                  0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089)

JOINT_SETS: dict[str, JointSet] = {js.name: js for js in (MPII, COCO, H36M)}


def resolve_pairs(pairs: Any, what: str = "flip_pairs") -> tuple[tuple[int, int], ...]:
    """Flip pairs from a joint-set name (``"mpii"``, ``"coco"``) or a list of ``[left, right]``."""
    if isinstance(pairs, str):
        if pairs not in JOINT_SETS:
            raise KitposeError(f"{what}: unknown joint set '{pairs}'",
                               hint="use one of " + ", ".join(JOINT_SETS) + " or a list of [left, right] pairs")
        return JOINT_SETS[pairs].flip_pairs
    try:
        out = tuple((int(a), int(b)) for a, b in pairs)
    except (TypeError, ValueError):
        raise KitposeError(f"{what} must be a joint-set name or a list of [left, right] index pairs, "
                           f"not {pairs!r}") from None
    seen: set[int] = set()
    for a, b in out:
        if a < 0 or b < 0 or a == b or a in seen or b in seen:
            raise KitposeError(f"{what}: pair ({a}, {b}) is invalid",
                               hint="indices must be distinct, non-negative, each in one pair")
        seen.update((a, b))
    return out


def flip_permutation(num_joints: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """The joint order after a mirror: ``new[j] = old[perm[j]]`` (an involution)."""
    perm = list(range(num_joints))
    for a, b in pairs:
        if max(a, b) >= num_joints:
            raise KitposeError(f"flip pair ({a}, {b}) does not fit {num_joints} joints",
                               hint="give the flip_pairs of this dataset's joint set")
        perm[a], perm[b] = b, a
    return perm
