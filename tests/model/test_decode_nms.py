"""Circle NMS and the decode filters on cases solved by hand."""

from __future__ import annotations

import torch

from bevdepth.model.config import preset
from bevdepth.model.decode import decode, decode_task
from bevdepth.model.nms import circle_nms

CFG = preset("reference")


def test_circle_nms_greedy_by_score() -> None:
    centers = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.5, 0.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # Best (3.5, 0) kept; (0, 0) is 12.25 m^2 away, kept; (1, 0) is 1 m^2 from (0, 0) -> dropped
    # (<= threshold); (3, 0) is 0.25 m^2 from (3.5, 0) -> dropped.
    assert circle_nms(centers, scores, threshold=1.0, max_keep=83).tolist() == [3, 0]


def test_circle_nms_threshold_is_a_squared_distance() -> None:
    centers = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    scores = torch.tensor([0.9, 0.8])
    # The car threshold is 4: 3 m apart is 9 m^2 > 4, so both stay (a radius of 4 m would merge).
    assert circle_nms(centers, scores, threshold=4.0, max_keep=83).tolist() == [0, 1]
    assert circle_nms(centers, scores, threshold=9.0, max_keep=83).tolist() == [0]


def test_circle_nms_keeps_at_most_max_keep() -> None:
    centers = torch.arange(10.0).repeat_interleave(2).view(10, 2) * 10
    scores = torch.linspace(0.1, 1.0, 10)
    assert circle_nms(centers, scores, threshold=1.0, max_keep=3).tolist() == [9, 8, 7]


def _task_preds(n_cls: int, peaks: list[tuple[int, int, int, float]], height: float = 0.0):
    heat = torch.full((1, n_cls, 128, 128), -10.0)
    for cls, row, col, logit in peaks:
        heat[0, cls, row, col] = logit
    zeros = torch.zeros(1, 1, 128, 128)
    return {
        "reg": torch.zeros(1, 2, 128, 128),
        "height": zeros + height,
        "dim": torch.zeros(1, 3, 128, 128),
        "rot": torch.cat([zeros, zeros + 1], dim=1),
        "vel": torch.zeros(1, 2, 128, 128),
        "heatmap": heat,
    }


def test_decode_thresholds_position_and_labels() -> None:
    # Task 1 (truck, construction_vehicle): one peak per class; one below the 0.1 score threshold.
    pred = _task_preds(2, [(0, 10, 20, 2.0), (1, 100, 5, 0.0), (1, 50, 50, -2.5)])
    (dets,) = decode_task(pred, CFG)
    assert dets.scores.tolist() == [torch.tensor(2.0).sigmoid().item(), 0.5]
    assert dets.labels.tolist() == [0, 1]
    # x = col * 4 * 0.2 - 51.2, y = row * 0.8 - 51.2; dims exp(0) = 1, yaw atan2(0, 1) = 0.
    expected_first = torch.tensor([20 * 0.8 - 51.2, 10 * 0.8 - 51.2, 0, 1, 1, 1, 0, 0, 0])
    torch.testing.assert_close(dets.boxes[0], expected_first)

    # Centres outside post_center_range (|z| > 10) are dropped.
    (high,) = decode_task(_task_preds(2, [(0, 10, 20, 2.0)], height=11.0), CFG)
    assert high.boxes.shape[0] == 0

    # decode() offsets the labels of task 1 by the one class of task 0.
    empty = _task_preds(1, [])
    preds = [empty, pred] + [_task_preds(n, []) for n in (2, 1, 2, 2)]
    (merged,) = decode(preds, CFG)
    assert merged.labels.tolist() == [1, 2]
