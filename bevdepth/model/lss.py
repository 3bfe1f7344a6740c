"""Camera images -> multi-frame BEV features (reference ``BaseLSSFPN``, attribute ``backbone``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bevdepth.data.batch import CameraMats
from bevdepth.model.config import BEVDepthConfig
from bevdepth.model.depthnet import DepthNet
from bevdepth.model.fpn import SECONDFPN
from bevdepth.model.geometry import camera_vector, create_frustum, frustum_to_ego, voxel_indices
from bevdepth.model.resnet import ResNet
from bevdepth.model.voxel_pooling import voxel_pooling


class LSSBackbone(nn.Module):
    """Image backbone, neck and DepthNet, lifted and splatted into the BEV grid per frame.

    Buffers ``voxel_size``, ``voxel_coord`` (centre of the first cell), ``voxel_num`` (int64) and
    ``frustum`` are persistent because the reference checkpoints contain them.

    Args:
        config: the model configuration.
    """

    def __init__(self, config: BEVDepthConfig) -> None:
        super().__init__()
        grid = config.grid
        self.grid = grid
        self.output_channels = config.output_channels
        bounds = grid.bounds
        self.register_buffer("voxel_size", torch.tensor([step for _, _, step in bounds]))
        self.register_buffer(
            "voxel_coord", torch.tensor([lower + step / 2.0 for lower, _, step in bounds])
        )
        self.register_buffer("voxel_num", torch.tensor(grid.voxel_num, dtype=torch.int64))
        self.register_buffer("frustum", create_frustum(grid))
        self.img_backbone = ResNet(config.img_backbone, in_channels=3)
        self.img_neck = SECONDFPN(config.img_backbone.stage_channels(), config.img_neck)
        self.depth_net = DepthNet(
            self.img_neck.out_channels,
            config.output_channels,
            grid.depth_channels,
            config.depth_net,
        )

    def forward(self, imgs: Tensor, mats: CameraMats) -> tuple[Tensor, Tensor]:
        """BEV features of every frame and the key frame's depth distribution.

        The key frame runs with gradients; previous frames run under ``no_grad`` (quirk 8) but in
        the module's current mode, so BN statistics and dropout behave as in the reference.

        Args:
            imgs: (B, F, N, 3, H, W) normalized images, key frame first.
            mats: camera matrices with (B, F, N, 4, 4) entries.

        Returns:
            bev: (B, F * C, Y, X), frames concatenated as [current, previous, ...].
            depth: (B*N, D, h, w) key-frame depth probabilities in float32 (for the depth loss).
        """
        camera_params = camera_vector(mats)
        bev, depth_logits = self._forward_frame(imgs, mats, camera_params, frame=0)
        bevs = [bev]
        with torch.no_grad():
            for frame in range(1, imgs.shape[1]):
                bevs.append(self._forward_frame(imgs, mats, camera_params, frame)[0])
        # The lifting softmax keeps the feature dtype (fp16 under AMP); the one returned for the
        # loss is float32 because the depth loss collapses otherwise (reference, facts 1.17).
        return torch.cat(bevs, dim=1), depth_logits.float().softmax(dim=1)

    def _forward_frame(
        self, imgs: Tensor, mats: CameraMats, camera_params: Tensor, frame: int
    ) -> tuple[Tensor, Tensor]:
        feats = self.img_neck(self.img_backbone(imgs[:, frame].flatten(0, 1)))
        depth_feature = self.depth_net(feats, camera_params)
        depth_bins = self.grid.depth_channels
        depth_logits = depth_feature[:, :depth_bins]
        context = depth_feature[:, depth_bins : depth_bins + self.output_channels]
        depth = depth_logits.softmax(dim=1, dtype=depth_feature.dtype)
        points = frustum_to_ego(
            self.frustum,
            mats.sensor2ego_mats[:, frame],
            mats.intrin_mats[:, frame],
            mats.ida_mats[:, frame],
            mats.bda_mat,
        )
        geom_xyz = voxel_indices(points, self.voxel_size, self.voxel_coord)
        return voxel_pooling(geom_xyz, depth, context, self.grid.voxel_num), depth_logits
