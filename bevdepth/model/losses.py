"""Training losses: Gaussian focal + L1 per task group, and the depth BCE. All in float32."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bevdepth.model.config import GridConfig, LossConfig
from bevdepth.model.head import TaskPrediction
from bevdepth.model.targets import TaskTargets

REGRESSION_ORDER = ("reg", "height", "dim", "rot", "vel")
"""Branches concatenated into the 10-value box code, in target order."""

# mmdet's weight_reduce_loss divides by (avg_factor + float32 eps).
_AVG_EPS = torch.finfo(torch.float32).eps
# Empty depth patches are set to this before the min-pool so they never win.
_NO_DEPTH = 1e5


def clip_sigmoid(x: Tensor, eps: float = 1e-4) -> Tensor:
    """Sigmoid clamped to [eps, 1 - eps] (keeps the focal loss finite)."""
    return torch.clamp(x.sigmoid(), min=eps, max=1 - eps)


def gaussian_focal_loss(pred: Tensor, target: Tensor, alpha: float, gamma: float) -> Tensor:
    """Element-wise CornerNet focal loss against a Gaussian heatmap.

    Args:
        pred: probabilities in (0, 1).
        target: heatmap, 1 at object centres.
        alpha, gamma: focusing exponents (2 and 4 in the reference).
    """
    eps = 1e-12
    pos = -(pred + eps).log() * (1 - pred).pow(alpha) * target.eq(1)
    neg = -(1 - pred + eps).log() * pred.pow(alpha) * (1 - target).pow(gamma)
    return pos + neg


def mean_over_ranks(value: Tensor) -> Tensor:
    """Average a scalar over the default process group (mmdet ``reduce_mean``); identity alone."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        value = value.clone()
        torch.distributed.all_reduce(value.div_(torch.distributed.get_world_size()))
    return value


def detection_loss(
    preds: list[TaskPrediction], targets: list[TaskTargets], config: LossConfig
) -> Tensor:
    """Sum over task groups of heatmap focal loss and box L1 loss.

    Args:
        preds: head outputs, one dict per task group.
        targets: from :func:`bevdepth.model.targets.build_targets`, on the predictions' device.
        config: loss weights.

    Returns:
        Scalar float32 loss.
    """
    total = preds[0]["heatmap"].new_zeros((), dtype=torch.float32)
    code_weights = torch.tensor(config.code_weights, device=total.device)
    for pred, target in zip(preds, targets, strict=True):
        heatmap = clip_sigmoid(pred["heatmap"].float())
        num_pos = target.heatmap.eq(1).float().sum()
        cls_avg = torch.clamp(mean_over_ranks(num_pos), min=1.0)
        focal = gaussian_focal_loss(heatmap, target.heatmap, config.focal_alpha, config.focal_gamma)
        total = total + focal.sum() / (cls_avg + _AVG_EPS)

        box = torch.cat([pred[name].float() for name in REGRESSION_ORDER], dim=1)
        box = box.flatten(2).transpose(1, 2)  # (B, Y*X, 10)
        box = box.gather(1, target.ind.unsqueeze(2).expand(-1, -1, box.shape[2]))
        mask = target.mask.unsqueeze(2).expand_as(target.anno_box).float()
        not_nan = ~torch.isnan(target.anno_box)
        weights = mask * not_nan * code_weights
        num_objs = torch.clamp(mean_over_ranks(target.mask.float().sum()), min=1e-4)
        l1 = torch.abs(box - torch.nan_to_num(target.anno_box)) * weights
        total = total + config.bbox_weight * l1.sum() / (num_objs + _AVG_EPS)
    return total


def depth_targets(depth_labels: Tensor, grid: GridConfig) -> Tensor:
    """One-hot depth bin of each feature pixel, from the nearest LiDAR point in its patch.

    Each ``downsample_factor`` x ``downsample_factor`` patch takes the minimum non-zero depth. Bin
    j covers [lower + j * step, lower + (j + 1) * step); empty patches and depths outside the bins
    give all-zero rows (quirk 11).

    Args:
        depth_labels: (B, N, H, W) metres, 0 where there is no point.
        grid: input size and depth bins.

    Returns:
        (B * N * h * w, D) float32.
    """
    batch, cams, height, width = depth_labels.shape
    factor = grid.downsample_factor
    patches = depth_labels.reshape(
        batch * cams, height // factor, factor, width // factor, factor
    ).permute(0, 1, 3, 2, 4)
    patches = patches.reshape(-1, factor * factor)
    patches = torch.where(patches == 0.0, torch.full_like(patches, _NO_DEPTH), patches)
    nearest = patches.min(dim=-1).values
    lower, _, step = grid.d_bound
    bins = grid.depth_channels
    index = (nearest - (lower - step)) / step
    index = torch.where((index < bins + 1) & (index >= 0.0), index, torch.zeros_like(index))
    # Class 0 collects "no valid depth" and is dropped.
    return F.one_hot(index.long(), num_classes=bins + 1)[:, 1:].float()


def depth_loss(depth_pred: Tensor, depth_labels: Tensor, grid: GridConfig, weight: float) -> Tensor:
    """Binary cross-entropy between predicted depth distributions and one-hot bins.

    Summed over the bins of every pixel with a valid target and divided by their count.

    Args:
        depth_pred: (B*N, D, h, w) key-frame depth probabilities.
        depth_labels: (B, N, H, W) or (B, 1, N, H, W) metres.
        grid: input size and depth bins.
        weight: loss weight (3.0 in the reference).

    Returns:
        Scalar float32 loss.
    """
    if depth_labels.dim() == 5:
        depth_labels = depth_labels[:, 0]
    target = depth_targets(depth_labels.float(), grid)
    pred = depth_pred.float().permute(0, 2, 3, 1).reshape(-1, grid.depth_channels)
    foreground = target.max(dim=1).values > 0.0
    with torch.autocast(device_type=pred.device.type, enabled=False):
        bce = F.binary_cross_entropy(pred[foreground], target[foreground], reduction="none")
        return weight * bce.sum() / torch.clamp(foreground.sum(), min=1).float()
