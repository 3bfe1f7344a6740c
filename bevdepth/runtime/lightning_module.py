"""``BEVDepthModule``: the Lightning wrapper of an injected :class:`~bevdepth.model.BEVDepth`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor

from bevdepth import device
from bevdepth.data.batch import Batch
from bevdepth.model import BEVDepth
from bevdepth.runtime.submission import SubmissionBox, submission_boxes

LR_GAMMA = 0.1  # MultiStepLR default, as in the reference


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class OptimSettings:
    """Reference optimisation (fact sheet 1.16).

    Attributes:
        lr: AdamW learning rate (lr_per_image x global batch).
        weight_decay: AdamW weight decay.
        lr_milestones: epochs after which the lr is multiplied by 0.1.
        accelerator: ``npu`` | ``gpu`` | ``cpu`` (NPU gets the fused AdamW).
    """

    lr: float
    weight_decay: float
    lr_milestones: tuple[int, ...]
    accelerator: str


class BEVDepthModule(L.LightningModule):
    """Training and prediction steps of BEVDepth.

    Args:
        model: the detector (built and loaded by the caller).
        optim: optimiser settings; only needed for training.
    """

    def __init__(self, model: BEVDepth, optim: OptimSettings | None = None) -> None:
        super().__init__()
        self.model = model
        self.optim = optim

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """Forward, losses and the NaN guard.

        Returns:
            ``loss`` (back-propagated) and the detached ``detection`` and ``depth`` parts.

        Raises:
            NonFiniteLossError: on every rank at once when any rank's loss is not finite.
        """
        preds, depth_pred = self.model(batch.imgs, batch.mats)
        # The depth BCE raises on NaN probabilities, so a diverged forward is caught here first.
        finite_depth = bool(torch.isfinite(depth_pred).all())
        if finite_depth:
            losses = self.model.loss(
                preds, depth_pred, batch.gt_boxes, batch.gt_labels, batch.depth_labels
            )
        local_bad = not (finite_depth and bool(torch.isfinite(losses.total)))
        # Decided across ranks: a rank that stopped alone would leave the others waiting in
        # the gradient all-reduce until the collective timeout.
        if self.trainer.strategy.reduce_boolean_decision(local_bad, all=False):
            what = "the loss" if finite_depth else "the depth prediction"
            raise NonFiniteLossError(
                f"training loss is not finite at step {self.trainer.global_step + 1} "
                f"(epoch {self.current_epoch}; NaN or infinity in {what} on some rank)"
            )
        total = losses.total
        parts = {"detection": losses.detection.detach(), "depth": losses.depth.detach()}
        self.log("train/loss", total.detach(), batch_size=batch.batch_size)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=batch.batch_size)
        return {"loss": total, **parts}

    def predict_step(self, batch: Batch, batch_idx: int) -> list[tuple[str, list[SubmissionBox]]]:
        """Detections of a batch in the nuScenes submission format.

        Returns:
            (sample token, boxes in the global frame) per sample.
        """
        detections = self.model.decode(self.model(batch.imgs, batch.mats))
        return [
            (meta["token"], submission_boxes(det, meta))
            for det, meta in zip(detections, batch.img_metas, strict=True)
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        if self.optim is None:
            raise RuntimeError("BEVDepthModule needs OptimSettings to train")
        optimizer = device.adamw(
            self.parameters(), self.optim.lr, self.optim.weight_decay, self.optim.accelerator
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, list(self.optim.lr_milestones), gamma=LR_GAMMA
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
