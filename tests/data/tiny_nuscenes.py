"""A tiny hand-built dataroot (info pickles, JPEGs, depth files) for the dataset tests.

A helper module rather than a conftest, so that it cannot collide with the shared fixtures.

Three key samples: two in scene "scene-a" (the second one's previous frame is the first) and one
in "scene-b". The ego drives along +x; cameras look outwards at the reference yaw of each
channel. Images are smooth gradients with a per-camera tint, so they decode fast and differ.
"""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bevdepth.data.constants import CAMERAS, IMAGE_HEIGHT, IMAGE_WIDTH, LIDAR
from bevdepth.data.depth_gt import depth_file
from bevdepth.data.poses import matrix_to_quaternion, rotation_z, yaw_to_quaternion

INTRINSIC = [[1266.0, 0.0, 816.0], [0.0, 1266.0, 491.0], [0.0, 0.0, 1.0]]
# Camera axes (x right, y down, z forward) -> ego axes (x forward, y left, z up), looking along +x.
CAM_TO_EGO_FORWARD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
CAMERA_YAW_DEG = {
    "CAM_FRONT_LEFT": 55.0,
    "CAM_FRONT": 0.0,
    "CAM_FRONT_RIGHT": -55.0,
    "CAM_BACK_LEFT": 110.0,
    "CAM_BACK": 180.0,
    "CAM_BACK_RIGHT": -110.0,
}


def camera_rotation(cam: str) -> list[float]:
    """Quaternion camera -> ego of a camera mounted at the reference yaw."""
    return matrix_to_quaternion(rotation_z(np.deg2rad(CAMERA_YAW_DEG[cam])) @ CAM_TO_EGO_FORWARD)


def pose(rotation: list[float], translation: list[float], timestamp: int) -> dict[str, Any]:
    return {
        "token": "pose",
        "timestamp": timestamp,
        "rotation": rotation,
        "translation": translation,
    }


def cam_info(cam: str, filename: str, ego_pose: dict[str, Any], timestamp: int) -> dict[str, Any]:
    return {
        "sample_token": "s",
        "timestamp": timestamp,
        "is_key_frame": True,
        "height": IMAGE_HEIGHT,
        "width": IMAGE_WIDTH,
        "filename": filename,
        "ego_pose": ego_pose,
        "calibrated_sensor": {
            "token": f"calib-{cam}",
            "sensor_token": f"sensor-{cam}",
            "translation": [1.0, 0.0, 1.5],
            "rotation": camera_rotation(cam),
            "camera_intrinsic": INTRINSIC,
        },
    }


def annotation(
    category: str,
    translation: list[float],
    yaw: float = 0.0,
    *,
    size: tuple[float, float, float] = (2.0, 4.5, 1.6),
    velocity: tuple[float, float, float] = (1.0, 0.0, 0.0),
    lidar_pts: int = 10,
    radar_pts: int = 0,
) -> dict[str, Any]:
    return {
        "token": f"ann-{category}",
        "translation": translation,
        "size": list(size),
        "rotation": yaw_to_quaternion(yaw),
        "velocity": np.asarray(velocity, dtype=np.float64),
        "num_lidar_pts": lidar_pts,
        "num_radar_pts": radar_pts,
        "category_name": category,
        "attribute_tokens": [],
    }


def make_info(
    index: int, scene: str, ego_x: float, *, annotated: bool = True
) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """One key sample; also returns (image filename, tint) per camera for writing the files."""
    timestamp = 1_000_000 + index * 500_000
    cams, files = {}, []
    for n, cam in enumerate(CAMERAS):
        # Each camera fires a little later than the previous one, so ego poses differ.
        ts = timestamp + n * 8_000
        ego = pose(yaw_to_quaternion(0.01 * n), [ego_x + 0.08 * n, 0.0, 0.0], ts)
        filename = f"samples/{cam}/{scene}_{index}_{cam}.jpg"
        cams[cam] = cam_info(cam, filename, ego, ts)
        files.append((filename, 40 * n))
    info: dict[str, Any] = {
        "sample_token": f"sample-{index}",
        "timestamp": timestamp,
        "scene_token": scene,
        "cam_infos": cams,
        "lidar_infos": {LIDAR: {"timestamp": timestamp, "ego_pose": ego, "filename": "x.bin"}},
        "cam_sweeps": [],
        "lidar_sweeps": [],
    }
    if annotated:
        info["ann_infos"] = [
            annotation("vehicle.car", [ego_x + 10.0, 2.0, 0.8], 0.3),
            annotation("human.pedestrian.adult", [ego_x - 5.0, -3.0, 0.9], 1.0),
            annotation("animal", [ego_x + 3.0, 3.0, 0.3]),
            annotation("vehicle.truck", [ego_x + 20.0, 0.0, 1.5], lidar_pts=0),
        ]
    return info, files


def write_image(path: Path, tint: int) -> None:
    """A smooth 1600x900 RGB gradient with a tint, as JPEG."""
    rows = np.linspace(0, 255, IMAGE_HEIGHT, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, IMAGE_WIDTH, dtype=np.float32)[None, :]
    rgb = np.stack([rows + 0 * cols, cols + 0 * rows, (rows + cols) / 2 + tint], axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=90)


def write_depth(path: Path, seed: int) -> None:
    """300 random (u, v, depth) float32 rows inside the original image."""
    rng = np.random.default_rng(seed)
    uvd = np.stack(
        [
            rng.uniform(2, IMAGE_WIDTH - 2, 300),
            rng.uniform(2, IMAGE_HEIGHT - 2, 300),
            rng.uniform(1, 60, 300),
        ],
        axis=1,
    ).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    uvd.tofile(path)


def build_tiny_root(root: Path) -> Path:
    """Write the three-sample dataroot (train split with depth, val and test splits)."""
    layout = [(0, "scene-a", 0.0), (1, "scene-a", 5.0), (2, "scene-b", 100.0)]
    train, test = [], []
    for index, scene, ego_x in layout:
        info, files = make_info(index, scene, ego_x)
        train.append(info)
        test.append(make_info(index, scene, ego_x, annotated=False)[0])
        for filename, tint in files:
            write_image(root / filename, tint)
            write_depth(depth_file(root, filename), seed=zlib.crc32(filename.encode()))
    for split, infos in (("train", train), ("val", train), ("test", test)):
        with (root / f"nuscenes_infos_{split}.pkl").open("wb") as f:
            pickle.dump(infos, f)
    return root
