"""Typed samples and batches: what the dataset yields and what the model consumes.

Shapes use F = frames (key frame first, then the previous key frames), N = cameras
(order of ``bevdepth.data.constants.CAMERAS``), H x W = network input size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class CameraMats:
    """Camera and augmentation matrices.

    ``sensor2ego_mats``: (..., F, N, 4, 4) camera -> current key-frame ego (per camera pose).
    ``intrin_mats``: (..., F, N, 4, 4) intrinsics K padded to 4x4.
    ``ida_mats``: (..., F, N, 4, 4) image-data augmentation (resize, crop, flip, rotate).
    ``sensor2sensor_mats``: (..., F, N, 4, 4) key camera -> camera of frame f (unused by BEVDepth).
    ``bda_mat``: (..., 4, 4) BEV-data augmentation (rotate, scale, flip), shared by all frames.
    """

    sensor2ego_mats: torch.Tensor
    intrin_mats: torch.Tensor
    ida_mats: torch.Tensor
    sensor2sensor_mats: torch.Tensor
    bda_mat: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        """The reference ``mats_dict`` with its key names."""
        return {
            "sensor2ego_mats": self.sensor2ego_mats,
            "intrin_mats": self.intrin_mats,
            "ida_mats": self.ida_mats,
            "sensor2sensor_mats": self.sensor2sensor_mats,
            "bda_mat": self.bda_mat,
        }


@dataclass
class Sample:
    """One dataset item (reference `__getitem__`).

    ``imgs``: (F, N, 3, H, W) float32, normalized, channels in B, G, R order (reference quirk).
    ``timestamps``: (F, N) int64 microseconds.
    ``gt_boxes``: (M, 9) [x, y, z, dx, dy, dz, yaw, vx, vy] in the key-frame mean-camera ego frame.
    ``gt_labels``: (M,) int64 index into DETECTION_CLASSES.
    ``depth_labels``: (1, N, H, W) float32 metres (0 = no lidar point), training only.
    """

    imgs: torch.Tensor
    mats: CameraMats
    timestamps: torch.Tensor
    img_metas: dict[str, Any]
    gt_boxes: torch.Tensor
    gt_labels: torch.Tensor
    depth_labels: torch.Tensor | None = None


@dataclass
class Batch:
    """A collated batch: every tensor of ``Sample`` with a leading batch axis B.

    Boxes and labels stay per-sample lists because their count differs.
    """

    imgs: torch.Tensor
    mats: CameraMats
    timestamps: torch.Tensor
    img_metas: list[dict[str, Any]]
    gt_boxes: list[torch.Tensor] = field(default_factory=list)
    gt_labels: list[torch.Tensor] = field(default_factory=list)
    depth_labels: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.imgs.shape[0]
