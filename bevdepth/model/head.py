"""BEV detection network: BEV ResNet trunk, BEV SECONDFPN and CenterPoint task heads.

Attribute names follow the reference ``BEVDepthHead`` (``shared_conv``, ``task_heads``, ``trunk``,
``neck``), registered in that order so the state-dict order matches too.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bevdepth.model.config import BEVDepthConfig, HeadConfig
from bevdepth.model.fpn import SECONDFPN
from bevdepth.model.resnet import ResNet

TaskPrediction = dict[str, Tensor]
"""Maps ``reg`` (B,2,Y,X), ``height`` (B,1,..), ``dim`` (B,3,..) log sizes, ``rot`` (B,2,..)
(sin, cos), ``vel`` (B,2,..) and ``heatmap`` (B,n_cls,..) logits for one task group."""


class ConvBNReLU(nn.Module):
    """Conv (no bias) + BN + ReLU, with keys ``conv`` / ``bn`` like mmcv's ``ConvModule``.

    Init as ConvModule does on construction: Kaiming normal (fan_out, relu), BN weight 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class SeparateHead(nn.Module):
    """One small conv branch per regression target plus the class heatmap.

    The final convs keep PyTorch's default init and the heatmap bias is *not* set to -2.19: the
    reference never calls ``init_weights`` on its head (quirk 10).

    Args:
        in_channels: width of the shared conv output.
        num_classes: classes of this task group (heatmap channels).
        config: branch layout and widths.
    """

    def __init__(self, in_channels: int, num_classes: int, config: HeadConfig) -> None:
        super().__init__()
        branches = [*config.common_heads, ("heatmap", num_classes, config.heatmap_convs)]
        self.names = [name for name, _, _ in branches]
        for name, out_channels, num_convs in branches:
            layers: list[nn.Module] = []
            channels = in_channels
            for _ in range(num_convs - 1):
                layers.append(ConvBNReLU(channels, config.head_conv, config.final_kernel))
                channels = config.head_conv
            layers.append(
                nn.Conv2d(
                    channels,
                    out_channels,
                    config.final_kernel,
                    padding=config.final_kernel // 2,
                    bias=True,
                )
            )
            self.add_module(name, nn.Sequential(*layers))

    def forward(self, x: Tensor) -> TaskPrediction:
        """(B, C, Y, X) -> one map per branch."""
        return {name: getattr(self, name)(x) for name in self.names}


class BEVDepthHead(nn.Module):
    """BEV map -> per-task predictions, always in float32 (quirk 10).

    Args:
        config: the model configuration (BEV trunk, neck and head parts are used).
    """

    def __init__(self, config: BEVDepthConfig) -> None:
        super().__init__()
        head = config.head
        neck_in = config.bev_neck.out_channels
        self.shared_conv = ConvBNReLU(sum(neck_in), head.share_conv_channels, 3)
        self.task_heads = nn.ModuleList(
            SeparateHead(head.share_conv_channels, num_classes, head)
            for num_classes in head.num_classes
        )
        self.trunk = ResNet(config.bev_backbone, in_channels=config.bev_channels)
        # The neck's first level is the raw BEV map, then one level per trunk stage (quirk 9).
        self.neck = SECONDFPN(
            (config.bev_channels, *config.bev_backbone.stage_channels()), config.bev_neck
        )

    def forward(self, bev: Tensor) -> list[TaskPrediction]:
        """(B, F * C, Y, X) BEV features -> one prediction dict per task group."""
        with torch.autocast(device_type=bev.device.type, enabled=False):
            bev = bev.float()
            levels = [bev, *self.trunk(bev)]
            x = self.shared_conv(self.neck(levels))
            return [task(x) for task in self.task_heads]
