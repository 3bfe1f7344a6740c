"""Plausible random inputs for tests and benchmarks (no dataset needed).

The camera rig imitates nuScenes: six cameras around the car (order of ``CAMERAS``), a 1600x900
sensor with a ~1266 px focal length, the reference test-time resize / crop into the network input,
and for previous frames the rig moved a few metres back.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bevdepth.data.batch import CameraMats
from bevdepth.data.constants import IMAGE_HEIGHT, IMAGE_WIDTH
from bevdepth.model.config import BEVDepthConfig

# Yaw of each camera's optical axis in the ego frame (x forward, y left), CAMERAS order.
CAMERA_YAWS_DEG = (55.0, 0.0, -55.0, 110.0, 180.0, -110.0)
FOCAL_PX = 1266.0
# Camera axes (x right, y down, z forward) expressed in the ego frame for a forward camera.
_CAM_TO_EGO_AXES = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _rot_z(angle: float) -> Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _transform(rotation: Tensor, translation: Tensor) -> Tensor:
    mat = torch.eye(4)
    mat[:3, :3] = rotation
    mat[:3, 3] = translation
    return mat


def ida_matrix(final_dim: tuple[int, int]) -> Tensor:
    """Reference test-time image augmentation: resize to cover, keep the bottom, centre in x."""
    height, width = final_dim
    resize = max(height / IMAGE_HEIGHT, width / IMAGE_WIDTH)
    new_w, new_h = int(IMAGE_WIDTH * resize), int(IMAGE_HEIGHT * resize)
    crop_w, crop_h = int(max(0, new_w - width) / 2), new_h - height
    ida = torch.eye(4)
    ida[0, 0] = ida[1, 1] = resize
    ida[0, 3], ida[1, 3] = -crop_w, -crop_h
    return ida


def bda_matrix(angle_deg: float = 0.0, scale: float = 1.0, flip_x: bool = False) -> Tensor:
    """BEV augmentation ``flip @ (scale * Rz(angle))`` as a 4x4 matrix."""
    rot = scale * _rot_z(math.radians(angle_deg))
    if flip_x:
        rot = torch.diag(torch.tensor([-1.0, 1.0, 1.0])) @ rot
    return _transform(rot, torch.zeros(3))


def make_camera_mats(
    config: BEVDepthConfig,
    batch: int = 1,
    *,
    generator: torch.Generator | None = None,
    augment: bool = True,
) -> CameraMats:
    """Camera matrices of a nuScenes-like rig.

    Args:
        config: model configuration (input size, number of frames).
        batch: B.
        generator: randomness for per-camera jitter, ego motion and BDA.
        augment: draw a random BDA (rotation, scale, x-flip); identity otherwise.

    Returns:
        ``CameraMats`` with (B, F, 6, 4, 4) entries and a (B, 4, 4) ``bda_mat``.
    """
    frames, cams = config.num_frames, len(CAMERA_YAWS_DEG)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    intrin = torch.eye(4)
    intrin[0, 0] = intrin[1, 1] = FOCAL_PX
    intrin[0, 2], intrin[1, 2] = IMAGE_WIDTH / 2, IMAGE_HEIGHT / 2
    ida = ida_matrix(config.grid.final_dim)
    sensor2ego = torch.empty(batch, frames, cams, 4, 4)
    bda = torch.empty(batch, 4, 4)
    for b in range(batch):
        rig = []
        for yaw_deg in CAMERA_YAWS_DEG:
            yaw = math.radians(yaw_deg + uniform(-2, 2))
            position = torch.tensor([1.0 * math.cos(yaw) + 0.5, 0.8 * math.sin(yaw), 1.6])
            rig.append(_transform(_rot_z(yaw) @ _CAM_TO_EGO_AXES, position))
        for f in range(frames):
            # Previous key frames: the car was ~4 m per frame behind, slightly turned.
            turn = _rot_z(math.radians(uniform(-3, 3)) * f)
            motion = _transform(turn, torch.tensor([-4.0 * f, 0.0, 0.0]))
            for n in range(cams):
                sensor2ego[b, f, n] = motion @ rig[n]
        bda[b] = (
            bda_matrix(uniform(-22.5, 22.5), uniform(0.95, 1.05), uniform(0, 1) < 0.5)
            if augment
            else torch.eye(4)
        )
    return CameraMats(
        sensor2ego_mats=sensor2ego,
        intrin_mats=intrin.expand(batch, frames, cams, 4, 4).clone(),
        ida_mats=ida.expand(batch, frames, cams, 4, 4).clone(),
        sensor2sensor_mats=torch.eye(4).expand(batch, frames, cams, 4, 4).clone(),
        bda_mat=bda,
    )


def random_images(
    config: BEVDepthConfig, batch: int = 1, *, generator: torch.Generator | None = None
) -> Tensor:
    """(B, F, 6, 3, H, W) normalized-looking images (standard normal noise)."""
    height, width = config.grid.final_dim
    shape = (batch, config.num_frames, len(CAMERA_YAWS_DEG), 3, height, width)
    return torch.randn(shape, generator=generator)


def random_boxes(
    config: BEVDepthConfig, count: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """(count, 9) boxes inside the BEV range and (count,) labels over all classes."""
    x0, y0, _, x1, y1, _ = config.pc_range

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(count, generator=generator)

    boxes = torch.stack(
        [
            uniform(x0 + 1, x1 - 1),
            uniform(y0 + 1, y1 - 1),
            uniform(-2, 1),
            uniform(0.5, 5),
            uniform(0.5, 3),
            uniform(1, 3),
            uniform(-math.pi, math.pi),
            uniform(-5, 5),
            uniform(-5, 5),
        ],
        dim=1,
    )
    num_classes = sum(config.head.num_classes)
    return boxes, torch.randint(0, num_classes, (count,), generator=generator)


def random_depth_labels(
    config: BEVDepthConfig,
    batch: int = 1,
    *,
    density: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, 1, 6, H, W) sparse LiDAR-like depth: ``density`` of the pixels get 1-60 m, rest 0."""
    height, width = config.grid.final_dim
    shape = (batch, 1, len(CAMERA_YAWS_DEG), height, width)
    depth = 1 + 59 * torch.rand(shape, generator=generator)
    return torch.where(torch.rand(shape, generator=generator) < density, depth, torch.zeros(shape))
