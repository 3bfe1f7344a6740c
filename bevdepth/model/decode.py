"""Head outputs -> 3D boxes: top-K peaks, box decoding, score / range filter, circle NMS."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from bevdepth.model.config import BEVDepthConfig
from bevdepth.model.head import TaskPrediction
from bevdepth.model.nms import circle_nms


class Detections(NamedTuple):
    """Boxes of one sample; unpacks as ``boxes, scores, labels`` like the reference list.

    Attributes:
        boxes: (M, 9) [x, y, z (gravity centre, quirk 12), dx, dy, dz, yaw, vx, vy].
        scores: (M,) sigmoid scores.
        labels: (M,) int64 indices into ``DETECTION_CLASSES``.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor


def decode_task(pred: TaskPrediction, config: BEVDepthConfig) -> list[Detections]:
    """Candidate boxes of one task group, before NMS (labels local to the task).

    Args:
        pred: branch maps of shape (B, ., Y, X).
        config: model configuration (head geometry and decode options).

    Returns:
        Per sample, the top-K peaks whose score passes the threshold and whose centre lies in
        ``post_center_range``.
    """
    heatmap = pred["heatmap"].float().sigmoid()
    batch, _, height, width = heatmap.shape
    opts, head = config.decode, config.head
    k = min(opts.max_num, height * width)
    # Top-K per class, then top-K over the union (reference CenterPointBBoxCoder._topk).
    class_scores, class_index = torch.topk(heatmap.flatten(2), k)
    scores, flat = torch.topk(class_scores.flatten(1), k)
    labels = flat // k
    index = class_index.flatten(1).gather(1, flat)
    rows = (index // width).float()
    cols = (index % width).float()

    def gather(name: str) -> Tensor:
        values = pred[name].float().flatten(2)
        return values.gather(2, index.unsqueeze(1).expand(-1, values.shape[1], -1)).transpose(1, 2)

    reg = gather("reg")
    rot = gather("rot")
    x_min, y_min = config.pc_range[:2]
    xs = (cols + reg[..., 0]) * head.out_size_factor * head.voxel_size[0] + x_min
    ys = (rows + reg[..., 1]) * head.out_size_factor * head.voxel_size[1] + y_min
    boxes = torch.cat(
        [
            xs.unsqueeze(-1),
            ys.unsqueeze(-1),
            gather("height"),
            gather("dim").exp(),  # dims are regressed as logs (norm_bbox)
            torch.atan2(rot[..., 0:1], rot[..., 1:2]),
            gather("vel"),
        ],
        dim=-1,
    )
    limits = torch.tensor(opts.post_center_range, device=boxes.device)
    keep = (boxes[..., :3] >= limits[:3]).all(-1) & (boxes[..., :3] <= limits[3:]).all(-1)
    keep &= scores > opts.score_threshold
    return [
        Detections(boxes[i, keep[i]], scores[i, keep[i]], labels[i, keep[i]]) for i in range(batch)
    ]


def decode(preds: list[TaskPrediction], config: BEVDepthConfig) -> list[Detections]:
    """Final boxes of every sample: per task decode and circle NMS, then tasks concatenated.

    Args:
        preds: head outputs, one dict per task group.
        config: model configuration.

    Returns:
        One :class:`Detections` per sample with global class labels.
    """
    per_task = []
    first_label = 0
    for task_id, pred in enumerate(preds):
        kept = []
        for dets in decode_task(pred, config):
            keep = circle_nms(
                dets.boxes[:, :2],
                dets.scores,
                config.decode.nms_radius[task_id],
                config.decode.post_max_size,
            )
            kept.append(
                Detections(dets.boxes[keep], dets.scores[keep], dets.labels[keep] + first_label)
            )
        per_task.append(kept)
        first_label += config.head.num_classes[task_id]
    return [
        Detections(
            torch.cat([task[i].boxes for task in per_task]),
            torch.cat([task[i].scores for task in per_task]),
            torch.cat([task[i].labels for task in per_task]),
        )
        for i in range(len(per_task[0]))
    ]
