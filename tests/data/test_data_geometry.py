"""IDA / BDA matrices and the per-frame camera poses (fact sheet 1.3, 1.4, 2)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bevdepth.data.augment import BevAugParams, ImageAugParams
from bevdepth.data.geometry import (
    bda_matrix,
    ida_affine,
    ida_matrix,
    intrinsics_matrix,
    key_sensor_to_sensor,
    sensor_to_key_ego,
)
from bevdepth.data.poses import invert_transform, pose_to_matrix, yaw_to_quaternion

PARAMS = [
    ImageAugParams(0.47, (752, 423), (31, 167, 735, 423), True, 4.3),
    ImageAugParams(0.40, (640, 360), (0, 104, 704, 360), False, -5.0),
    ImageAugParams(0.44, (704, 396), (0, 140, 704, 396), False, 0.0),
]


def reference_ida(params: ImageAugParams) -> np.ndarray:
    """The fact sheet's recipe step by step: scale, -crop, flip (A, b), rotate about the centre."""
    rot = params.resize * np.eye(2)
    tran = -np.array(params.crop[:2], dtype=float)
    width, height = params.final_size
    if params.flip:
        a = np.array([[-1.0, 0.0], [0.0, 1.0]])
        rot, tran = a @ rot, a @ tran + np.array([width, 0.0])
    h = np.deg2rad(params.rotate)
    r = np.array([[np.cos(h), np.sin(h)], [-np.sin(h), np.cos(h)]])
    centre = np.array([width, height]) / 2
    rot, tran = r @ rot, r @ tran + (r @ -centre + centre)
    mat = np.eye(4)
    mat[:2, :2], mat[:2, 3] = rot, tran
    return mat


@pytest.mark.parametrize("params", PARAMS)
def test_ida_matrix_matches_reference_recipe(params):
    np.testing.assert_allclose(ida_matrix(params), reference_ida(params), atol=1e-9)
    np.testing.assert_allclose(ida_matrix(params)[2:, 2:], np.eye(2))


def test_ida_test_transform_is_scale_and_crop():
    affine = ida_affine(PARAMS[2])
    np.testing.assert_allclose(affine, [[0.44, 0, 0], [0, 0.44, -140], [0, 0, 1]], atol=1e-12)


def rot_z(deg: float) -> np.ndarray:
    h = np.deg2rad(deg)
    return np.array([[np.cos(h), -np.sin(h), 0], [np.sin(h), np.cos(h), 0], [0, 0, 1]])


@pytest.mark.parametrize(("flip_dx", "flip_dy"), list(itertools.product([False, True], repeat=2)))
def test_bda_matrix_is_flip_scale_rotation(flip_dx, flip_dy):
    params = BevAugParams(rotate=17.0, scale=1.03, flip_dx=flip_dx, flip_dy=flip_dy)
    flip = np.diag([-1 if flip_dx else 1, -1 if flip_dy else 1, 1])
    expected = np.eye(4)
    expected[:3, :3] = flip @ (1.03 * np.eye(3) @ rot_z(17.0))
    np.testing.assert_allclose(bda_matrix(params), expected, atol=1e-12)


def test_bda_identity():
    np.testing.assert_allclose(bda_matrix(BevAugParams()), np.eye(4))


def test_intrinsics_padded():
    k = [[1266.0, 0.0, 816.0], [0.0, 1266.0, 491.0], [0.0, 0.0, 1.0]]
    mat = intrinsics_matrix(k)
    np.testing.assert_allclose(mat[:3, :3], k)
    np.testing.assert_allclose(mat[3], [0, 0, 0, 1])
    np.testing.assert_allclose(mat[:3, 3], 0)


def camera(ego_yaw: float, ego_xyz: list[float]) -> dict:
    """A camera record: static calibration, ego pose (yaw, position) that changes per frame."""
    return {
        "ego_pose": {"rotation": yaw_to_quaternion(ego_yaw), "translation": ego_xyz},
        "calibrated_sensor": {
            # Looking forward-left, mounted 1.5 m up and 1 m ahead of the ego origin.
            "rotation": [0.6532815, -0.2705981, 0.2705981, -0.6532815],
            "translation": [1.0, 0.2, 1.5],
        },
    }


KEY = camera(0.3, [100.0, 50.0, 0.5])
PREVIOUS = camera(0.25, [96.0, 48.5, 0.45])


def test_key_frame_reduces_to_calibration():
    np.testing.assert_allclose(
        sensor_to_key_ego(KEY, KEY), pose_to_matrix(KEY["calibrated_sensor"]), atol=1e-12
    )
    np.testing.assert_allclose(key_sensor_to_sensor(KEY, KEY), np.eye(4), atol=1e-12)


def test_previous_frame_maps_static_points_to_the_same_key_ego_position():
    # A static world point, seen by the camera at the key frame and at the previous frame.
    world = np.array([110.0, 58.0, 1.2, 1.0])

    def seen_from(cam: dict) -> np.ndarray:
        sensor2global = pose_to_matrix(cam["ego_pose"]) @ pose_to_matrix(cam["calibrated_sensor"])
        return invert_transform(sensor2global) @ world

    in_key_cam, in_prev_cam = seen_from(KEY), seen_from(PREVIOUS)
    assert not np.allclose(in_key_cam, in_prev_cam)  # the ego moved between the frames
    from_key = sensor_to_key_ego(KEY, KEY) @ in_key_cam
    from_prev = sensor_to_key_ego(KEY, PREVIOUS) @ in_prev_cam
    np.testing.assert_allclose(from_prev, from_key, atol=1e-9)
    np.testing.assert_allclose(from_key, invert_transform(pose_to_matrix(KEY["ego_pose"])) @ world)
    # key sensor -> previous sensor takes the key camera's view to the previous camera's view.
    np.testing.assert_allclose(key_sensor_to_sensor(KEY, PREVIOUS) @ in_key_cam, in_prev_cam)
