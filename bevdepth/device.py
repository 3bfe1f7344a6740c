"""Everything that depends on the accelerator: the one place that names npu / cuda.

The model is plain PyTorch and runs the same on CPU and CUDA. On an Ascend NPU, with ``torch_npu``
and ``mx_driving`` (DrivingSDK) installed, two kernels replace the plain path:

* voxel pooling: ``mx_driving.npu_voxel_pooling_train`` (the kernel of the Ascend BEVDepth port);
* deformable conv: ``mx_driving.deform_conv2d`` (float32, one offset group, C_in % 64 == 0).

Both packages are imported lazily, only when a tensor actually lives on an NPU, so importing the
model never needs them. The plain PyTorch implementations stay the reference for correctness.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType

import torch
from torch import Tensor

NPU = "npu"

VoxelPoolingKernel = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(geom_xyz int32 (B, P, 3), feats (B, P, C), voxel_num (3,)) -> (B, C, Y, X)."""

DeformConvKernel = Callable[[Tensor, Tensor, Tensor, int, int, int, int], Tensor]
"""(x, offset, weight, stride, padding, dilation, groups) -> output."""


@functools.cache
def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _mx_driving_on(tensor: Tensor) -> ModuleType | None:
    """``mx_driving`` when ``tensor`` is on an NPU and the package imports, else None."""
    if tensor.device.type != NPU:
        return None
    return _optional_module("mx_driving")


def pick_device(prefer: str | None = None) -> torch.device:
    """The accelerator to run on: ``prefer`` if given, else NPU, then CUDA, then CPU."""
    if prefer is not None:
        return torch.device(prefer)
    if _optional_module("torch_npu") is not None and torch.npu.is_available():  # type: ignore[attr-defined]
        return torch.device(NPU)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (for timing); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == NPU:
        torch.npu.synchronize(device)  # type: ignore[attr-defined]


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window on an accelerator; a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif device.type == NPU:
        torch.npu.reset_peak_memory_stats(device)  # type: ignore[attr-defined]


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak allocated accelerator memory since the last reset; None on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    if device.type == NPU:
        return torch.npu.max_memory_allocated(device)  # type: ignore[attr-defined]
    return None


def voxel_pooling_kernel(tensor: Tensor) -> VoxelPoolingKernel | None:
    """A native sum-pooling kernel over materialized frustum features for ``tensor``'s device.

    Returns None when the plain PyTorch path must be used.
    """
    mx_driving = _mx_driving_on(tensor)
    if mx_driving is None:
        return None
    return mx_driving.npu_voxel_pooling_train


def deform_conv_kernel(x: Tensor, deform_groups: int) -> DeformConvKernel | None:
    """A native deformable-conv kernel for ``x``, or None where the plain path must be used."""
    mx_driving = _mx_driving_on(x)
    if mx_driving is None or deform_groups != 1 or x.dtype != torch.float32 or x.shape[1] % 64:
        return None

    def kernel(
        x: Tensor,
        offset: Tensor,
        weight: Tensor,
        stride: int,
        padding: int,
        dilation: int,
        groups: int,
    ) -> Tensor:
        return mx_driving.deform_conv2d(x, offset, weight, stride, padding, dilation, groups, 1)

    return kernel
