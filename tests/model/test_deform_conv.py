"""Deformable convolution against a direct per-sample, per-pixel loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bevdepth.model.deform_conv import DeformConv2dPack, deform_conv2d


def bilinear(image: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Value of (C, H, W) ``image`` at (y, x); corners outside the image count as zero."""
    height, width = image.shape[1:]
    out = image.new_zeros(image.shape[0])
    y0, x0 = math.floor(y), math.floor(x)
    for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
        if 0 <= yy < height and 0 <= xx < width:
            out = out + (1 - abs(y - yy)) * (1 - abs(x - xx)) * image[:, yy, xx]
    return out


def loop_deform_conv(x, offset, weight, stride, padding, dilation, groups):
    batch, c_in, _, _ = x.shape
    c_out, c_in_group, kh, kw = weight.shape
    h_out, w_out = offset.shape[2:]
    offset_groups = offset.shape[1] // (2 * kh * kw)
    channels_per_offset_group = c_in // offset_groups
    out = x.new_zeros(batch, c_out, h_out, w_out)
    for b in range(batch):
        for oy in range(h_out):
            for ox in range(w_out):
                for co in range(c_out):
                    g = co // (c_out // groups)
                    total = x.new_zeros(())
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            for ci in range(c_in_group):
                                channel = g * c_in_group + ci
                                og = channel // channels_per_offset_group
                                dy = offset[b, og * 2 * kh * kw + 2 * k, oy, ox].item()
                                dx = offset[b, og * 2 * kh * kw + 2 * k + 1, oy, ox].item()
                                y = oy * stride - padding + i * dilation + dy
                                xx = ox * stride - padding + j * dilation + dx
                                value = bilinear(x[b, channel : channel + 1], y, xx)[0]
                                total = total + weight[co, ci, i, j] * value
                    out[b, co, oy, ox] = total
    return out


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "groups", "offset_groups"),
    [(1, 1, 1, 2, 1), (2, 0, 1, 1, 1), (1, 2, 2, 2, 2)],
)
def test_matches_direct_loop(stride, padding, dilation, groups, offset_groups) -> None:
    gen = torch.Generator().manual_seed(stride * 10 + padding + dilation + groups)
    x = torch.randn(2, 4, 6, 7, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, 4 // groups, 3, 3, generator=gen, dtype=torch.float64)
    h_out = (6 + 2 * padding - dilation * 2 - 1) // stride + 1
    w_out = (7 + 2 * padding - dilation * 2 - 1) // stride + 1
    # Offsets up to +-3 px push many taps across the border (zero padding must apply).
    offset = 3 * torch.randn(
        2, offset_groups * 18, h_out, w_out, generator=gen, dtype=torch.float64
    )
    expected = loop_deform_conv(x, offset, weight, stride, padding, dilation, groups)
    actual = deform_conv2d(x, offset, weight, stride, padding, dilation, groups)
    torch.testing.assert_close(actual, expected)


def test_zero_offset_is_grouped_conv() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 5, 9, generator=gen)
    weight = torch.randn(8, 2, 3, 3, generator=gen)
    offset = torch.zeros(1, 18, 5, 9)
    expected = F.conv2d(x, weight, padding=1, groups=4)
    torch.testing.assert_close(deform_conv2d(x, offset, weight, 1, 1, 1, 4), expected)


def test_integer_offset_shifts_the_sampling() -> None:
    # A single 1x1 tap with offset (dy, dx) = (1, -2) reads x[y + 1, x - 2] (zeros outside).
    x = torch.arange(20.0).view(1, 1, 4, 5)
    weight = torch.ones(1, 1, 1, 1)
    offset = torch.tensor([1.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 4, 5)
    expected = torch.zeros(1, 1, 4, 5)
    expected[0, 0, :3, 2:] = x[0, 0, 1:, :3]
    torch.testing.assert_close(deform_conv2d(x, offset, weight), expected)


def test_gradcheck() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    # Keep sample positions away from integer coordinates, where bilinear is not differentiable.
    offset = 0.3 + 0.4 * torch.rand(1, 18, 4, 5, generator=gen, dtype=torch.float64)
    offset.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, o, w: deform_conv2d(a, o, w, 1, 1, 1, 2), (x, offset, weight)
    )


def test_pack_module_keys_and_zero_offsets() -> None:
    module = DeformConv2dPack(8, 8, 3, padding=1, groups=4)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
        "weight": (8, 2, 3, 3),
        "conv_offset.weight": (18, 8, 3, 3),
        "conv_offset.bias": (18,),
    }
    x = torch.randn(2, 8, 5, 6)
    # Zero-initialized offsets: the module starts as a plain grouped conv.
    torch.testing.assert_close(module(x), F.conv2d(x, module.weight, padding=1, groups=4))
