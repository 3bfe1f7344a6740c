"""Ground-truth boxes in the key-frame ego frame, and their BEV augmentation.

Box vector (9 values): [x, y, z, dx, dy, dz, yaw, vx, vy]; (x, y, z) is the geometric centre,
dx = length, dy = width, dz = height (nuScenes ``size`` is [w, l, h]), yaw as pyquaternion's
``yaw_pitch_roll[0]`` (what the reference used through ``nuscenes.utils.data_classes.Box``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bevdepth.data.augment import BevAugParams
from bevdepth.data.constants import DETECTION_CLASSES
from bevdepth.data.geometry import bda_rotation
from bevdepth.data.poses import quaternion_to_matrix

# nuScenes general category -> detection class; anything else is ignored. The same table as
# `nuscenes.eval.detection.utils.category_to_detection_name` (checked in the tests), copied so
# that loading a sample does not import the devkit (over a second of import time).
CATEGORY_TO_DETECTION: Mapping[str, str] = {
    "movable_object.barrier": "barrier",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
}

BOX_DIM = 9


def mean_ego_pose(
    cam_infos: Mapping[str, Mapping[str, Any]], cameras: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The key frame's ego pose as the element-wise mean of the cameras' ego poses (quirk 14).

    Each camera has its own ego pose (its own timestamp). The reference averages the
    quaternions component-wise, then uses the (normalized) result for the boxes and for the
    submission, so the GT frame is this mean, not the LiDAR ego pose.

    Args:
        cam_infos: ``info["cam_infos"]`` of the key frame.
        cameras: camera names to average over.

    Returns:
        rotation (4,) unit quaternion [w, x, y, z] and translation (3,), float64.
    """
    rotation = np.mean([cam_infos[cam]["ego_pose"]["rotation"] for cam in cameras], axis=0)
    translation = np.mean([cam_infos[cam]["ego_pose"]["translation"] for cam in cameras], axis=0)
    return rotation / np.linalg.norm(rotation), translation


def quaternion_multiply(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Hamilton product of (4,) ``left`` with (M, 4) ``right``, both [w, x, y, z]."""
    w0, x0, y0, z0 = left
    w1, x1, y1, z1 = right.T
    return np.stack(
        [
            w0 * w1 - x0 * x1 - y0 * y1 - z0 * z1,
            w0 * x1 + x0 * w1 + y0 * z1 - z0 * y1,
            w0 * y1 - x0 * z1 + y0 * w1 + z0 * x1,
            w0 * z1 + x0 * y1 - y0 * x1 + z0 * w1,
        ],
        axis=1,
    )


def _yaw(quaternions: np.ndarray) -> np.ndarray:
    """pyquaternion's ``yaw_pitch_roll[0]`` of (M, 4) quaternions (normalized first), (M,)."""
    w, x, y, z = (quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True)).T
    return np.arctan2(2 * (w * z - x * y), 1 - 2 * (y * y + z * z))


def annotation_boxes(
    annotations: Sequence[Mapping[str, Any]],
    ego_rotation: np.ndarray,
    ego_translation: np.ndarray,
    classes: Sequence[str] = DETECTION_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Convert global nuScenes annotations to boxes in an ego frame.

    Annotations whose category maps to no class in ``classes``, or that no LiDAR or radar point
    hit (``num_lidar_pts + num_radar_pts <= 0``), are skipped, as in the reference.

    Args:
        annotations: ``info["ann_infos"]``: translation, size [w, l, h], rotation [w, x, y, z],
            velocity (global, 3), num_lidar_pts, num_radar_pts, category_name.
        ego_rotation: (4,) unit quaternion, ego -> global.
        ego_translation: (3,) ego origin in global coordinates.
        classes: detection classes; a label is the index in this sequence.

    Returns:
        boxes (M, 9) float32 and labels (M,) int64.
    """
    kept = [
        (ann, classes.index(CATEGORY_TO_DETECTION[ann["category_name"]]))
        for ann in annotations
        if CATEGORY_TO_DETECTION.get(ann["category_name"]) in classes
        and ann["num_lidar_pts"] + ann["num_radar_pts"] > 0
    ]
    if not kept:
        return np.zeros((0, BOX_DIM), dtype=np.float32), np.zeros((0,), dtype=np.int64)
    anns = [ann for ann, _ in kept]
    labels = np.array([label for _, label in kept], dtype=np.int64)
    global2ego = quaternion_to_matrix(ego_rotation).T
    centres = np.array([a["translation"] for a in anns], dtype=np.float64) - ego_translation
    centres = centres @ global2ego.T
    velocities = np.array([a["velocity"] for a in anns], dtype=np.float64) @ global2ego.T
    sizes = np.array([a["size"] for a in anns], dtype=np.float64)
    unit_ego = np.asarray(ego_rotation, dtype=np.float64) / np.linalg.norm(ego_rotation)
    inverse_ego = unit_ego * np.array([1.0, -1.0, -1.0, -1.0])  # conjugate of a unit quaternion
    orientations = quaternion_multiply(
        inverse_ego, np.array([a["rotation"] for a in anns], dtype=np.float64)
    )
    boxes = np.concatenate(
        [
            centres,
            sizes[:, [1, 0, 2]],  # [w, l, h] -> [dx = l, dy = w, dz = h]
            _yaw(orientations)[:, None],
            velocities[:, :2],
        ],
        axis=1,
    )
    return boxes.astype(np.float32), labels


def apply_bda_to_boxes(boxes: np.ndarray, params: BevAugParams) -> np.ndarray:
    """The reference BEV augmentation of boxes (the same transform as ``bda_mat``).

    centre <- R c with R = flip @ (scale * Rz); dims *= scale; yaw += angle, then
    flip_dx: yaw = pi - yaw, flip_dy: yaw = -yaw; velocity <- R[:2, :2] v, which includes the
    scale (quirk 15: the reference scales velocity targets too).

    Args:
        boxes: (M, 9) boxes.
        params: the sample's BEV augmentation draw.

    Returns:
        (M, 9) float32 new array.
    """
    rot = bda_rotation(params)
    out = boxes.astype(np.float64)
    out[:, :3] = out[:, :3] @ rot.T
    out[:, 3:6] *= params.scale
    out[:, 6] += np.deg2rad(params.rotate)
    if params.flip_dx:
        out[:, 6] = np.pi - out[:, 6]
    if params.flip_dy:
        out[:, 6] = -out[:, 6]
    out[:, 7:9] = out[:, 7:9] @ rot[:2, :2].T
    return out.astype(np.float32)
