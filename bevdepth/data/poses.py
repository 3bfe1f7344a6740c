"""Rigid-transform helpers for nuScenes poses (quaternions are [w, x, y, z])."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def quaternion_to_matrix(q: Sequence[float]) -> np.ndarray:
    """3x3 rotation matrix of a quaternion [w, x, y, z] (normalized first)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rotation: np.ndarray) -> list[float]:
    """Quaternion [w, x, y, z] with w >= 0 of a 3x3 rotation matrix."""
    r = np.asarray(rotation, dtype=np.float64)
    # Shepperd's method: pick the largest diagonal term for numerical stability.
    trace = np.trace(r)
    candidates = [trace, r[0, 0], r[1, 1], r[2, 2]]
    i = int(np.argmax(candidates))
    if i == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif i == 1:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif i == 2:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q = q if q[0] >= 0 else -q
    return [float(v) for v in q / np.linalg.norm(q)]


def yaw_to_quaternion(yaw: float) -> list[float]:
    """Quaternion [w, x, y, z] of a rotation by ``yaw`` radians about +z."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def rotation_z(yaw: float) -> np.ndarray:
    """3x3 rotation by ``yaw`` radians about +z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def make_transform(rotation: np.ndarray, translation: Sequence[float]) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a translation."""
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = translation
    return transform


def pose_to_matrix(record: Mapping) -> np.ndarray:
    """4x4 child -> parent transform of a nuScenes ``ego_pose`` or ``calibrated_sensor``."""
    return make_transform(quaternion_to_matrix(record["rotation"]), record["translation"])


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    inverse = np.eye(4)
    rotation_t = transform[:3, :3].T
    inverse[:3, :3] = rotation_t
    inverse[:3, 3] = -rotation_t @ transform[:3, 3]
    return inverse


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (P, 3) points."""
    return points @ transform[:3, :3].T + transform[:3, 3]
