"""Lift geometry and the camera vector, checked on hand-made matrices."""

from __future__ import annotations

import pytest
import torch

from bevdepth.data.batch import CameraMats
from bevdepth.model.config import GridConfig
from bevdepth.model.geometry import camera_vector, create_frustum, frustum_to_ego, voxel_indices
from bevdepth.model.testing import ida_matrix


def test_frustum_point_maps_to_the_ego_frame() -> None:
    grid = GridConfig(final_dim=(32, 32), downsample_factor=16, d_bound=(2.0, 6.0, 2.0))
    frustum = create_frustum(grid)  # u in {0, 31}, v in {0, 31}, d in {2, 4}
    assert frustum.shape == (2, 2, 2, 4)
    intrin = torch.eye(4)
    intrin[0, 0], intrin[1, 1], intrin[0, 2], intrin[1, 2] = 100.0, 100.0, 31.0, 0.0
    # Front camera 1.5 m up: camera z -> ego x, camera x -> ego -y, camera y -> ego -z.
    sensor2ego = torch.eye(4)
    sensor2ego[:3, :3] = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    sensor2ego[:3, 3] = torch.tensor([0.0, 0.0, 1.5])
    ida = torch.eye(4)
    ida[0, 3] = -31.0  # a crop shifting u by 31: input u = 0 was sensor pixel 31
    bda = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))  # flip x
    points = frustum_to_ego(
        frustum, sensor2ego[None, None], intrin[None, None], ida[None, None], bda[None]
    )
    assert points.shape == (1, 1, 2, 2, 2, 3)
    # u = 0 -> sensor u 31 = cx, v = 0 = cy: optical axis at depth 4 -> (4, 0, 1.5), x flipped.
    torch.testing.assert_close(points[0, 0, 1, 0, 0], torch.tensor([-4.0, 0.0, 1.5]))
    # u = 31 -> sensor 62: 31 px right of centre -> y = -4 * 31 / 100; v = 31 px down -> z.
    torch.testing.assert_close(
        points[0, 0, 1, 1, 1], torch.tensor([-4.0, -4 * 31 / 100, 1.5 - 4 * 31 / 100])
    )


def test_voxel_indices_truncate_toward_zero() -> None:
    size = torch.tensor([0.8, 0.8, 8.0])
    coord = torch.tensor([-50.8, -50.8, -1.0])
    points = torch.tensor([[-51.5, 0.0, 0.0], [-52.1, 51.1, 2.9], [0.0, 0.0, -12.0]])
    # -51.5 -> -0.375 -> 0 (kept, quirk 4); -52.1 -> -1.125 -> -1; z -12 -> -0.875 -> 0.
    assert voxel_indices(points, size, coord).tolist() == [[0, 64, 0], [-1, 127, 0], [64, 64, 0]]


def test_camera_vector_order_and_key_frame() -> None:
    batch, frames, cams = 2, 2, 3

    def filled(offset: float) -> torch.Tensor:
        values = torch.arange(16.0).view(4, 4) + offset
        return values.expand(batch, frames, cams, 4, 4).clone()

    intrin, ida, sensor2ego = filled(100), filled(200), filled(300)
    bda = (torch.arange(16.0).view(4, 4) + 400).expand(batch, 4, 4).clone()
    # Frame 1 must not be read (quirk 6).
    for mat in (intrin, ida, sensor2ego):
        mat[:, 1] = -1
    mats = CameraMats(sensor2ego, intrin, ida, torch.zeros_like(ida), bda)
    vector = camera_vector(mats)
    assert vector.shape == (batch * cams, 27)
    expected = (
        [100, 105, 102, 106]  # fx, fy, cx, cy
        + [200, 201, 203, 204, 205, 207]  # ida [0,0] [0,1] [0,3] [1,0] [1,1] [1,3]
        + [400, 401, 404, 405, 410]  # bda [0,0] [0,1] [1,0] [1,1] [2,2]
        + [300 + i for i in range(12)]  # sensor2ego[:3, :4] row-major
    )
    assert vector[0].tolist() == expected
    assert bool((vector == vector[0]).all())


def test_ida_matrix_matches_reference_test_crop() -> None:
    ida = ida_matrix((256, 704))
    # resize 0.44 -> 704 x 396, keep the bottom 256 rows: crop_h = 140, crop_w = 0.
    assert ida[0, 0].item() == ida[1, 1].item() == pytest.approx(0.44)
    assert ida[:2, 3].tolist() == [0.0, -140.0]
