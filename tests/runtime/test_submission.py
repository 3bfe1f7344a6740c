"""Submission format: the ground truth, converted like predictions, scores perfectly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bevdepth.data.boxes import annotation_boxes, mean_ego_pose
from bevdepth.data.constants import CAMERAS
from bevdepth.data.infos import load_infos
from bevdepth.runtime.submission import (
    attribute_name,
    ego_boxes_to_submission,
    eval_set_of,
    score_submission,
    summary_metrics,
)


@pytest.fixture(scope="module")
def ground_truth_scores(synthetic_root, tmp_path_factory):
    """Devkit metrics of the val ground truth, taken to the ego frame the way the dataset does
    and brought back by the conversion that predictions go through."""
    version, eval_set = eval_set_of(synthetic_root, "val")
    results = {}
    for info in load_infos(synthetic_root, "val", synthetic_root):
        rotation, translation = mean_ego_pose(info["cam_infos"], CAMERAS)
        boxes, labels = annotation_boxes(info["ann_infos"], rotation, translation)
        img_meta = {
            "token": info["sample_token"],
            "ego2global_rotation": rotation,
            "ego2global_translation": translation,
        }
        results[info["sample_token"]] = ego_boxes_to_submission(
            boxes, np.ones(len(boxes)), labels, img_meta
        )
    out = tmp_path_factory.mktemp("gt-eval")
    return summary_metrics(score_submission(synthetic_root, version, eval_set, results, out))


def test_ground_truth_gets_ap_one_for_every_class_present(ground_truth_scores):
    present = {name: ap for name, ap in ground_truth_scores["per_class_ap"].items() if ap}
    assert len(present) >= 5, ground_truth_scores["per_class_ap"]
    assert all(ap == pytest.approx(1.0) for ap in present.values()), present
    assert ground_truth_scores["mAP"] == pytest.approx(len(present) / 10)


def test_ground_truth_boxes_come_back_in_place(ground_truth_scores):
    # Centre, size, yaw and velocity all survive ego -> global (attributes follow the
    # reference's speed rule instead of the annotation, so the attribute error is not checked).
    # Absent classes count as error 1 in the means, so look at the classes present.
    present = [name for name, ap in ground_truth_scores["per_class_ap"].items() if ap]
    for name in present:
        errors = ground_truth_scores["per_class_tp_errors"][name]
        for metric in ("trans_err", "scale_err", "orient_err", "vel_err"):
            if errors[metric] is not None:  # no orientation error for cones, no speed for barriers
                assert errors[metric] == pytest.approx(0.0, abs=1e-3), (name, metric)


def test_rotation_of_centre_yaw_and_velocity():
    quarter = [math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]  # +90 deg about z
    box = np.array([[10.0, 0.0, 1.0, 4.0, 2.0, 1.5, 0.0, 3.0, 0.0]])
    meta = {"token": "t", "ego2global_rotation": quarter, "ego2global_translation": [100, 0, 0]}
    (record,) = ego_boxes_to_submission(box, np.array([0.5]), np.array([0]), meta)
    assert record["translation"] == pytest.approx([100.0, 10.0, 1.0])
    assert record["size"] == [2.0, 4.0, 1.5]  # [w, l, h]
    assert record["rotation"] == pytest.approx(quarter)
    assert record["velocity"] == pytest.approx([0.0, 3.0])
    assert (record["detection_name"], record["attribute_name"]) == ("car", "vehicle.moving")


@pytest.mark.parametrize(
    ("name", "speed", "attribute"),
    [
        ("car", 1.0, "vehicle.moving"),
        ("car", 0.1, "vehicle.parked"),
        ("bicycle", 1.0, "cycle.with_rider"),
        ("bicycle", 0.0, "cycle.without_rider"),
        ("pedestrian", 0.0, "pedestrian.standing"),
        ("pedestrian", 1.0, "pedestrian.moving"),
        ("bus", 0.0, "vehicle.stopped"),
        ("barrier", 0.0, ""),
    ],
)
def test_attribute_rules(name, speed, attribute):
    assert attribute_name(name, speed) == attribute
