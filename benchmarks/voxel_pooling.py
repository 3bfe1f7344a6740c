"""Voxel pooling ("splat") at the reference size: materialized baseline vs the sparse version.

Both variants pool ``depth ⊗ context`` of one frame into the 128x128 BEV grid and back-propagate
to depth and context: B=1, N=6 cameras, D=112 bins, 16x44 pixels, C=80 channels, with the voxel
indices of a nuScenes-like camera rig (``bevdepth.model.testing``). Each variant runs in its own
process for its peak memory (see ``_measure.py``); times come from rounds that alternate the two
variants in one process, so machine load hits both alike. Ratios are against the baseline.

On a CPU shared with other busy processes, use ``--threads 1``: every multi-threaded op then
waits for a descheduled thread, which penalizes the sparse version's many small index ops far
more than the baseline's few large ones.

    python benchmarks/voxel_pooling.py
    python benchmarks/voxel_pooling.py --repeats 10 --device cuda --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import torch
from _measure import measure, run_isolated

from bevdepth import device as devices
from bevdepth.model.config import preset
from bevdepth.model.geometry import create_frustum, frustum_to_ego, voxel_indices
from bevdepth.model.testing import make_camera_mats
from bevdepth.model.voxel_pooling import lift, voxel_pooling, voxel_pooling_materialized

VARIANTS = {
    "materialized": "lift to (B, N, D, h, w, C) + index_add (reference semantics)",
    "sparse": "CSR product over (cell, pixel column) pairs, custom backward",
}


def inputs(target: torch.device, seed: int = 0):
    """Voxel indices, depth probabilities and context of one reference-size frame."""
    cfg = preset("reference")
    gen = torch.Generator().manual_seed(seed)
    mats = make_camera_mats(cfg, 1, generator=gen)
    points = frustum_to_ego(
        create_frustum(cfg.grid),
        mats.sensor2ego_mats[:, 0],
        mats.intrin_mats[:, 0],
        mats.ida_mats[:, 0],
        mats.bda_mat,
    )
    size = torch.tensor([b[2] for b in cfg.grid.bounds])
    coord = torch.tensor([b[0] + b[2] / 2 for b in cfg.grid.bounds])
    geom = voxel_indices(points, size, coord).to(target)
    h, w = cfg.grid.feature_size
    depth = torch.randn(6, cfg.grid.depth_channels, h, w, generator=gen).softmax(1)
    context = torch.randn(6, cfg.output_channels, h, w, generator=gen)
    return cfg, geom, depth.to(target).requires_grad_(True), context.to(target).requires_grad_(True)


def make_step(variant: str, target: torch.device) -> Callable[[], None]:
    """One forward + backward of ``variant`` on fixed inputs."""
    cfg, geom, depth, context = inputs(target)
    voxel_num = cfg.grid.voxel_num
    grad = torch.randn(1, cfg.output_channels, 128, 128, device=target)

    def step() -> None:
        if variant == "sparse":
            out = voxel_pooling(geom, depth, context, voxel_num)
        else:
            out = voxel_pooling_materialized(geom, lift(depth, context, 1), voxel_num)
        out.backward(grad)
        depth.grad = context.grad = None

    return step


def worker(variant: str, device_name: str | None) -> dict:
    """Peak memory of the first call, in a process of its own."""
    target = devices.pick_device(device_name)
    # Warm up kernels and libraries on a tiny call so their one-time memory is not counted.
    cfg, geom, depth, context = inputs(target)
    small = (geom[:, :1, :2], depth[:1, :2].detach(), context[:1].detach())
    voxel_pooling(*small, cfg.grid.voxel_num)
    voxel_pooling_materialized(small[0], lift(small[1], small[2], 1), cfg.grid.voxel_num)
    result = measure(make_step(variant, target), target, repeats=0)
    return {"variant": variant, "device": str(target), "peak_mib": result["peak_mib"]}


def run(args: argparse.Namespace) -> dict:
    device_args = ["--device", args.device] if args.device else []
    rows = {v: run_isolated(__file__, ["--variant", v, *device_args]) for v in VARIANTS}
    # Timing in this process, the variants interleaved round by round so that load from other
    # processes on the machine hits both alike; the median round is reported.
    if args.threads:
        torch.set_num_threads(args.threads)
    target = devices.pick_device(args.device)
    steps = {v: make_step(v, target) for v in VARIANTS}
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_index in range(args.repeats + 1):
        for variant, step in steps.items():
            devices.synchronize(target)
            start = time.perf_counter()
            step()
            devices.synchronize(target)
            if round_index:  # the first round is a warm-up
                times[variant].append(time.perf_counter() - start)
    base = rows["materialized"]
    for variant, row in rows.items():
        row["median_s"] = statistics.median(times[variant])
    for row in rows.values():
        row["time_ratio"] = row["median_s"] / base["median_s"]
        row["memory_ratio"] = row["peak_mib"] / base["peak_mib"]
    return {
        "size": "B=1 N=6 D=112 h=16 w=44 C=80 -> 128x128",
        "device": base["device"],
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "speedup": base["median_s"] / rows["sparse"]["median_s"],
        "variants": rows,
    }


def render_table(result: dict) -> str:
    lines = [
        f"voxel pooling forward+backward, {result['size']}, {result['device']}, "
        f"{result['threads']} threads, median of {result['repeats']}",
        f"  {'variant':<13} {'time ms':>9} {'peak MiB':>9} {'time ratio':>11} {'mem ratio':>10}",
    ]
    for name, row in result["variants"].items():
        lines.append(
            f"  {name:<13} {row['median_s'] * 1e3:>9.1f} {row['peak_mib']:>9.1f} "
            f"{row['time_ratio']:>11.3f} {row['memory_ratio']:>10.3f}"
        )
    lines.append(f"  speedup sparse vs materialized: {result['speedup']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds after a warm-up")
    parser.add_argument("--device", help="cpu, cuda, npu (default: best available)")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads for the timing (default: torch's choice)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.variant, args.device)))
        return
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else render_table(result))


if __name__ == "__main__":
    sys.exit(main())
