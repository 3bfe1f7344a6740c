"""Deformable convolution (v1) in plain PyTorch.

Semantics follow ``torchvision.ops.deform_conv2d`` / mmcv ``DeformConv2d``: every kernel tap k
(row-major over the kernel) samples the input at its regular position plus an offset
``(dy, dx) = offset[:, 2k], offset[:, 2k + 1]`` with bilinear interpolation, and positions outside
the image read zeros. Sampling uses ``grid_sample``, whose zero padding matches that rule exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bevdepth import device


def deform_conv2d(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> Tensor:
    """Deformable convolution without bias.

    Args:
        x: (B, C_in, H, W) input.
        offset: (B, 2 * G_off * kh * kw, H_out, W_out) offsets as (dy, dx) per tap; ``G_off``
            offset groups split the input channels.
        weight: (C_out, C_in / groups, kh, kw).
        stride, padding, dilation: as for ``nn.Conv2d`` (same value for both axes).
        groups: ordinary convolution groups of the weight.

    Returns:
        (B, C_out, H_out, W_out).
    """
    batch, c_in, height, width = x.shape
    c_out, c_in_group, kh, kw = weight.shape
    taps = kh * kw
    h_out = (height + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    w_out = (width + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    offset_groups = offset.shape[1] // (2 * taps)
    if offset.shape[1] != 2 * taps * offset_groups or offset.shape[2:] != (h_out, w_out):
        raise ValueError(
            f"offset must be (B, 2 * groups * {taps}, {h_out}, {w_out}), got {tuple(offset.shape)}"
        )

    # Regular sampling grid of every tap: (taps, H_out, 1) rows and (taps, 1, W_out) columns.
    tap_y = torch.arange(kh, device=x.device, dtype=x.dtype).repeat_interleave(kw) * dilation
    tap_x = torch.arange(kw, device=x.device, dtype=x.dtype).repeat(kh) * dilation
    out_y = torch.arange(h_out, device=x.device, dtype=x.dtype) * stride - padding
    out_x = torch.arange(w_out, device=x.device, dtype=x.dtype) * stride - padding
    offset = offset.view(batch, offset_groups, taps, 2, h_out, w_out)
    pos_y = tap_y[:, None, None] + out_y[None, :, None] + offset[:, :, :, 0]
    pos_x = tap_x[:, None, None] + out_x[None, None, :] + offset[:, :, :, 1]
    # Pixel -> normalized coordinates for align_corners=False (pixel centres at (2i + 1) / n - 1).
    grid = torch.stack(((2 * pos_x + 1) / width - 1, (2 * pos_y + 1) / height - 1), dim=-1)
    grid = grid.view(batch * offset_groups, taps * h_out, w_out, 2)
    sampled = F.grid_sample(
        x.reshape(batch * offset_groups, c_in // offset_groups, height, width),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    # (B, C_in, taps, L) -> per weight group (B, groups, C_in/groups * taps, L), matching the
    # (C_in/groups, kh, kw) flattening of the weight.
    columns = sampled.view(batch, groups, c_in_group * taps, h_out * w_out)
    out = weight.view(1, groups, c_out // groups, c_in_group * taps) @ columns
    return out.view(batch, c_out, h_out, w_out)


class DeformConv2dPack(nn.Module):
    """Deformable conv that predicts its own offsets (mmcv ``DeformConv2dPack``, "DCN").

    The weight is registered on this module and the offset predictor as ``conv_offset`` so the
    keys are ``weight`` and ``conv_offset.{weight,bias}`` as in the reference checkpoints.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation: conv geometry.
        groups: weight groups (the reference DepthNet uses 4, quirk 7).
        deform_groups: offset groups (1 in the reference).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        deform_groups: int = 1,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups or in_channels % deform_groups:
            raise ValueError(
                f"channels ({in_channels} -> {out_channels}) must divide by groups={groups} "
                f"and the input by deform_groups={deform_groups}"
            )
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.deform_groups = groups, deform_groups
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size)
        )
        self.conv_offset = nn.Conv2d(
            in_channels,
            deform_groups * 2 * kernel_size * kernel_size,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=True,
        )
        # mmcv: Kaiming-uniform weight; the offsets start at zero so training begins as a
        # regular convolution.
        nn.init.kaiming_uniform_(self.weight, a=0, nonlinearity="relu")
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H_out, W_out)."""
        offset = self.conv_offset(x)
        kernel = device.deform_conv_kernel(x, self.deform_groups) or deform_conv2d
        return kernel(x, offset, self.weight, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        c_out, c_in_group, k, _ = self.weight.shape
        return (
            f"{c_in_group * self.groups}, {c_out}, kernel_size={k}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}"
        )
