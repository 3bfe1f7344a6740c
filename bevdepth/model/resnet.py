"""ResNet used for the image backbone, the BEV trunk and the DepthNet residual blocks.

Attribute names (``conv1``, ``bn1``, ``layerK.J.convI``, ``downsample.0/1``) are the key names of
torchvision and mmdet checkpoints, so reference weights load without renaming.
"""

from __future__ import annotations

from torch import Tensor, nn

from bevdepth.model.config import ResNetConfig


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or projected) shortcut; expansion 1."""

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, "pytorch" style) -> 1x1 with a shortcut; expansion 4."""

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, 4 * planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


class ResNet(nn.Module):
    """Stem (7x7 stride-2 conv, BN, ReLU, optional 3x3 max-pool) and residual stages.

    Args:
        config: depth, widths and stem options.
        in_channels: input channels (3 for images, 160 for the 2-frame BEV map).
    """

    def __init__(self, config: ResNetConfig, in_channels: int) -> None:
        super().__init__()
        self.config = config
        stem = config.base_channels
        self.conv1 = nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        # The BEV trunk deletes the max-pool but keeps the strided stem (quirk 9).
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if config.with_maxpool else None
        block = _BLOCKS[config.block]
        channels = stem
        self.stage_names: list[str] = []
        for index, (num_blocks, stride) in enumerate(
            zip(config.stage_blocks, config.strides, strict=True)
        ):
            planes = config.base_channels * 2**index
            name = f"layer{index + 1}"
            self.add_module(name, _make_stage(block, channels, planes, num_blocks, stride))
            self.stage_names.append(name)
            channels = planes * block.expansion
        self.init_weights()
        if config.frozen_stem:
            for param in [*self.conv1.parameters(), *self.bn1.parameters()]:
                param.requires_grad_(False)

    def init_weights(self) -> None:
        """mmdet ResNet default init: Kaiming (fan_out) convs, unit BN, zero last BN per block.

        The reference calls it on the BEV trunk; for the image backbone it is only the starting
        point before ImageNet weights are loaded.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # zero_init_residual: every block starts as the identity (Goyal et al. 2017).
        for module in self.modules():
            if isinstance(module, BasicBlock | Bottleneck):
                nn.init.zeros_(module.last_bn.weight)

    def train(self, mode: bool = True) -> ResNet:
        """Like ``nn.Module.train`` but a frozen stem BN stays in eval mode (quirk 2)."""
        super().train(mode)
        if self.config.frozen_stem:
            self.bn1.eval()
        return self

    def forward_stem(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, stem, H / 2, W / 2), or / 4 with the max-pool."""
        x = self.relu(self.bn1(self.conv1(x)))
        return x if self.maxpool is None else self.maxpool(x)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Outputs of every stage, e.g. for R50 at 256x704: 256@64x176 ... 2048@8x22."""
        x = self.forward_stem(x)
        outs = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            outs.append(x)
        return outs


def _make_stage(
    block: type[BasicBlock] | type[Bottleneck],
    in_channels: int,
    planes: int,
    num_blocks: int,
    stride: int,
) -> nn.Sequential:
    downsample = None
    if stride != 1 or in_channels != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, planes * block.expansion, 1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * block.expansion),
        )
    layers = [block(in_channels, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)
