"""Depth and detection losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from bevdepth.model.config import LossConfig, preset
from bevdepth.model.losses import (
    clip_sigmoid,
    depth_loss,
    depth_targets,
    detection_loss,
    gaussian_focal_loss,
)
from bevdepth.model.targets import TaskTargets

GRID = preset("reference").grid


def _depth_map(values: dict[tuple[int, int], float]) -> torch.Tensor:
    depth = torch.zeros(1, 1, 256, 704)
    for (y, x), d in values.items():
        depth[0, 0, y, x] = d
    return depth


def test_depth_targets_min_pool_and_bins() -> None:
    depth = _depth_map(
        {
            (0, 0): 10.0,  # patch (0, 0): min(10, 7.2) = 7.2 -> bin (7.2 - 2) / 0.5 = 10.4 -> 10
            (15, 15): 7.2,
            (0, 16): 2.0,  # patch (0, 1): 2.0 -> bin 0
            (0, 32): 2.49,  # patch (0, 2): bin 0
            (0, 48): 57.9,  # patch (0, 3): bin 111
            (0, 64): 58.0,  # patch (0, 4): beyond the last bin -> no target
            (0, 80): 1.9,  # patch (0, 5): before the first bin -> no target
            (16, 0): 2.5,  # patch (1, 0): bin 1
        }
    )
    target = depth_targets(depth, GRID)
    assert target.shape == (16 * 44, 112)
    bins = {i: int(row.argmax()) for i, row in enumerate(target) if row.sum() > 0}
    assert bins == {0: 10, 1: 0, 2: 0, 3: 111, 44: 1}
    assert target.sum().item() == 5  # one-hot rows only, empty patches all zero


def test_depth_loss_value() -> None:
    depth = _depth_map({(3, 3): 7.2})
    pred = torch.full((1, 112, 16, 44), 1 / 112)
    # One foreground pixel: BCE summed over 112 bins, x 3.0.
    expected = 3.0 * (-math.log(1 / 112) - 111 * math.log(1 - 1 / 112))
    assert depth_loss(pred, depth, GRID, 3.0).item() == pytest.approx(expected, rel=1e-5)
    # The loader's (B, 1, N, H, W) layout is accepted too.
    assert depth_loss(pred, depth[:, None], GRID, 3.0).item() == pytest.approx(expected, rel=1e-5)
    # A confident correct prediction costs less.
    better = pred.clone()
    better[0, :, 0, 0] = 0.0001
    better[0, 10, 0, 0] = 1 - 111 * 0.0001
    assert depth_loss(better, depth, GRID, 3.0) < 0.1 * expected


def test_gaussian_focal_loss_elements() -> None:
    pred = torch.tensor([0.8, 0.3, 0.3])
    target = torch.tensor([1.0, 0.5, 0.0])
    loss = gaussian_focal_loss(pred, target, alpha=2.0, gamma=4.0)
    assert loss[0].item() == pytest.approx(-math.log(0.8) * 0.2**2)
    assert loss[1].item() == pytest.approx(-math.log(0.7) * 0.3**2 * 0.5**4)
    assert loss[2].item() == pytest.approx(-math.log(0.7) * 0.3**2)
    assert clip_sigmoid(torch.tensor([-100.0, 100.0])).tolist() == pytest.approx([1e-4, 1 - 1e-4])


def _one_task(box_target: torch.Tensor):
    heatmap = torch.zeros(1, 1, 4, 4)
    heatmap[0, 0, 1, 2] = 1.0
    target = TaskTargets(
        heatmap=heatmap,
        anno_box=torch.cat([box_target[None, None], torch.zeros(1, 1, 10)], dim=1),
        ind=torch.tensor([[1 * 4 + 2, 0]]),
        mask=torch.tensor([[1, 0]], dtype=torch.uint8),
    )
    return target


def test_detection_loss_l1_part() -> None:
    box = torch.arange(10.0) / 10
    target = _one_task(box)
    pred = {
        "reg": torch.zeros(1, 2, 4, 4),
        "height": torch.zeros(1, 1, 4, 4),
        "dim": torch.zeros(1, 3, 4, 4),
        "rot": torch.zeros(1, 2, 4, 4),
        "vel": torch.zeros(1, 2, 4, 4),
        "heatmap": torch.full((1, 1, 4, 4), -20.0),
    }
    pred["heatmap"][0, 0, 1, 2] = 20.0
    code = torch.cat([pred[k] for k in ("reg", "height", "dim", "rot", "vel")], dim=1)
    code[0, :, 1, 2] = box
    for i, key in enumerate(("reg", "height", "dim", "rot", "vel")):
        sizes = [2, 1, 3, 2, 2]
        start = sum(sizes[:i])
        pred[key] = code[:, start : start + sizes[i]].clone()
    config = LossConfig()
    perfect = detection_loss([pred], [target], config).item()
    # Heatmap almost perfect (clip at 1e-4), boxes exact: only the clipped focal terms remain.
    assert perfect < 1e-3
    pred["vel"][0, 1, 1, 2] += 2.0  # off by 2 in one code entry of the single object
    assert detection_loss([pred], [target], config).item() == pytest.approx(perfect + 0.25 * 2.0)
