"""CenterPoint training targets: Gaussian heatmaps and box regression targets per task group.

Arithmetic mirrors the reference (float32 tensors, truncation with ``int``) so targets match
bit-for-bit at cell borders.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bevdepth.model.config import BEVDepthConfig

CODE_SIZE = 10
"""Regression target: [dx_cell, dy_cell, z, log dx, log dy, log dz, sin yaw, cos yaw, vx, vy]."""


@dataclass(frozen=True)
class TaskTargets:
    """Targets of one task group for a batch.

    Attributes:
        heatmap: (B, n_cls, Y, X) Gaussian peaks, 1 at box centres.
        anno_box: (B, max_objs, 10) regression targets (zero where ``mask`` is 0).
        ind: (B, max_objs) int64 flat heatmap index ``y * X + x`` of each box (quirk 5).
        mask: (B, max_objs) 1 for slots holding a box.
    """

    heatmap: Tensor
    anno_box: Tensor
    ind: Tensor
    mask: Tensor

    def to(self, device: torch.device) -> TaskTargets:
        parts = (self.heatmap, self.anno_box, self.ind, self.mask)
        return TaskTargets(*(t.to(device) for t in parts))


def gaussian_radius(height: Tensor, width: Tensor, min_overlap: float) -> Tensor:
    """Radius (in heatmap cells) of mmdet3d's CornerNet-style Gaussian.

    Each of the three quadratic roots is taken as ``(b + sqrt(b^2 - 4ac)) / 2``, without the
    division by ``2a`` of the real root: a known upstream quirk that the checkpoints were trained
    with, so it is kept.

    Args:
        height, width: box size in heatmap cells (any broadcastable shape, float32).
        min_overlap: the reference uses 0.1.

    Returns:
        The smallest of the three values, same shape.
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2**2 - 4 * 4 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def gaussian_2d(radius: int) -> Tensor:
    """(2r+1, 2r+1) Gaussian with sigma = (2r+1)/6 and peak 1, computed in float64.

    Values below ``eps * max`` are zeroed, as in the reference.
    """
    diameter = 2 * radius + 1
    sigma = diameter / 6
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    gaussian = torch.exp(-(offsets[None, :] ** 2 + offsets[:, None] ** 2) / (2 * sigma * sigma))
    gaussian[gaussian < torch.finfo(torch.float64).eps * gaussian.max()] = 0
    return gaussian


def draw_heatmap_gaussian(heatmap: Tensor, x: int, y: int, radius: int) -> None:
    """Merge a Gaussian centred on cell (x, y) into ``heatmap`` (Y, X) by element-wise max."""
    height, width = heatmap.shape
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    if left + right <= 0 or top + bottom <= 0:
        return
    gaussian = gaussian_2d(radius)[radius - top : radius + bottom, radius - left : radius + right]
    window = heatmap[y - top : y + bottom, x - left : x + right]
    torch.maximum(window, gaussian.to(heatmap), out=window)


def build_targets(
    gt_boxes: list[Tensor], gt_labels: list[Tensor], config: BEVDepthConfig
) -> list[TaskTargets]:
    """Targets of every task group for a batch (computed on CPU, like the Ascend port).

    Args:
        gt_boxes: per sample (M, 9) [x, y, z, dx, dy, dz, yaw, vx, vy].
        gt_labels: per sample (M,) indices into ``DETECTION_CLASSES``.
        config: model configuration (grid, head geometry, target options).

    Returns:
        One :class:`TaskTargets` per task group, on CPU.
    """
    samples = [
        _sample_targets(boxes.detach().cpu().float(), labels.detach().cpu(), config)
        for boxes, labels in zip(gt_boxes, gt_labels, strict=True)
    ]
    return [
        TaskTargets(*(torch.stack(parts) for parts in zip(*per_task, strict=True)))
        for per_task in zip(*samples, strict=True)
    ]


def heatmap_size(config: BEVDepthConfig) -> tuple[int, int]:
    """(Y, X) of the heatmap: detection-voxel grid divided by ``out_size_factor``."""
    x0, y0, _, x1, y1, _ = config.pc_range
    head = config.head
    return (
        round((y1 - y0) / head.voxel_size[1]) // head.out_size_factor,
        round((x1 - x0) / head.voxel_size[0]) // head.out_size_factor,
    )


def _sample_targets(
    boxes: Tensor, labels: Tensor, config: BEVDepthConfig
) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    head, options = config.head, config.targets
    size_y, size_x = heatmap_size(config)
    voxel_size = torch.tensor(head.voxel_size, dtype=torch.float32)
    pc_min = torch.tensor(config.pc_range[:2], dtype=torch.float32)
    factor = head.out_size_factor
    targets = []
    first_label = 0
    for task_classes in head.tasks:
        heatmap = torch.zeros(len(task_classes), size_y, size_x)
        anno_box = torch.zeros(options.max_objs, CODE_SIZE)
        ind = torch.zeros(options.max_objs, dtype=torch.int64)
        mask = torch.zeros(options.max_objs, dtype=torch.uint8)
        # Boxes of the task grouped by class, in the task's class order (reference order).
        order = [
            torch.nonzero(labels == first_label + k).flatten() for k in range(len(task_classes))
        ]
        task_index = torch.cat(order)[: options.max_objs]
        task_boxes = boxes[task_index]
        task_cls = labels[task_index] - first_label
        first_label += len(task_classes)

        width = task_boxes[:, 3] / voxel_size[0] / factor
        length = task_boxes[:, 4] / voxel_size[1] / factor
        radius = gaussian_radius(length, width, options.gaussian_overlap)
        center = (task_boxes[:, :2] - pc_min) / voxel_size / factor
        center_int = center.to(torch.int32)  # truncation toward zero, like the reference
        for k in range(task_boxes.shape[0]):
            if not (width[k] > 0 and length[k] > 0):
                continue
            x, y = int(center_int[k, 0]), int(center_int[k, 1])
            if not (0 <= x < size_x and 0 <= y < size_y):
                continue
            r = max(options.min_radius, int(radius[k]))
            draw_heatmap_gaussian(heatmap[int(task_cls[k])], x, y, r)
            ind[k] = y * size_x + x
            mask[k] = 1
            box = task_boxes[k]
            anno_box[k] = torch.cat(
                [
                    center[k] - center_int[k].float(),
                    box[2:3],
                    box[3:6].log(),
                    torch.sin(box[6:7]),
                    torch.cos(box[6:7]),
                    box[7:9],
                ]
            )
        targets.append((heatmap, anno_box, ind, mask))
    return targets
