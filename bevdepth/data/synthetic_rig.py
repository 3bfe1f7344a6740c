"""The synthetic vehicle's sensor rig: six cameras and LIDAR_TOP, close to nuScenes' own.

Intrinsics and mounting positions follow the published nuScenes calibration in magnitude
(front cameras about 70 degrees wide, the back camera wider); rotations are exact yaws about the
ego's up axis so that the geometry stays easy to check by hand.
"""

from __future__ import annotations

import functools

import numpy as np

from bevdepth.data.constants import IMAGE_HEIGHT, IMAGE_WIDTH
from bevdepth.data.poses import make_transform, rotation_z
from bevdepth.data.synthetic_render import Camera, CameraRays

# Camera axes (x right, y down, z forward) expressed in ego axes (x forward, y left, z up).
_CAMERA_TO_FORWARD_EGO = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

# channel: (translation in ego metres, yaw in degrees, focal length in pixels)
_CAMERA_MOUNTS: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "CAM_FRONT": ((1.70, 0.02, 1.51), 0.0, 1266.0),
    "CAM_FRONT_RIGHT": ((1.55, -0.49, 1.52), -55.0, 1260.0),
    "CAM_BACK_RIGHT": ((1.03, -0.48, 1.56), -110.0, 1259.0),
    "CAM_BACK": ((0.03, 0.00, 1.57), 180.0, 809.0),
    "CAM_BACK_LEFT": ((1.04, 0.48, 1.56), 110.0, 1256.0),
    "CAM_FRONT_LEFT": ((1.52, 0.49, 1.51), 55.0, 1272.0),
}
# Cameras fire as the lidar sweeps past them; offsets from the sample time in microseconds.
CAMERA_TIME_OFFSETS_US: dict[str, int] = {
    "CAM_FRONT": 12_000,
    "CAM_FRONT_RIGHT": 20_000,
    "CAM_BACK_RIGHT": 29_000,
    "CAM_BACK": 37_000,
    "CAM_BACK_LEFT": 45_000,
    "CAM_FRONT_LEFT": 4_000,
}
CAMERA_CHANNELS: tuple[str, ...] = tuple(_CAMERA_MOUNTS)

# LIDAR_TOP: x to the right and y forward, as in nuScenes (a -90 degree yaw).
LIDAR_TO_EGO = make_transform(rotation_z(-np.pi / 2), (0.94, 0.0, 1.84))


def camera(channel: str) -> Camera:
    """The camera model of ``channel``."""
    translation, yaw_deg, focal = _CAMERA_MOUNTS[channel]
    intrinsic = np.array(
        [[focal, 0.0, IMAGE_WIDTH / 2 + 16.0], [0.0, focal, IMAGE_HEIGHT / 2 + 41.0], [0, 0, 1]]
    )
    rotation = rotation_z(np.deg2rad(yaw_deg)) @ _CAMERA_TO_FORWARD_EGO
    return Camera(
        intrinsic=intrinsic,
        sensor2ego=make_transform(rotation, translation),
        width=IMAGE_WIDTH,
        height=IMAGE_HEIGHT,
    )


@functools.cache
def camera_rays(channel: str) -> CameraRays:
    """Per-pixel rays of ``channel``, computed once per process (the rig never changes)."""
    return CameraRays(camera(channel))
