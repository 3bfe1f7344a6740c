"""Typed configuration of the native BEVDepth model.

Every component takes a small frozen dataclass; :func:`preset` returns the two supported
configurations:

* ``"reference"``: ``bev_depth_lss_r50_256x704_128x128_24e_2key`` (state-dict compatible with the
  published checkpoints).
* ``"small"``: the same code and module tree with narrow layers, a 128x352 input, 28 depth bins and
  a 32x32 BEV grid, so a CPU forward + backward takes about a second (tests, quick start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from bevdepth.data.constants import DETECTION_CLASSES

Bound = tuple[float, float, float]
"""(lower, upper, step) of one axis."""


@dataclass(frozen=True)
class GridConfig:
    """Lift-splat geometry: input size, depth bins and the BEV voxel grid.

    Attributes:
        x_bound: BEV x range and cell size in metres (ego frame, x forward).
        y_bound: BEV y range and cell size in metres.
        z_bound: z range; a single step covering it gives one z bin.
        d_bound: depth bins along each camera ray: ``arange(lower, upper, step)``.
        final_dim: network input (H, W) in pixels.
        downsample_factor: image stride of the feature map that is lifted.
    """

    x_bound: Bound = (-51.2, 51.2, 0.8)
    y_bound: Bound = (-51.2, 51.2, 0.8)
    z_bound: Bound = (-5.0, 3.0, 8.0)
    d_bound: Bound = (2.0, 58.0, 0.5)
    final_dim: tuple[int, int] = (256, 704)
    downsample_factor: int = 16

    @property
    def depth_channels(self) -> int:
        """Number of depth bins D (reference: ``int((upper - lower) / step)``)."""
        lower, upper, step = self.d_bound
        return int((upper - lower) / step)

    @property
    def feature_size(self) -> tuple[int, int]:
        """(h, w) of the lifted feature map."""
        height, width = self.final_dim
        return height // self.downsample_factor, width // self.downsample_factor

    @property
    def voxel_num(self) -> tuple[int, int, int]:
        """Cells along (x, y, z)."""
        return tuple(  # type: ignore[return-value]
            int((upper - lower) / step) for lower, upper, step in self.bounds
        )

    @property
    def bounds(self) -> tuple[Bound, Bound, Bound]:
        return self.x_bound, self.y_bound, self.z_bound


@dataclass(frozen=True)
class ResNetConfig:
    """An mmdet-style ResNet (torchvision key names).

    Attributes:
        block: ``"bottleneck"`` (expansion 4) or ``"basic"`` (expansion 1).
        stage_blocks: residual blocks per stage; the number of stages is its length.
        base_channels: width of the first stage before expansion; also the stem width.
        strides: stride of each stage (on the 3x3 conv, "pytorch" style).
        with_maxpool: the BEV trunk has its max-pool deleted (quirk 9).
        frozen_stem: freeze conv1/bn1 and keep bn1 in eval mode (``frozen_stages=0``, quirk 2).
    """

    block: Literal["basic", "bottleneck"]
    stage_blocks: tuple[int, ...]
    base_channels: int
    strides: tuple[int, ...]
    with_maxpool: bool
    frozen_stem: bool

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    def stage_channels(self) -> tuple[int, ...]:
        """Output channels of every stage."""
        return tuple(
            self.base_channels * 2**i * self.expansion for i in range(len(self.stage_blocks))
        )


@dataclass(frozen=True)
class FPNConfig:
    """SECONDFPN: one up/down-sampling deblock per input level, outputs concatenated.

    Attributes:
        upsample_strides: < 1 is a strided Conv2d, >= 1 a ConvTranspose2d.
        out_channels: channels of each deblock.
    """

    upsample_strides: tuple[float, ...]
    out_channels: tuple[int, ...]


@dataclass(frozen=True)
class DepthNetConfig:
    """Camera-aware DepthNet.

    Attributes:
        mid_channels: width of every inner layer (reference 512).
        camera_params: length of the camera vector fed to the MLPs (fixed by its layout).
        aspp_dilations: dilation of each 3x3 ASPP branch (the first branch is 1x1).
        aspp_dropout: dropout after the ASPP projection (quirk 7).
        dcn_groups: weight groups of the deformable conv (quirk 7; one offset group).
    """

    mid_channels: int = 512
    camera_params: int = 27
    aspp_dilations: tuple[int, int, int] = (6, 12, 18)
    aspp_dropout: float = 0.5
    dcn_groups: int = 4


@dataclass(frozen=True)
class HeadConfig:
    """CenterPoint head on the BEV map.

    Attributes:
        tasks: class names of each task group; labels are indices into ``DETECTION_CLASSES``.
        common_heads: (name, out_channels, num_convs) of each regression branch, in key order.
        heatmap_convs: convs of the heatmap branch.
        share_conv_channels: output of ``shared_conv``.
        head_conv: width of the inner conv of each branch.
        final_kernel: kernel of every branch conv.
        voxel_size: (x, y) size of the detection voxel in metres (reference 0.2).
        out_size_factor: heatmap stride in detection voxels (reference 4).
    """

    tasks: tuple[tuple[str, ...], ...] = (
        ("car",),
        ("truck", "construction_vehicle"),
        ("bus", "trailer"),
        ("barrier",),
        ("motorcycle", "bicycle"),
        ("pedestrian", "traffic_cone"),
    )
    common_heads: tuple[tuple[str, int, int], ...] = (
        ("reg", 2, 2),
        ("height", 1, 2),
        ("dim", 3, 2),
        ("rot", 2, 2),
        ("vel", 2, 2),
    )
    heatmap_convs: int = 2
    share_conv_channels: int = 64
    head_conv: int = 64
    final_kernel: int = 3
    voxel_size: tuple[float, float] = (0.2, 0.2)
    out_size_factor: int = 4

    def __post_init__(self) -> None:
        unknown = [name for task in self.tasks for name in task if name not in DETECTION_CLASSES]
        if unknown:
            raise ValueError(f"unknown class names {unknown}; expected some of {DETECTION_CLASSES}")

    @property
    def num_classes(self) -> tuple[int, ...]:
        return tuple(len(task) for task in self.tasks)


@dataclass(frozen=True)
class TargetConfig:
    """Heatmap / regression target generation (reference ``train_cfg``)."""

    max_objs: int = 500
    gaussian_overlap: float = 0.1
    min_radius: int = 2


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (reference: focal alpha 2 / gamma 4, L1 x 0.25, depth BCE x 3.0)."""

    focal_alpha: float = 2.0
    focal_gamma: float = 4.0
    bbox_weight: float = 0.25
    # The 2key config overrides the base [1]*8 + [0.5, 0.5] with ten ones.
    code_weights: tuple[float, ...] = (1.0,) * 10
    depth_weight: float = 3.0


