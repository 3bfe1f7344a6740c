"""Detections -> nuScenes detection submission, and scoring it with the devkit (fact sheet 5).

Boxes are predicted in the key frame's ego frame, which the reference defines as the mean of
the six cameras' ego poses (quirk 14, ``img_metas["ego2global_*"]``). Each box is rotated by that
pose (centre, yaw and velocity) and translated into the global frame.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bevdepth.atomic import write_text_atomic
from bevdepth.data.boxes import quaternion_multiply
from bevdepth.data.constants import DETECTION_CLASSES
from bevdepth.data.infos import DatasetFileError, find_versions
from bevdepth.data.poses import quaternion_to_matrix
from bevdepth.model.decode import Detections

SubmissionBox = dict[str, Any]
EVAL_CONFIG = "detection_cvpr_2019"
MOVING_SPEED = 0.2  # m/s; the reference's threshold between the moving and parked attributes
# Devkit evaluation set of our split names, per annotated version.
_EVAL_SETS = {
    "v1.0-trainval": {"train": "train", "val": "val"},
    "v1.0-mini": {"train": "mini_train", "val": "mini_val"},
}
_DEFAULT_ATTRIBUTE = {
    "car": "vehicle.parked",
    "truck": "vehicle.parked",
    "construction_vehicle": "vehicle.parked",
    "trailer": "vehicle.parked",
    "bus": "vehicle.moving",
    "pedestrian": "pedestrian.moving",
    "motorcycle": "cycle.without_rider",
    "bicycle": "cycle.without_rider",
    "barrier": "",
    "traffic_cone": "",
}
_VEHICLES = frozenset({"car", "construction_vehicle", "bus", "truck", "trailer"})
_CYCLES = frozenset({"bicycle", "motorcycle"})
SUBMISSION_META = {
    "use_camera": True,
    "use_lidar": False,
    "use_radar": False,
    "use_map": False,
    "use_external": False,
}
# Devkit summary keys of the five true-positive errors.
TP_METRICS = {
    "mATE": "trans_err",
    "mASE": "scale_err",
    "mAOE": "orient_err",
    "mAVE": "vel_err",
    "mAAE": "attr_err",
}


def attribute_name(name: str, speed: float) -> str:
    """The reference's attribute of a detection from its class and global speed (m/s)."""
    if speed > MOVING_SPEED:
        if name in _VEHICLES:
            return "vehicle.moving"
        if name in _CYCLES:
            return "cycle.with_rider"
    else:
        if name == "pedestrian":
            return "pedestrian.standing"
        if name == "bus":
            return "vehicle.stopped"
    return _DEFAULT_ATTRIBUTE[name]


def ego_boxes_to_submission(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    img_meta: Mapping[str, Any],
    classes: Sequence[str] = DETECTION_CLASSES,
) -> list[SubmissionBox]:
    """Ego-frame boxes of one sample as submission records in the global frame.

    Args:
        boxes: (M, 9) [x, y, z (box centre), dx (length), dy (width), dz (height), yaw, vx, vy]
            in the sample's mean-camera ego frame.
        scores: (M,) detection scores.
        labels: (M,) indices into ``classes``.
        img_meta: the sample's ``token``, ``ego2global_rotation`` (4,) [w, x, y, z] and
            ``ego2global_translation`` (3,).
        classes: class names of the labels.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 9)
    rotation = np.asarray(img_meta["ego2global_rotation"], dtype=np.float64)
    rotation_matrix = quaternion_to_matrix(rotation)
    centres = boxes[:, :3] @ rotation_matrix.T + np.asarray(img_meta["ego2global_translation"])
    velocities = np.pad(boxes[:, 7:9], ((0, 0), (0, 1))) @ rotation_matrix.T
    half_yaw = boxes[:, 6] / 2
    yaw_quaternions = np.stack(
        [np.cos(half_yaw), np.zeros_like(half_yaw), np.zeros_like(half_yaw), np.sin(half_yaw)], 1
    )
    orientations = quaternion_multiply(rotation, yaw_quaternions)
    token = img_meta["token"]
    records = []
    for i, label in enumerate(np.asarray(labels).tolist()):
        name = classes[label]
        vx, vy = velocities[i, :2].tolist()
        records.append(
            {
                "sample_token": token,
                "translation": centres[i].tolist(),
                "size": boxes[i, [4, 3, 5]].tolist(),  # [w, l, h]
                "rotation": orientations[i].tolist(),
                "velocity": [vx, vy],
                "detection_name": name,
                "detection_score": float(scores[i]),
                "attribute_name": attribute_name(name, math.hypot(vx, vy)),
            }
        )
    return records


def submission_boxes(detections: Detections, img_meta: Mapping[str, Any]) -> list[SubmissionBox]:
    """:func:`ego_boxes_to_submission` of a model's :class:`Detections` (any device)."""
    return ego_boxes_to_submission(
        detections.boxes.detach().float().cpu().numpy(),
        detections.scores.detach().float().cpu().numpy(),
        detections.labels.detach().cpu().numpy(),
        img_meta,
    )


