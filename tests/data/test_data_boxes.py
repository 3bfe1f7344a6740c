"""GT boxes in the mean-camera ego frame and their BEV augmentation (fact sheet 4.3, 1.4)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from nuscenes.eval.detection.utils import category_to_detection_name
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from bevdepth.data.augment import BevAugParams
from bevdepth.data.boxes import (
    CATEGORY_TO_DETECTION,
    annotation_boxes,
    apply_bda_to_boxes,
    mean_ego_pose,
)
from bevdepth.data.constants import DETECTION_CLASSES
from bevdepth.data.geometry import bda_matrix
from bevdepth.data.poses import yaw_to_quaternion

NUSCENES_CATEGORIES = (
    "animal",
    "human.pedestrian.adult",
    "human.pedestrian.child",
    "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer",
    "human.pedestrian.stroller",
    "human.pedestrian.wheelchair",
    "movable_object.barrier",
    "movable_object.debris",
    "movable_object.pushable_pullable",
    "movable_object.trafficcone",
    "static_object.bicycle_rack",
    "vehicle.bicycle",
    "vehicle.bus.bendy",
    "vehicle.bus.rigid",
    "vehicle.car",
    "vehicle.construction",
    "vehicle.emergency.ambulance",
    "vehicle.emergency.police",
    "vehicle.motorcycle",
    "vehicle.trailer",
    "vehicle.truck",
)


def ann(category="vehicle.car", translation=(0.0, 0.0, 0.0), rotation=None, **kw) -> dict:
    return {
        "translation": list(translation),
        "size": kw.get("size", [2.0, 4.0, 1.5]),
        "rotation": rotation or [1.0, 0.0, 0.0, 0.0],
        "velocity": np.array(kw.get("velocity", [0.0, 0.0, 0.0])),
        "num_lidar_pts": kw.get("lidar", 5),
        "num_radar_pts": kw.get("radar", 0),
        "category_name": category,
    }


def test_category_table_equals_the_devkit_mapping():
    for category in NUSCENES_CATEGORIES:
        assert CATEGORY_TO_DETECTION.get(category) == category_to_detection_name(category)
    assert set(CATEGORY_TO_DETECTION.values()) == set(DETECTION_CLASSES)


def test_hand_computed_box_for_a_yawed_ego():
    # Ego at (10, 20, 0) facing global +y (yaw 90 deg): ego x = global y, ego y = global -x.
    rotation, translation = np.array(yaw_to_quaternion(np.pi / 2)), np.array([10.0, 20.0, 0.0])
    box = ann(
        translation=(10.0, 25.0, 1.0),
        rotation=yaw_to_quaternion(np.pi / 2 + 0.3),
        size=[2.0, 4.0, 1.5],  # w, l, h
        velocity=[0.0, 3.0, 0.0],
    )
    boxes, labels = annotation_boxes([box], rotation, translation)
    np.testing.assert_allclose(boxes[0], [5.0, 0.0, 1.0, 4.0, 2.0, 1.5, 0.3, 3.0, 0.0], atol=1e-5)
    assert boxes.dtype == np.float32
    assert labels.tolist() == [DETECTION_CLASSES.index("car")]


def test_filters_unmapped_categories_and_boxes_without_points():
    anns = [
        ann("vehicle.car"),
        ann("animal"),
        ann("vehicle.emergency.police"),
        ann("movable_object.debris"),
        ann("human.pedestrian.police_officer"),
        ann("vehicle.truck", lidar=0, radar=0),
        ann("vehicle.bus.rigid", lidar=0, radar=2),  # radar points alone are enough
        ann("movable_object.trafficcone", lidar=-1, radar=1),  # sum <= 0
    ]
    boxes, labels = annotation_boxes(anns, np.array([1.0, 0, 0, 0]), np.zeros(3))
    assert boxes.shape == (3, 9)
    assert [DETECTION_CLASSES[i] for i in labels] == ["car", "pedestrian", "bus"]


def test_classes_subset_relabels():
    boxes, labels = annotation_boxes(
        [ann("vehicle.car"), ann("vehicle.truck")], np.array([1.0, 0, 0, 0]), np.zeros(3), ["truck"]
    )
    assert labels.tolist() == [0]
    assert boxes.shape == (1, 9)


def test_no_boxes_gives_empty_arrays():
    boxes, labels = annotation_boxes([ann("animal")], np.array([1.0, 0, 0, 0]), np.zeros(3))
    assert boxes.shape == (0, 9)
    assert labels.shape == (0,)
    assert labels.dtype == np.int64


def test_mean_ego_pose_is_the_elementwise_camera_mean():
    poses = {
        "A": {"rotation": yaw_to_quaternion(0.0), "translation": [0.0, 0.0, 0.0]},
        "B": {"rotation": yaw_to_quaternion(0.2), "translation": [2.0, 1.0, 0.0]},
    }
    cam_infos = {name: {"ego_pose": p} for name, p in poses.items()}
    rotation, translation = mean_ego_pose(cam_infos, ["A", "B"])
    np.testing.assert_allclose(translation, [1.0, 0.5, 0.0])
    expected = np.mean([yaw_to_quaternion(0.0), yaw_to_quaternion(0.2)], axis=0)
    np.testing.assert_allclose(rotation, expected / np.linalg.norm(expected))
    # For two yaws the normalized component mean is the half-way yaw.
    np.testing.assert_allclose(rotation, yaw_to_quaternion(0.1), atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_devkit_box_for_tilted_ego_poses(seed):
    rng = np.random.default_rng(seed)
    ego_rotation = Quaternion(axis=rng.normal(size=3), angle=rng.uniform(-0.3, 0.3)).q
    ego_translation = rng.uniform(-500, 500, 3)
    anns = [
        ann(
            translation=ego_translation + rng.uniform(-50, 50, 3),
            rotation=list(Quaternion(axis=[0, 0, 1], angle=rng.uniform(-np.pi, np.pi)).q),
            size=list(rng.uniform(0.5, 10, 3)),
            velocity=list(rng.normal(size=3)),
        )
        for _ in range(6)
    ]
    boxes, _ = annotation_boxes(anns, ego_rotation, ego_translation)
    for a, got in zip(anns, boxes, strict=True):
        box = Box(a["translation"], a["size"], Quaternion(a["rotation"]), velocity=a["velocity"])
        box.translate(-ego_translation)
        box.rotate(Quaternion(ego_rotation).inverse)
        expected = [
            *box.center,
            *box.wlh[[1, 0, 2]],
            box.orientation.yaw_pitch_roll[0],
            *box.velocity[:2],
        ]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def corners(box: np.ndarray) -> np.ndarray:
    """(8, 3) corners of a [x, y, z, dx, dy, dz, yaw, ...] box."""
    signs = np.array(list(itertools.product([-0.5, 0.5], repeat=3)))
    local = signs * box[3:6]
    c, s = np.cos(box[6]), np.sin(box[6])
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return local @ rot.T + box[:3]


def same_point_set(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two (K, 3) point sets are equal up to order."""
    distances = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return bool((distances.min(axis=1) < 1e-4).all() and (distances.min(axis=0) < 1e-4).all())


