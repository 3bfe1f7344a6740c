"""Heatmap / regression targets: hand-computed values and an encode -> decode round trip."""

from __future__ import annotations

import math

import pytest
import torch

from bevdepth.model.config import preset
from bevdepth.model.decode import decode
from bevdepth.model.targets import (
    build_targets,
    draw_heatmap_gaussian,
    gaussian_2d,
    gaussian_radius,
    heatmap_size,
)

CFG = preset("reference")


def test_gaussian_radius_uses_the_cornernet_quirk() -> None:
    # 10 x 10 cells, overlap 0.1, each root (b + sqrt(b^2 - 4ac)) / 2 without dividing by a:
    #   r1 = (20 + sqrt(400 - 4 * 81.818...)) / 2 = 14.2640
    #   r2 = (40 + sqrt(1600 - 16 * 90)) / 2 = 26.3246
    #   r3 = (-4 + sqrt(16 + 1.6 * 90)) / 2 = 4.3246
    radius = gaussian_radius(torch.tensor(10.0), torch.tensor(10.0), 0.1)
    assert radius.item() == pytest.approx(4.32456, abs=1e-4)
    # A 4.0 x 1.8 m car at 0.8 m cells: 5 x 2.25 cells -> r3 = (-1.45 + sqrt(2.1025 + 18)) / 2.
    car = gaussian_radius(torch.tensor(1.8 / 0.8), torch.tensor(4.0 / 0.8), 0.1)
    assert car.item() == pytest.approx((-1.45 + math.sqrt(1.45**2 + 1.6 * 0.9 * 11.25)) / 2)


def test_gaussian_values() -> None:
    g = gaussian_2d(2)  # diameter 5, sigma 5/6 -> exp(-r^2 / (2 * 25/36)) = exp(-0.72 r^2)
    assert g.shape == (5, 5)
    assert g[2, 2].item() == 1.0
    assert g[2, 3].item() == pytest.approx(math.exp(-0.72))
    assert g[1, 1].item() == pytest.approx(math.exp(-1.44))
    assert g[0, 0].item() == pytest.approx(math.exp(-5.76))


def test_draw_clips_at_border_and_merges_by_max() -> None:
    heatmap = torch.zeros(4, 6)
    heatmap[0, 2] = 0.9
    draw_heatmap_gaussian(heatmap, x=0, y=0, radius=2)
    assert heatmap[0, 0].item() == 1.0
    assert heatmap[0, 1].item() == pytest.approx(math.exp(-0.72))
    assert heatmap[0, 2].item() == pytest.approx(0.9)  # max(0.9, exp(-2.88)) keeps 0.9
    assert heatmap[2, 2].item() == pytest.approx(math.exp(-5.76))
    assert heatmap[3, 0].item() == 0.0 and heatmap[0, 3].item() == 0.0  # outside radius 2


def test_targets_of_one_box_by_hand() -> None:
    # A car at (10.3, -20.5): cells (10.3 + 51.2) / 0.8 = 76.875 and (-20.5 + 51.2) / 0.8 = 38.375.
    box = torch.tensor([[10.3, -20.5, 0.7, 4.0, 1.8, 1.5, 0.3, 2.0, -1.0]])
    (car, *others) = build_targets([box], [torch.tensor([0])], CFG)
    assert heatmap_size(CFG) == (128, 128)
    assert car.heatmap.shape == (1, 1, 128, 128)
    assert car.heatmap[0, 0, 38, 76].item() == 1.0  # rows are y (quirk 5)
    assert car.heatmap.eq(1).sum().item() == 1
    # Radius int(1.414) = 1 is raised to min_radius 2: a 5 x 5 Gaussian, corners exp(-5.76) > 0.
    assert (car.heatmap[0, 0] > 0).sum().item() == 25
    assert (car.heatmap[0, 0, 36:41, 74:79] > 0).all()
    assert car.ind[0, 0].item() == 38 * 128 + 76 and car.mask[0, 0].item() == 1
    offset_z = [0.875, 0.375, 0.7]
    log_dims = [math.log(4.0), math.log(1.8), math.log(1.5)]
    expected = torch.tensor([*offset_z, *log_dims, math.sin(0.3), math.cos(0.3), 2.0, -1.0])
    torch.testing.assert_close(car.anno_box[0, 0], expected, atol=1e-5, rtol=1e-5)
    assert car.mask[0, 1:].sum().item() == 0
    assert all(t.heatmap.sum().item() == 0 and t.mask.sum().item() == 0 for t in others)


def test_task_grouping_and_out_of_range_boxes() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],  # bicycle (7) -> task 4, class 1
            [5.0, 5.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],  # motorcycle (6) -> task 4, class 0
            [60.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],  # outside the grid: skipped
            # Truncation toward zero (quirk 4): x = -51.5 gives cell -0.375 -> index 0, kept.
            [-51.5, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        ]
    )
    labels = torch.tensor([7, 6, 0, 0])
    targets = build_targets([boxes], [labels], CFG)
    cycles = targets[4]
    # Slots are filled class by class in task order: motorcycle first, then bicycle.
    assert cycles.ind[0, :2].tolist() == [(64 + 6) * 128 + 70, 64 * 128 + 64]
    assert cycles.heatmap[0, 0, 70, 70].item() == 1.0 and cycles.heatmap[0, 1, 64, 64].item() == 1.0
    cars = targets[0]
    assert cars.mask[0].tolist()[:2] == [0, 1]
    assert cars.ind[0, 1].item() == 64 * 128 + 0


def test_encode_then_decode_gives_the_boxes_back() -> None:
    boxes = torch.tensor(
        [
            [10.3, -20.5, 0.7, 4.0, 1.8, 1.5, 0.3, 2.0, -1.0],
            [-30.1, 15.2, -0.4, 10.0, 2.9, 3.2, -2.0, 0.0, 0.5],
            [3.3, 3.9, 0.2, 0.6, 0.7, 1.7, 1.0, 0.1, 0.1],
        ]
    )
    labels = torch.tensor([0, 1, 8])  # car, truck, pedestrian
    targets = build_targets([boxes], [labels], CFG)
    preds = []
    for target in targets:
        n_cls = target.heatmap.shape[1]
        maps = torch.zeros(1, 10, 128 * 128)
        valid = target.mask[0].bool()
        maps[0, :, target.ind[0, valid]] = target.anno_box[0, valid].T
        maps = maps.view(1, 10, 128, 128)
        # Logit 5 at the exact centres (score 0.993), -10 elsewhere (score 4.5e-5).
        heat = torch.where(target.heatmap == 1, torch.tensor(5.0), torch.tensor(-10.0))
        preds.append(
            {
                "reg": maps[:, 0:2],
                "height": maps[:, 2:3],
                "dim": maps[:, 3:6],
                "rot": maps[:, 6:8],
                "vel": maps[:, 8:10],
                "heatmap": heat[:, :n_cls],
            }
        )
    (detections,) = decode(preds, CFG)
    order = torch.argsort(detections.labels)
    assert detections.labels[order].tolist() == [0, 1, 8]
    torch.testing.assert_close(detections.boxes[order], boxes, atol=1e-4, rtol=1e-4)
    expected_score = torch.tensor(5.0).sigmoid().item()
    torch.testing.assert_close(detections.scores, torch.full((3,), expected_score))
