"""Camera and augmentation matrices for one sample (pure numpy, float64 inside).

Conventions:
- Quaternions are nuScenes ``[w, x, y, z]``; poses are 4x4 homogeneous "child -> parent"
  transforms (``sensor2ego``, ``ego2global``), built with ``bevdepth.data.poses``.
- Image coordinates are continuous pixels: x right, y down, pixel i covers [i, i + 1). PIL's
  resize, crop, flip and rotate are exact affine maps in these coordinates, which is what makes
  ``ida_mat`` agree with the augmented image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bevdepth.data.augment import BevAugParams, ImageAugParams
from bevdepth.data.poses import invert_transform, pose_to_matrix, rotation_z


def sensor_to_key_ego(key_cam: Mapping[str, Any], cam: Mapping[str, Any]) -> np.ndarray:
    """Camera of frame f -> ego frame of the current key frame (reference ``sweepsensor2keyego``).

    ``inv(keyego2global) @ ego2global @ sensor2ego`` where ``keyego2global`` is the ego pose of
    the *same camera* at the current key frame. For the key frame itself this is the static
    calibration; for a previous frame it moves that camera into the current ego frame, which is
    how BEVDepth aligns the two frames' BEV features without warping.

    Args:
        key_cam: the camera's info dict at the current key frame (``cam_infos[cam]``).
        cam: the same camera's info dict at frame f.

    Returns:
        (4, 4) float64.
    """
    key_ego2global = pose_to_matrix(key_cam["ego_pose"])
    ego2global = pose_to_matrix(cam["ego_pose"])
    sensor2ego = pose_to_matrix(cam["calibrated_sensor"])
    return invert_transform(key_ego2global) @ ego2global @ sensor2ego


def key_sensor_to_sensor(key_cam: Mapping[str, Any], cam: Mapping[str, Any]) -> np.ndarray:
    """Key-frame camera -> camera of frame f (reference ``keysensor2sweepsensor``).

    Produced for completeness; BEVDepth does not use it (only BEVStereo does).

    Returns:
        (4, 4) float64.
    """
    key_sensor2key_ego = pose_to_matrix(key_cam["calibrated_sensor"])
    return invert_transform(sensor_to_key_ego(key_cam, cam)) @ key_sensor2key_ego


def intrinsics_matrix(camera_intrinsic: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """The 3x3 intrinsics K padded to 4x4 (``[3, 3] = 1``), (4, 4) float64."""
    mat = np.eye(4)
    mat[:3, :3] = camera_intrinsic
    return mat


def ida_affine(params: ImageAugParams, scale: tuple[float, float] | None = None) -> np.ndarray:
    """Image augmentation as a 2D affine map, original pixels -> augmented pixels.

    resize, shift by -crop, flip x -> W - x, rotate by ``params.rotate`` counter-clockwise
    about (W / 2, H / 2) with R = [[cos, sin], [-sin, cos]] (y points down).

    Args:
        params: the camera's augmentation draw.
        scale: (x, y) resize factors. Default (r, r), as in ``ida_mat``. The image itself is
            resized to ``resize_dims`` = int(W0 r) x int(H0 r), i.e. by (new_w / W0, new_h / H0),
            which differs from r by less than one output pixel across the image.

    Returns:
        (3, 3) float64 homogeneous 2D transform.
    """
    scale_x, scale_y = scale or (params.resize, params.resize)
    width, height = params.final_size
    scale_crop = np.array(
        [[scale_x, 0.0, -params.crop[0]], [0.0, scale_y, -params.crop[1]], [0.0, 0.0, 1.0]]
    )
    flip = np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0, 0, 1]]) if params.flip else np.eye(3)
    angle = np.deg2rad(params.rotate)
    cos, sin = np.cos(angle), np.sin(angle)
    centre = np.array([width / 2, height / 2])
    rot = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0, 0, 1]])
    rot[:2, 2] = centre - rot[:2, :2] @ centre
    return rot @ flip @ scale_crop


def ida_matrix(params: ImageAugParams) -> np.ndarray:
    """The reference 4x4 ``ida_mat``: the 2D affine in ``[:2, :2]`` / ``[:2, 3]``, identity z, w.

    Returns:
        (4, 4) float64.
    """
    affine = ida_affine(params)
    mat = np.eye(4)
    mat[:2, :2] = affine[:2, :2]
    mat[:2, 3] = affine[:2, 2]
    return mat


def bda_rotation(params: BevAugParams) -> np.ndarray:
    """``flip @ (scale * I @ Rz(angle))``, the reference BDA 3x3 block, (3, 3) float64."""
    rot_z = rotation_z(np.deg2rad(params.rotate))
    flip = np.diag([-1.0 if params.flip_dx else 1.0, -1.0 if params.flip_dy else 1.0, 1.0])
    return flip @ (params.scale * rot_z)


def bda_matrix(params: BevAugParams) -> np.ndarray:
    """The reference 4x4 ``bda_mat`` (BDA 3x3 block, zero translation), (4, 4) float64."""
    mat = np.eye(4)
    mat[:3, :3] = bda_rotation(params)
    return mat