def eval_set_of(dataroot: str | os.PathLike, split: str) -> tuple[str, str]:
    """(nuScenes version, devkit evaluation set) of ``split`` under ``dataroot``.

    Raises:
        DatasetFileError: no annotated version (trainval or mini) under ``dataroot``.
    """
    annotated = [v for v in find_versions(dataroot) if v in _EVAL_SETS]
    if not annotated:
        raise DatasetFileError(
            f"{dataroot}: no annotated nuScenes version (v1.0-trainval or v1.0-mini) to score"
        )
    return annotated[0], _EVAL_SETS[annotated[0]][split]


def score_submission(
    dataroot: str | os.PathLike,
    version: str,
    eval_set: str,
    results: Mapping[str, list[SubmissionBox]],
    output_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Write ``results_nusc.json`` into ``output_dir`` and score it with ``DetectionEval``.

    Args:
        results: sample token -> boxes, for every sample of ``eval_set``.

    Returns:
        The devkit's serialized ``DetectionMetrics`` (``mean_ap``, ``nd_score``, ``tp_errors``,
        ``mean_dist_aps``, ``label_aps``, ``label_tp_errors``, ...).
    """
    from nuscenes import NuScenes
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    output_dir = Path(output_dir)
    result_path = output_dir / "results_nusc.json"
    write_text_atomic(result_path, json.dumps({"meta": SUBMISSION_META, "results": results}))
    nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    evaluation = DetectionEval(
        nusc,
        config=config_factory(EVAL_CONFIG),
        result_path=str(result_path),
        eval_set=eval_set,
        output_dir=str(output_dir),
        verbose=False,
    )
    metrics, _ = evaluation.evaluate()
    return metrics.serialize()


def summary_metrics(serialized: Mapping[str, Any]) -> dict[str, Any]:
    """The headline metrics of a devkit summary; NaN (nothing to measure) becomes None.

    Returns:
        mAP, mATE, mASE, mAOE, mAVE, mAAE, NDS, ``per_class_ap`` ({class: AP}),
        ``per_class_ap_by_distance`` ({class: {threshold: AP}}) and ``per_class_tp_errors``.
    """
    metrics = {"mAP": serialized["mean_ap"]}
    metrics |= {name: serialized["tp_errors"][key] for name, key in TP_METRICS.items()}
    metrics["NDS"] = serialized["nd_score"]
    metrics["per_class_ap"] = dict(serialized["mean_dist_aps"])
    metrics["per_class_ap_by_distance"] = {
        name: {str(dist): ap for dist, ap in aps.items()}
        for name, aps in serialized["label_aps"].items()
    }
    metrics["per_class_tp_errors"] = serialized["label_tp_errors"]
    return _finite_or_none(metrics)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
