"""Lift geometry: the camera frustum, its points in the ego frame, voxel indices, camera vector."""

from __future__ import annotations

import torch
from torch import Tensor

from bevdepth.data.batch import CameraMats
from bevdepth.model.config import GridConfig


def create_frustum(grid: GridConfig) -> Tensor:
    """Homogeneous image points (u, v, d, 1) of every depth bin and feature pixel.

    u / v are ``linspace(0, W - 1, w)`` / ``linspace(0, H - 1, h)`` in the augmented input image,
    not a stride-16 grid (quirk 3); d is ``arange(*d_bound)``.

    Returns:
        (D, h, w, 4) float32.
    """
    height, width = grid.final_dim
    feat_h, feat_w = grid.feature_size
    depth = torch.arange(*grid.d_bound, dtype=torch.float32)
    num_depth = depth.shape[0]
    depth = depth.view(-1, 1, 1).expand(num_depth, feat_h, feat_w)
    u = torch.linspace(0, width - 1, feat_w).view(1, 1, feat_w).expand(num_depth, feat_h, feat_w)
    v = torch.linspace(0, height - 1, feat_h).view(1, feat_h, 1).expand(num_depth, feat_h, feat_w)
    return torch.stack([u, v, depth, torch.ones_like(depth)], dim=-1)


def frustum_to_ego(
    frustum: Tensor, sensor2ego: Tensor, intrin: Tensor, ida: Tensor, bda: Tensor
) -> Tensor:
    """Frustum points in the (BEV-augmented) key ego frame.

    p = bda @ (sensor2ego @ K^-1) @ (u d, v d, d, 1) with (u, v) = ida^-1 (u', v').

    Args:
        frustum: (D, h, w, 4) from :func:`create_frustum`.
        sensor2ego: (B, N, 4, 4) camera -> key ego of the frame being lifted.
        intrin: (B, N, 4, 4) intrinsics.
        ida: (B, N, 4, 4) image augmentation.
        bda: (B, 4, 4) BEV augmentation.

    Returns:
        (B, N, D, h, w, 3) xyz in metres.
    """
    batch, cams = sensor2ego.shape[:2]
    points = ida.inverse().view(batch, cams, 1, 1, 1, 4, 4) @ frustum.unsqueeze(-1)
    points = torch.cat([points[..., :2, :] * points[..., 2:3, :], points[..., 2:, :]], dim=-2)
    # Same association as the reference (camera -> ego, then BDA) so truncation to voxel indices
    # sees the same rounding.
    cam_to_ego = sensor2ego @ intrin.inverse()
    points = cam_to_ego.view(batch, cams, 1, 1, 1, 4, 4) @ points
    points = bda.view(batch, 1, 1, 1, 1, 4, 4) @ points
    return points[..., :3, 0]


def voxel_indices(points: Tensor, voxel_size: Tensor, voxel_coord: Tensor) -> Tensor:
    """Integer voxel index of each point.

    The division result is truncated toward zero (``.int()``), not floored, so points up to one
    cell below the lower bound land in cell 0 (quirk 4). Out-of-grid indices are kept; pooling
    drops them.

    Args:
        points: (..., 3) xyz.
        voxel_size: (3,) cell size.
        voxel_coord: (3,) centre of the first cell.

    Returns:
        (..., 3) int32 (x, y, z) indices.
    """
    return ((points - (voxel_coord - voxel_size / 2.0)) / voxel_size).int()


def camera_vector(mats: CameraMats) -> Tensor:
    """The 27-value camera description fed to the DepthNet, from the key frame (quirk 6).

    Order per (batch, camera): fx, fy, cx, cy; ida[0,0], ida[0,1], ida[0,3], ida[1,0], ida[1,1],
    ida[1,3]; bda[0,0], bda[0,1], bda[1,0], bda[1,1], bda[2,2]; sensor2ego[:3, :4] row-major.

    Args:
        mats: matrices with (B, F, N, 4, 4) camera entries and a (B, 4, 4) ``bda_mat``.

    Returns:
        (B*N, 27), batch-major like the flattened images.
    """
    intrin = mats.intrin_mats[:, 0]
    ida = mats.ida_mats[:, 0]
    sensor2ego = mats.sensor2ego_mats[:, 0]
    batch, cams = intrin.shape[:2]
    bda = mats.bda_mat[:, None].expand(batch, cams, 4, 4)
    entries = [
        intrin[..., 0, 0],
        intrin[..., 1, 1],
        intrin[..., 0, 2],
        intrin[..., 1, 2],
        ida[..., 0, 0],
        ida[..., 0, 1],
        ida[..., 0, 3],
        ida[..., 1, 0],
        ida[..., 1, 1],
        ida[..., 1, 3],
        bda[..., 0, 0],
        bda[..., 0, 1],
        bda[..., 1, 0],
        bda[..., 1, 1],
        bda[..., 2, 2],
    ]
    vector = torch.cat([torch.stack(entries, dim=-1), sensor2ego[..., :3, :].flatten(-2)], dim=-1)
    return vector.reshape(batch * cams, -1)
