"""Run stages in one process: resolve the topology, join the process group, map failures to
events and exit codes (docs/RUN_CONTRACT.md section 2)."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence

from bevdepth.events import EventSink
from bevdepth.runtime.config import ConfigError, RunConfig, load_config
from bevdepth.runtime.environment import Topology, TopologyError, resolve_topology

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# cause -> (exit code, hint); the cause names the kind of failure in the error event.
_CAUSES: dict[str, tuple[int, str]] = {
    "config": (EXIT_USAGE, "fix the named field of the run config (docs/RUN_CONTRACT.md)"),
    "data": (
        EXIT_USAGE,
        "check data.root and data.prepared_root, or run the prepare stage "
        "(python -m bevdepth prepare all --config FILE)",
    ),
    "checkpoint": (
        EXIT_USAGE,
        "point model.checkpoint / eval.checkpoint / training.resume_from at an existing "
        "checkpoint of the same model.preset, or clear it",
    ),
    "nan_loss": (
        EXIT_FAILURE,
        "lower training.lr_per_image or use precision 32-true; rerunning resumes from the newest "
        "checkpoint, which predates the failing step",
    ),
    "distributed": (
        EXIT_FAILURE,
        "another rank failed or is unreachable: look for its error event or log; "
        "BEVDEPTH_COLLECTIVE_TIMEOUT_S bounds how long ranks wait for each other",
    ),
    "interrupted": (
        EXIT_INTERRUPTED,
        "rerun the same command to resume from the newest checkpoint",
    ),
    "internal": (EXIT_FAILURE, "see the traceback in this rank's log"),
}


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException so that nothing on the way swallows it)."""


def classify(error: BaseException) -> str:
    """The error event's ``cause`` of an exception."""
    if isinstance(error, Interrupted | KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, ConfigError | TopologyError):
        return "config"  # before the imports below: a bad config fails without loading torch
    from bevdepth.data.infos import DatasetFileError
    from bevdepth.model import CheckpointMismatchError
    from bevdepth.runtime.checkpoints import CheckpointNotFoundError
    from bevdepth.runtime.lightning_module import NonFiniteLossError

    if isinstance(error, CheckpointMismatchError | CheckpointNotFoundError):
        return "checkpoint"
    if isinstance(error, DatasetFileError):
        return "data"
    if isinstance(error, NonFiniteLossError):
        return "nan_loss"
    if _is_distributed_error(error):
        return "distributed"
    return "internal"


def _is_distributed_error(error: BaseException) -> bool:
    import torch.distributed as dist

    dist_error = getattr(dist, "DistError", None)  # torch >= 2.2; older ones raise RuntimeError
    if dist_error is not None and isinstance(error, dist_error):
        return True
    text = str(error)
    markers = ("Connection closed by peer", "Connection reset", "timed out", "NCCL", "HCCL")
    return isinstance(error, RuntimeError) and any(marker in text for marker in markers)


def _raise_interrupted(signum: int, _frame) -> None:
    raise Interrupted(f"received {signal.Signals(signum).name}")


def run_command(
    config_path: str | os.PathLike, stages: Sequence[str] | None, argv: list[str]
) -> int:
    """``python -m bevdepth run|train|eval|bench|prepare`` with ``--config``: the exit code.

    Args:
        config_path: the resolved run config.
        stages: stages to run (None = the config's ``stages``).
        argv: this command line without the interpreter, repeated by the node agent.
    """
    try:
        config = load_config(config_path)
        topology = resolve_topology(
            os.environ, config.resources.nodes, config.resources.devices_per_node
        )
    except (ConfigError, TopologyError) as error:
        return _report(EventSink(), error, rank=None, stage=None)
    chosen = tuple(stages or config.stages)
    unknown = [stage for stage in chosen if stage not in _STAGES]
    if unknown:
        return _report(EventSink(), ConfigError(f"stages: unknown {unknown}"), None, None)
    if topology.mode == "node" and topology.world_size > 1:
        from bevdepth.runtime.agent import run_node

        jsonl = config.run_dir / "events.jsonl" if topology.node_rank == 0 else None
        return run_node(topology, argv, EventSink(jsonl))
    if topology.mode == "node":
        topology = topology.child(0, topology.master_port or 0)
    os.environ.update(topology.process_env())
    jsonl = config.run_dir / "events.jsonl" if topology.rank == 0 else None
    return run_stages(config, chosen, topology, EventSink(jsonl))


def run_stages(
    config: RunConfig, stages: Sequence[str], topology: Topology, sink: EventSink
) -> int:
    """Run ``stages`` as one rank of ``topology``; returns the exit code."""
    from bevdepth.runtime.context import RankContext

    ctx = RankContext(config, topology, sink)
    started = time.monotonic()
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    stage = None
    code = EXIT_OK
    try:
        _join_process_group(ctx)
        for stage in stages:
            stage_started = time.monotonic()
            _stage_function(stage)(ctx)
            ctx.emit("done", stage=stage, exit_code=0, seconds=time.monotonic() - stage_started)
        stage = None
        _leave_process_group()
    except BaseException as error:  # every failure becomes an event and an exit code
        code = _report(sink, error, ctx.rank, stage)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    ctx.emit("done", stage="all", exit_code=code, seconds=time.monotonic() - started)
    return code


def _report(sink: EventSink, error: BaseException, rank: int | None, stage: str | None) -> int:
    cause = classify(error)
    code, hint = _CAUSES[cause]
    lines = str(error).strip().splitlines() or [type(error).__name__]
    if cause == "internal":
        traceback.print_exception(error, file=sys.stderr)
    elif len(lines) > 1:
        print("\n".join(lines), file=sys.stderr)
    sink.emit(
        "error",
        message=lines[0],
        hint=hint,
        cause=cause,
        exit_code=code,
        rank=rank,
        stage=stage,
    )
    return code


def _join_process_group(ctx) -> None:
    """Join the job's process group once for all stages (Lightning reuses it).

    NCCL/HCCL need the rank's device to be current first; the timeout bounds every collective.
    """
    import torch.distributed as dist

    from bevdepth import device
    from bevdepth.runtime.context import collective_timeout

    accelerator = ctx.config.resources.accelerator
    device.require_accelerator(accelerator)
    if ctx.world_size == 1:
        return
    device.local_device(accelerator, ctx.topology.local_rank)
    dist.init_process_group(
        device.process_group_backend(accelerator),
        rank=ctx.rank,
        world_size=ctx.world_size,
        timeout=collective_timeout(),
    )


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


# Imported when run, so that a bad config fails fast, before torch and Lightning load.
_STAGES = {
    "prepare": "bevdepth.runtime.prepare:prepare",
    "train": "bevdepth.runtime.train:train",
    "eval": "bevdepth.runtime.evaluate:evaluate",
    "bench": "bevdepth.runtime.bench:bench",
}


def _stage_function(stage: str) -> Callable:
    module, name = _STAGES[stage].split(":")
    return getattr(importlib.import_module(module), name)
