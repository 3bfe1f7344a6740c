"""Voxel pooling: both implementations against a Python loop and against each other."""

from __future__ import annotations

import pytest
import torch

from bevdepth.model.config import preset
from bevdepth.model.geometry import create_frustum, frustum_to_ego, voxel_indices
from bevdepth.model.testing import make_camera_mats
from bevdepth.model.voxel_pooling import (
    SplatPlan,
    lift,
    voxel_pooling,
    voxel_pooling_materialized,
)

VOXEL_NUM = (5, 4, 1)


def loop_pooling(geom_xyz, depth, context, voxel_num):
    """out[b, :, y, x] += depth * context for every point inside the grid."""
    batch, cams, bins, height, width, _ = geom_xyz.shape
    num_x, num_y, num_z = voxel_num
    out = context.new_zeros(batch, context.shape[1], num_y, num_x)
    for b in range(batch):
        for n in range(cams):
            for d in range(bins):
                for h in range(height):
                    for w in range(width):
                        x, y, z = geom_xyz[b, n, d, h, w].tolist()
                        if 0 <= x < num_x and 0 <= y < num_y and 0 <= z < num_z:
                            r = b * cams + n
                            out[b, :, y, x] += depth[r, d, h, w] * context[r, :, h, w]
    return out


def random_case(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    batch, cams, bins, height, width, channels = 2, 2, 5, 3, 4, 3
    shape = (batch, cams, bins, height, width)
    geom = torch.stack(
        [
            torch.randint(-1, VOXEL_NUM[0] + 1, shape, generator=gen),
            torch.randint(-1, VOXEL_NUM[1] + 1, shape, generator=gen),
            torch.randint(-1, 2, shape, generator=gen),
        ],
        dim=-1,
    ).int()
    depth = torch.rand(batch * cams, bins, height, width, generator=gen, dtype=dtype)
    context = torch.randn(batch * cams, channels, height, width, generator=gen, dtype=dtype)
    return geom, depth.requires_grad_(True), context.requires_grad_(True)


def test_both_versions_match_python_loop() -> None:
    geom, depth, context = random_case()
    expected = loop_pooling(geom, depth.detach(), context.detach(), VOXEL_NUM)
    assert expected.abs().sum() > 0
    materialized = voxel_pooling_materialized(geom, lift(depth, context, 2), VOXEL_NUM)
    torch.testing.assert_close(materialized, expected)
    torch.testing.assert_close(voxel_pooling(geom, depth, context, VOXEL_NUM), expected)


def test_points_outside_the_grid_are_dropped() -> None:
    geom = torch.tensor([[-1, 0, 0], [5, 0, 0], [0, 4, 0], [0, 0, 1], [0, 0, -1], [2, 3, 0]])
    geom = geom.view(1, 1, 6, 1, 1, 3).int()
    depth = torch.ones(1, 6, 1, 1)
    context = torch.ones(1, 1, 1, 1)
    expected = torch.zeros(1, 1, 4, 5)
    expected[0, 0, 3, 2] = 1  # only (x=2, y=3) is inside; rows are y
    torch.testing.assert_close(voxel_pooling(geom, depth, context, VOXEL_NUM), expected)
    torch.testing.assert_close(
        voxel_pooling_materialized(geom, lift(depth, context, 1), VOXEL_NUM), expected
    )


@pytest.mark.parametrize("fast", [True, False])
def test_gradcheck(fast: bool) -> None:
    geom, depth, context = random_case(torch.float64, seed=3)

    def pool(d, c):
        if fast:
            return voxel_pooling(geom, d, c, VOXEL_NUM)
        return voxel_pooling_materialized(geom, lift(d, c, 2), VOXEL_NUM)

    assert torch.autograd.gradcheck(pool, (depth, context))


def realistic_geometry(preset_name: str):
    cfg = preset(preset_name)
    mats = make_camera_mats(cfg, 2, generator=torch.Generator().manual_seed(0))
    points = frustum_to_ego(
        create_frustum(cfg.grid),
        mats.sensor2ego_mats[:, 0],
        mats.intrin_mats[:, 0],
        mats.ida_mats[:, 0],
        mats.bda_mat,
    )
    size = torch.tensor([b[2] for b in cfg.grid.bounds])
    coord = torch.tensor([b[0] + b[2] / 2 for b in cfg.grid.bounds])
    return cfg, voxel_indices(points, size, coord)


def test_fast_equals_materialized_forward_and_backward_on_camera_geometry() -> None:
    cfg, geom = realistic_geometry("small")
    gen = torch.Generator().manual_seed(1)
    h, w = cfg.grid.feature_size
    rows = geom.shape[0] * geom.shape[1]
    logits = torch.randn(rows, cfg.grid.depth_channels, h, w, generator=gen)
    depth = logits.softmax(1).requires_grad_(True)
    context = torch.randn(rows, 16, h, w, generator=gen).requires_grad_(True)
    grad_out = torch.randn(2, 16, *cfg.grid.voxel_num[1::-1], generator=gen)

    results = []
    for fast in (False, True):
        if fast:
            out = voxel_pooling(geom, depth, context, cfg.grid.voxel_num)
        else:
            out = voxel_pooling_materialized(geom, lift(depth, context, 2), cfg.grid.voxel_num)
        d_depth, d_context = torch.autograd.grad(out, (depth, context), grad_out)
        results.append((out, d_depth, d_context))
    assert results[0][0].abs().sum() > 0
    for slow_value, fast_value in zip(*results, strict=True):
        scale = slow_value.abs().max()
        assert (fast_value - slow_value).abs().max() <= 1e-5 * scale


def test_plan_merges_depth_bins_of_a_ray_that_share_a_cell() -> None:
    _, geom = realistic_geometry("reference")
    plan = SplatPlan.build(geom[:1], (128, 128, 1))
    valid = int(plan.valid.sum())
    assert 0 < plan.pair_cell.shape[0] < valid
    # Pairs are unique and sorted by (cell, column).
    keys = plan.pair_cell * plan.num_columns + plan.pair_column
    assert bool((keys[1:] > keys[:-1]).all())