@dataclass(frozen=True)
class DecodeConfig:
    """Box decoding and circle NMS (reference ``test_cfg`` / ``bbox_coder``).

    Attributes:
        max_num: top-K candidates per task.
        score_threshold: keep scores strictly above this.
        post_center_range: (x_min, y_min, z_min, x_max, y_max, z_max) of kept box centres.
        nms_radius: squared-distance threshold in m^2 of each task (quirk 13).
        post_max_size: boxes kept per task after NMS.
    """

    max_num: int = 500
    score_threshold: float = 0.1
    post_center_range: tuple[float, float, float, float, float, float] = (
        -61.2,
        -61.2,
        -10.0,
        61.2,
        61.2,
        10.0,
    )
    nms_radius: tuple[float, ...] = (4.0, 12.0, 10.0, 1.0, 0.85, 0.175)
    post_max_size: int = 83


@dataclass(frozen=True)
class BEVDepthConfig:
    """The whole model.

    Attributes:
        grid: lift-splat geometry.
        img_backbone: image ResNet.
        img_neck: image SECONDFPN (its output width feeds the DepthNet).
        depth_net: DepthNet widths.
        output_channels: context / BEV channels of one frame.
        num_frames: key frame plus previous key frames, concatenated on channels.
        bev_backbone: BEV ResNet trunk; its input is ``output_channels * num_frames``.
        bev_neck: BEV SECONDFPN; the first input level is the raw BEV map.
        head: task heads.
    """

    grid: GridConfig = field(default_factory=GridConfig)
    img_backbone: ResNetConfig = field(
        default_factory=lambda: ResNetConfig(
            block="bottleneck",
            stage_blocks=(3, 4, 6, 3),
            base_channels=64,
            strides=(1, 2, 2, 2),
            with_maxpool=True,
            frozen_stem=True,
        )
    )
    img_neck: FPNConfig = field(
        default_factory=lambda: FPNConfig(
            upsample_strides=(0.25, 0.5, 1, 2), out_channels=(128, 128, 128, 128)
        )
    )
    depth_net: DepthNetConfig = field(default_factory=DepthNetConfig)
    output_channels: int = 80
    num_frames: int = 2
    bev_backbone: ResNetConfig = field(
        default_factory=lambda: ResNetConfig(
            block="basic",
            stage_blocks=(2, 2, 2),
            base_channels=160,
            strides=(1, 2, 2),
            with_maxpool=False,
            frozen_stem=False,
        )
    )
    bev_neck: FPNConfig = field(
        default_factory=lambda: FPNConfig(
            upsample_strides=(1, 2, 4, 8), out_channels=(64, 64, 64, 64)
        )
    )
    head: HeadConfig = field(default_factory=HeadConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        nx, ny, nz = self.grid.voxel_num
        if nz != 1:
            raise ValueError(f"z_bound must give exactly one z bin, got {nz}")
        for axis, cells, bound, voxel in (
            ("x", nx, self.grid.x_bound, self.head.voxel_size[0]),
            ("y", ny, self.grid.y_bound, self.head.voxel_size[1]),
        ):
            heatmap_cells = (bound[1] - bound[0]) / voxel / self.head.out_size_factor
            if not math.isclose(heatmap_cells, cells):
                raise ValueError(
                    f"head heatmap has {heatmap_cells:g} cells along {axis} but the BEV grid has "
                    f"{cells}; make head.voxel_size * head.out_size_factor equal the BEV cell size"
                )
        if len(self.bev_neck.upsample_strides) != len(self.bev_backbone.stage_blocks) + 1:
            raise ValueError("bev_neck needs one deblock for the raw BEV map plus one per stage")
        if len(self.img_neck.upsample_strides) != len(self.img_backbone.stage_blocks):
            raise ValueError("img_neck needs one deblock per image backbone stage")

    @property
    def bev_channels(self) -> int:
        """Channels of the concatenated multi-frame BEV map."""
        return self.output_channels * self.num_frames

    @property
    def pc_range(self) -> tuple[float, float, float, float, float, float]:
        """(x_min, y_min, z_min, x_max, y_max, z_max) of the BEV grid."""
        (x0, x1, _), (y0, y1, _), (z0, z1, _) = self.grid.bounds
        return x0, y0, z0, x1, y1, z1


PresetName = Literal["reference", "small"]


def preset(name: PresetName) -> BEVDepthConfig:
    """Named configuration.

    Args:
        name: ``"reference"`` or ``"small"``.

    Raises:
        ValueError: for any other name.
    """
    if name == "reference":
        return BEVDepthConfig()
    if name == "small":
        return BEVDepthConfig(
            grid=GridConfig(
                x_bound=(-51.2, 51.2, 3.2),
                y_bound=(-51.2, 51.2, 3.2),
                d_bound=(2.0, 58.0, 2.0),
                final_dim=(128, 352),
            ),
            img_backbone=ResNetConfig(
                block="bottleneck",
                stage_blocks=(1, 1, 1, 1),
                base_channels=8,
                strides=(1, 2, 2, 2),
                with_maxpool=True,
                frozen_stem=True,
            ),
            img_neck=FPNConfig(upsample_strides=(0.25, 0.5, 1, 2), out_channels=(16, 16, 16, 16)),
            depth_net=DepthNetConfig(mid_channels=32),
            output_channels=16,
            bev_backbone=ResNetConfig(
                block="basic",
                stage_blocks=(1, 1, 1),
                base_channels=32,
                strides=(1, 2, 2),
                with_maxpool=False,
                frozen_stem=False,
            ),
            bev_neck=FPNConfig(upsample_strides=(1, 2, 4, 8), out_channels=(16, 16, 16, 16)),
            head=HeadConfig(
                share_conv_channels=16, head_conv=16, voxel_size=(0.8, 0.8), out_size_factor=4
            ),
        )
    raise ValueError(f"unknown preset {name!r}; expected 'reference' or 'small'")
