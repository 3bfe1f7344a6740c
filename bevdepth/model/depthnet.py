"""Camera-aware DepthNet: per-pixel depth-bin logits and context features.

The camera vector (see :func:`bevdepth.model.geometry.camera_vector`) is batch-normalized and turned
by two MLPs into squeeze-excitation gates, one for the depth branch and one for the context branch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bevdepth.model.config import DepthNetConfig
from bevdepth.model.deform_conv import DeformConv2dPack
from bevdepth.model.resnet import BasicBlock


class Mlp(nn.Module):
    """fc1 -> ReLU -> fc2 (the reference also has Dropout(0) layers, which are no-ops)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        """(R, in) -> (R, out)."""
        return self.fc2(self.act(self.fc1(x)))


class SELayer(nn.Module):
    """Gate a feature map by a sigmoid of a (R, C, 1, 1) camera embedding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.ReLU()
        self.conv_expand = nn.Conv2d(channels, channels, 1, bias=True)

    def forward(self, x: Tensor, x_se: Tensor) -> Tensor:
        """x (R, C, h, w), x_se (R, C, 1, 1) -> (R, C, h, w)."""
        return x * torch.sigmoid(self.conv_expand(self.act(self.conv_reduce(x_se))))


class ASPPBranch(nn.Module):
    """(Dilated) conv without bias, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        padding = 0 if kernel_size == 1 else dilation
        self.atrous_conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and an image-pool branch.

    Args:
        in_channels: input width.
        mid_channels: width of every branch and of the output.
        dilations: dilation of the three 3x3 branches.
        dropout: applied to the output (0.5 in the reference, active in training, quirk 7).
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        dilations: tuple[int, int, int],
        dropout: float,
    ) -> None:
        super().__init__()
        self.aspp1 = ASPPBranch(in_channels, mid_channels, 1, 1)
        self.aspp2 = ASPPBranch(in_channels, mid_channels, 3, dilations[0])
        self.aspp3 = ASPPBranch(in_channels, mid_channels, 3, dilations[1])
        self.aspp4 = ASPPBranch(in_channels, mid_channels, 3, dilations[2])
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(in_channels, mid_channels, 1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(),
        )
        self.conv1 = nn.Conv2d(mid_channels * 5, mid_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(R, C_in, h, w) -> (R, mid, h, w)."""
        pooled = self.global_avg_pool(x)
        pooled = F.interpolate(pooled, size=x.shape[2:], mode="bilinear", align_corners=True)
        x = torch.cat([self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x), pooled], dim=1)
        return self.dropout(self.relu(self.bn1(self.conv1(x))))


class DepthNet(nn.Module):
    """Image features + camera vector -> [depth logits (D), context (C)].

    Only the ASPP and the DCN offsets have their own init; the rest keeps PyTorch's default
    (the reference never calls ``init_weights`` on them).

    Args:
        in_channels: width of the image neck output.
        context_channels: context features per pixel (80 in the reference).
        depth_channels: depth bins D (112 in the reference).
        config: inner widths and ASPP / DCN options.
    """

    def __init__(
        self, in_channels: int, context_channels: int, depth_channels: int, config: DepthNetConfig
    ) -> None:
        super().__init__()
        mid = config.mid_channels
        self.reduce_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=True),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
        )
        self.context_conv = nn.Conv2d(mid, context_channels, 1)
        self.bn = nn.BatchNorm1d(config.camera_params)
        self.depth_mlp = Mlp(config.camera_params, mid, mid)
        self.depth_se = SELayer(mid)
        self.context_mlp = Mlp(config.camera_params, mid, mid)
        self.context_se = SELayer(mid)
        self.depth_conv = nn.Sequential(
            BasicBlock(mid, mid),
            BasicBlock(mid, mid),
            BasicBlock(mid, mid),
            ASPP(mid, mid, config.aspp_dilations, config.aspp_dropout),
            DeformConv2dPack(mid, mid, 3, padding=1, groups=config.dcn_groups, deform_groups=1),
            nn.Conv2d(mid, depth_channels, 1),
        )

    def forward(self, x: Tensor, camera_params: Tensor) -> Tensor:
        """Run the DepthNet.

        Args:
            x: (B*N, C_in, h, w) image features.
            camera_params: (B*N, 27) camera vectors of the key frame (quirk 6).

        Returns:
            (B*N, D + C, h, w): depth logits first, then context.
        """
        camera_params = self.bn(camera_params)
        x = self.reduce_conv(x)
        context = self.context_se(x, self.context_mlp(camera_params)[..., None, None])
        context = self.context_conv(context)
        depth = self.depth_se(x, self.depth_mlp(camera_params)[..., None, None])
        depth = self.depth_conv(depth)
        return torch.cat([depth, context], dim=1)
