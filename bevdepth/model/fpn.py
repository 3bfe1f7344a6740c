"""SECONDFPN: bring every level to one resolution and concatenate (mmdet3d ``SECONDFPN``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bevdepth.model.config import FPNConfig


class SECONDFPN(nn.Module):
    """One deblock per input level: (transposed) conv, BN(eps 1e-3, momentum 0.01), ReLU.

    Args:
        in_channels: channels of each input level.
        config: strides (< 1 means a strided Conv2d, >= 1 a ConvTranspose2d, even for stride 1)
            and output channels of each deblock.
    """

    def __init__(self, in_channels: tuple[int, ...], config: FPNConfig) -> None:
        super().__init__()
        if not len(in_channels) == len(config.upsample_strides) == len(config.out_channels):
            raise ValueError(
                f"SECONDFPN needs one stride and one width per input level, got "
                f"{len(in_channels)} inputs, strides {config.upsample_strides}, "
                f"widths {config.out_channels}"
            )
        deblocks = []
        for c_in, c_out, stride in zip(
            in_channels, config.out_channels, config.upsample_strides, strict=True
        ):
            if stride >= 1:
                step = int(stride)
                layer: nn.Module = nn.ConvTranspose2d(c_in, c_out, step, stride=step, bias=False)
            else:
                step = round(1 / stride)
                layer = nn.Conv2d(c_in, c_out, step, stride=step, bias=False)
            deblocks.append(
                nn.Sequential(layer, nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01), nn.ReLU(True))
            )
        self.deblocks = nn.ModuleList(deblocks)
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming (fan_out) on the transposed convs only; strided convs keep PyTorch init."""
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @property
    def out_channels(self) -> int:
        return sum(block[0].out_channels for block in self.deblocks)

    def forward(self, feats: list[Tensor]) -> Tensor:
        """Levels (B, C_i, H_i, W_i) -> (B, sum(out_channels), H, W)."""
        return torch.cat([block(x) for block, x in zip(self.deblocks, feats, strict=True)], dim=1)
