"""Native BEVDepth (``bev_depth_lss_r50_256x704_128x128_24e_2key``) in plain PyTorch."""

from bevdepth.model.bevdepth import BEVDepth, BEVDepthLoss, build_model
from bevdepth.model.checkpoint import (
    CheckpointMismatchError,
    load_imagenet_backbone,
    load_reference_checkpoint,
)
from bevdepth.model.config import BEVDepthConfig, preset
from bevdepth.model.decode import Detections

__all__ = [
    "BEVDepth",
    "BEVDepthConfig",
    "BEVDepthLoss",
    "CheckpointMismatchError",
    "Detections",
    "build_model",
    "load_imagenet_backbone",
    "load_reference_checkpoint",
    "preset",
]