FLIPS = list(itertools.product([False, True], repeat=2))


@pytest.mark.parametrize(("flip_dx", "flip_dy"), FLIPS)
def test_bda_moves_boxes_like_the_geometry(flip_dx, flip_dy):
    params = BevAugParams(rotate=-13.0, scale=1.04, flip_dx=flip_dx, flip_dy=flip_dy)
    boxes = np.array(
        [
            [10.0, -4.0, 0.8, 4.5, 1.9, 1.6, 0.4, 3.0, -1.0],
            [-20.0, 7.0, 1.1, 0.7, 0.6, 1.8, -2.5, 0.5, 0.2],
        ],
        dtype=np.float32,
    )
    out = apply_bda_to_boxes(boxes, params)
    mat = bda_matrix(params)
    for before, after in zip(boxes.astype(np.float64), out.astype(np.float64), strict=True):
        moved = corners(before) @ mat[:3, :3].T + mat[:3, 3]
        assert same_point_set(moved, corners(after))
        # Heading vector follows the linear map (up to the scale), so yaw is consistent too.
        heading = mat[:2, :2] @ [np.cos(before[6]), np.sin(before[6])]
        np.testing.assert_allclose(
            heading / np.linalg.norm(heading), [np.cos(after[6]), np.sin(after[6])], atol=1e-5
        )
        # Velocity: rot_mat[:2, :2] v, which includes the scale (quirk 15).
        np.testing.assert_allclose(after[7:], mat[:2, :2] @ before[7:], rtol=1e-5)


def test_bda_yaw_rules_and_velocity_scale():
    box = np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.3, 2.0, 1.0]], dtype=np.float32)
    out = apply_bda_to_boxes(box, BevAugParams(rotate=10.0, scale=1.05, flip_dx=True))[0]
    assert out[6] == pytest.approx(np.pi - (0.3 + np.deg2rad(10.0)), abs=1e-6)
    np.testing.assert_allclose(out[3:6], [4.2, 2.1, 1.575], rtol=1e-6)
    out = apply_bda_to_boxes(box, BevAugParams(scale=1.05, flip_dy=True))[0]
    assert out[6] == pytest.approx(-0.3)
    np.testing.assert_allclose(out[7:], [2.1, -1.05], rtol=1e-6)
    out = apply_bda_to_boxes(box, BevAugParams(scale=1.05))[0]
    np.testing.assert_allclose(out[7:], [2.1, 1.05], rtol=1e-6)


def test_bda_identity_and_empty():
    box = np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.3, 2.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(apply_bda_to_boxes(box, BevAugParams()), box)
    assert apply_bda_to_boxes(np.zeros((0, 9), np.float32), BevAugParams(rotate=5)).shape == (0, 9)
