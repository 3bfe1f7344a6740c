"""The ``prepare`` stage: synthetic data (when configured), infos and train depth files.

Global rank 0 does the work; the other ranks wait for it at a barrier. Every step skips what
is already complete, so rerunning a prepared run costs a few file checks.

The wait is not bounded by ``BEVDEPTH_COLLECTIVE_TIMEOUT_S`` (30 minutes by default): depth files
of the full trainval split take hours on one process. The barrier runs on its own gloo group
(CPU, whatever the accelerator; NCCL/HCCL watchdogs would abort a long wait) whose timeout is
``BEVDEPTH_PREPARE_TIMEOUT_S`` (default one day). A rank 0 that dies while preparing is noticed
by torchrun or the node agent, which stop the waiting ranks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta

import torch.distributed as dist

from bevdepth.runtime.config import RunConfig
from bevdepth.runtime.context import RankContext

PREPARE_TIMEOUT_VARIABLE = "BEVDEPTH_PREPARE_TIMEOUT_S"
DEFAULT_PREPARE_TIMEOUT_S = 86400.0


def prepare_timeout(env: Mapping[str, str] = os.environ) -> timedelta:
    """How long the other ranks wait for global rank 0 to finish preparing."""
    value = env.get(PREPARE_TIMEOUT_VARIABLE)
    return timedelta(seconds=float(value) if value else DEFAULT_PREPARE_TIMEOUT_S)


def prepare_data(config: RunConfig, say: Callable[[str], None] = print) -> None:
    """Generate / prepare ``data.root`` as the config describes (one process)."""
    from bevdepth.data.depth_gt import create_depth_gt
    from bevdepth.data.infos import create_infos
    from bevdepth.data.synthetic import generate_dataset

    workers = max(1, config.data.num_workers)
    if config.data.synthetic is not None:
        generate_dataset(config.data.root, config.data.synthetic, workers=workers)
        say(f"synthetic dataset ready in {config.data.root}")
    summary = create_infos(config.data.root, config.data.prepared_root)
    for split, count in summary.written.items():
        say(f"infos {split}: {count} samples written")
    depth = create_depth_gt(config.data.root, config.data.prepared_root, ["train"], workers)
    say(f"depth_gt: {depth.written} of {depth.samples} samples written")


def prepare(ctx: RankContext) -> None:
    """Prepare on global rank 0 while the others wait."""
    ctx.emit("start", **ctx.start_fields("prepare"))
    if ctx.world_size > 1:
        # Created on every rank before rank 0 starts working (new_group is itself collective).
        waiting = dist.new_group(backend="gloo", timeout=prepare_timeout())
    if ctx.is_zero:
        prepare_data(ctx.config, ctx.info)
    if ctx.world_size > 1:
        dist.barrier(group=waiting)
        dist.destroy_process_group(waiting)
