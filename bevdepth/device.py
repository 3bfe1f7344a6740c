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


# --- Training runtime: accelerator, process group, precision and optimizer per device kind. ---
# ``accelerator`` below is the run config's ``resources.accelerator``: "npu", "gpu" or "cpu".

_PROCESS_GROUP_BACKENDS = {NPU: "hccl", "gpu": "nccl", "cpu": "gloo"}
_TORCH_DEVICE_TYPES = {NPU: NPU, "gpu": "cuda", "cpu": "cpu"}


def process_group_backend(accelerator: str) -> str:
    """The torch.distributed backend: HCCL on NPU, NCCL on GPU, gloo on CPU."""
    return _PROCESS_GROUP_BACKENDS[accelerator]


def require_accelerator(accelerator: str) -> None:
    """Raise RuntimeError (with the fix) when the requested accelerator is not usable here."""
    if accelerator == NPU and (
        _optional_module("torch_npu") is None or not torch.npu.is_available()  # type: ignore[attr-defined]
    ):
        raise RuntimeError("resources.accelerator is npu but torch_npu finds no NPU here")
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise RuntimeError("resources.accelerator is gpu but torch finds no CUDA device here")


def local_device(accelerator: str, local_rank: int) -> torch.device:
    """The device of local rank ``local_rank``, made current (NCCL/HCCL need it before init)."""
    kind = _TORCH_DEVICE_TYPES[accelerator]
    if kind == "cpu":
        return torch.device("cpu")
    device = torch.device(kind, local_rank)
    if kind == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.npu.set_device(device)  # type: ignore[attr-defined]
    return device


def lightning_accelerator(accelerator: str):
    """The Lightning ``accelerator`` argument: "cpu", "cuda", or an NPU accelerator instance."""
    if accelerator != NPU:
        return _TORCH_DEVICE_TYPES[accelerator]
    return _npu_accelerator_class()()


@functools.cache
def _npu_accelerator_class():
    """A Lightning Accelerator for torch_npu devices (Lightning ships none)."""
    from lightning.pytorch.accelerators import Accelerator

    class NPUAccelerator(Accelerator):
        def setup_device(self, device: torch.device) -> None:
            torch.npu.set_device(device)  # type: ignore[attr-defined]

        def teardown(self) -> None:
            torch.npu.empty_cache()  # type: ignore[attr-defined]

        @staticmethod
        def parse_devices(devices):
            return devices

        @staticmethod
        def get_parallel_devices(devices):
            count = devices if isinstance(devices, int) else len(devices)
            return [torch.device(NPU, i) for i in range(count)]

        @staticmethod
        def auto_device_count() -> int:
            return torch.npu.device_count()  # type: ignore[attr-defined]

        @staticmethod
        def is_available() -> bool:
            return _optional_module("torch_npu") is not None and torch.npu.is_available()  # type: ignore[attr-defined]

        @staticmethod
        def name() -> str:
            return NPU

        def get_device_stats(self, device) -> dict:
            return {}

    return NPUAccelerator


def lightning_precision(accelerator: str, precision: str) -> tuple[str, object | None, str | None]:
    """Precision for Lightning on this accelerator.

    Returns:
        (precision actually used, a precision plugin to pass instead of ``precision=`` or None,
        a log line when the request was changed or None). fp16 AMP on CPU becomes fp32 (CPU
        autocast supports bfloat16 only); on NPU the AMP plugin autocasts on "npu" with
        torch_npu's grad scaler (Lightning only knows "cuda" and "cpu").
    """
    if accelerator == "cpu" and precision == "16-mixed":
        return "32-true", None, "precision 16-mixed is not available on cpu; using 32-true"
    if accelerator == NPU and precision.endswith("-mixed"):
        from lightning.pytorch.plugins.precision import MixedPrecision

        scaler = torch.npu.amp.GradScaler() if precision == "16-mixed" else None  # type: ignore[attr-defined]
        return precision, MixedPrecision(precision, device=NPU, scaler=scaler), None
    return precision, None, None


def adamw(params, lr: float, weight_decay: float, accelerator: str) -> torch.optim.Optimizer:
    """AdamW; on NPU torch_npu's fused ``NpuFusedAdamW`` when present (the Ascend recipe's)."""
    if accelerator == NPU:
        torch_npu = _optional_module("torch_npu")
        fused = getattr(getattr(torch_npu, "optim", None), "NpuFusedAdamW", None)
        if fused is not None:
            return fused(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
