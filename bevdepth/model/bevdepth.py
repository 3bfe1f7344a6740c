"""The BEVDepth model (reference ``BaseBEVDepth``): ``backbone`` (LSS) + ``head`` (CenterPoint)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from bevdepth.data.batch import CameraMats
from bevdepth.model.config import BEVDepthConfig, PresetName, preset
from bevdepth.model.decode import Detections, decode
from bevdepth.model.head import BEVDepthHead, TaskPrediction
from bevdepth.model.losses import depth_loss, detection_loss
from bevdepth.model.lss import LSSBackbone
from bevdepth.model.targets import build_targets


@dataclass(frozen=True)
class BEVDepthLoss:
    """Training losses (scalars); ``total`` is what gets back-propagated.

    Attributes:
        detection: heatmap focal + box L1 over all task groups.
        depth: depth BCE on the key frame, already weighted.
    """

    detection: Tensor
    depth: Tensor

    @property
    def total(self) -> Tensor:
        return self.detection + self.depth


class BEVDepth(nn.Module):
    """Multi-camera, multi-frame 3D detector with explicit depth supervision.

    Args:
        config: the model configuration; see :func:`build_model` for presets.
    """

    def __init__(self, config: BEVDepthConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = LSSBackbone(config)
        self.head = BEVDepthHead(config)

    def forward(
        self, imgs: Tensor, mats: CameraMats
    ) -> tuple[list[TaskPrediction], Tensor] | list[TaskPrediction]:
        """Run the detector.

        Args:
            imgs: (B, F, N, 3, H, W) normalized images (B, G, R channel order), key frame first.
            mats: camera matrices with (B, F, N, 4, 4) entries and a (B, 4, 4) ``bda_mat``.

        Returns:
            In training mode ``(preds, depth_pred)``, in eval mode ``preds``, where ``preds`` has
            one dict per task group (see :data:`bevdepth.model.head.TaskPrediction`) and
            ``depth_pred`` is the (B*N, D, h, w) float32 key-frame depth distribution.
        """
        if imgs.shape[1] != self.config.num_frames:
            raise ValueError(
                f"expected {self.config.num_frames} frames on axis 1 of imgs (B, F, N, 3, H, W), "
                f"got shape {tuple(imgs.shape)}"
            )
        bev, depth_pred = self.backbone(imgs, mats)
        preds = self.head(bev)
        if self.training:
            return preds, depth_pred
        return preds

    def loss(
        self,
        preds: list[TaskPrediction],
        depth_pred: Tensor,
        gt_boxes: list[Tensor],
        gt_labels: list[Tensor],
        depth_labels: Tensor,
    ) -> BEVDepthLoss:
        """Detection and depth losses of a training batch.

        Args:
            preds: head outputs from :meth:`forward`.
            depth_pred: (B*N, D, h, w) depth distribution from :meth:`forward`.
            gt_boxes: per sample (M, 9) boxes [x, y, z, dx, dy, dz, yaw, vx, vy].
            gt_labels: per sample (M,) class indices.
            depth_labels: (B, 1, N, H, W) or (B, N, H, W) LiDAR depth in metres, 0 = none.
        """
        device = preds[0]["heatmap"].device
        targets = [t.to(device) for t in build_targets(gt_boxes, gt_labels, self.config)]
        cfg = self.config
        return BEVDepthLoss(
            detection=detection_loss(preds, targets, cfg.loss),
            depth=depth_loss(depth_pred, depth_labels, cfg.grid, cfg.loss.depth_weight),
        )

    def decode(self, preds: list[TaskPrediction]) -> list[Detections]:
        """Boxes, scores and global labels per sample (top-K, thresholds, circle NMS)."""
        return decode(preds, self.config)


def build_model(config: BEVDepthConfig | PresetName = "reference") -> BEVDepth:
    """Build an untrained model (weights are loaded separately, see ``bevdepth.model.checkpoint``).

    Args:
        config: a configuration or a preset name (``"reference"`` or ``"small"``).
    """
    if isinstance(config, str):
        config = preset(config)
    return BEVDepth(config)
