"""Timing and peak-memory helpers shared by the model benchmarks.

Peak memory on CPU: each variant runs in a fresh Python process and reports the growth of its
resident-set high-water mark (``ru_maxrss``) over the measured call, after inputs are built and
torch is imported and warmed up on a tiny call. The growth is the extra memory the first
forward + backward needed at its peak (allocations, autograd buffers, temporaries), which
``tracemalloc`` cannot see because torch allocates outside Python. glibc returns large blocks to
the OS on free, so the mark tracks live tensors closely; it is measured once, on the first call,
because a later call can reuse pages freed by the first. On CUDA the allocator's own
``max_memory_allocated`` is used instead.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from bevdepth import device as devices

MIB = 1024 * 1024


def peak_rss_bytes() -> int:
    """High-water mark of this process's resident set (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(step: Callable[[], None], device: torch.device, repeats: int) -> dict[str, float]:
    """Peak memory of the first ``step()`` and the median time of ``repeats`` further calls.

    Returns:
        ``peak_mib`` and ``median_s`` (plus ``first_s``, the cold first call).
    """
    devices.synchronize(device)
    devices.reset_peak_memory(device)
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    step()
    devices.synchronize(device)
    first = time.perf_counter() - start
    accelerator_peak = devices.peak_memory_bytes(device)
    peak = accelerator_peak if accelerator_peak is not None else peak_rss_bytes() - rss_before
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        devices.synchronize(device)
        times.append(time.perf_counter() - start)
    return {
        "peak_mib": peak / MIB,
        "median_s": statistics.median(times) if times else first,
        "first_s": first,
    }


def run_isolated(script: str, worker_args: list[str]) -> dict:
    """Run ``script --worker ...`` in a fresh interpreter and return the JSON it prints last."""
    completed = subprocess.run(
        [sys.executable, script, "--worker", *worker_args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])
