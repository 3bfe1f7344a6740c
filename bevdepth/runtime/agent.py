"""The node agent: in ``node`` mode, start one rank per device and supervise them.

Lightning's own subprocess launcher could do the spawning, but when a child fails it SIGKILLs
the main process (rank 0) too, losing rank 0's exit code and error event. The agent instead
starts every local rank as a torchrun-style child (the same code path as torchrun and the local
backend), forwards SIGINT/SIGTERM to them, and when one dies: gives the others a grace period
to report, kills what is left, emits an ``error`` naming the dead rank, and exits with the first
failure's code.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from bevdepth.events import EventSink
from bevdepth.runtime.environment import Topology

GRACE_S = 30.0  # how long the surviving ranks get to report their own error after a failure
_POLL_S = 0.2


def free_port() -> int:
    """An unused TCP port on this host (single-node rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def run_node(
    topology: Topology, argv: Sequence[str], sink: EventSink, grace_s: float = GRACE_S
) -> int:
    """Run ``python -m bevdepth <argv>`` once per local rank and wait for all of them.

    Args:
        topology: a ``node``-mode topology.
        argv: the command line to repeat in every child (without the interpreter).
        sink: events of the agent (only errors).
        grace_s: how long the other ranks may run on after the first failure.

    Returns:
        0 when every rank succeeded, else the exit code of the first rank that failed (1 for a
        rank killed by a signal).
    """
    port = topology.master_port or free_port()
    children = []
    for local_rank in range(topology.devices_per_node):
        env = {**os.environ, **topology.child(local_rank, port).process_env()}
        command = [sys.executable, "-m", "bevdepth", *argv]
        children.append(subprocess.Popen(command, env=env))

    def forward(signum: int, _frame) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return supervise(children, topology, sink, grace_s)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def supervise(
    children: list[subprocess.Popen], topology: Topology, sink: EventSink, grace_s: float
) -> int:
    """Wait for the local ranks ``children`` (index = local rank); see :func:`run_node`."""
    first_failure: tuple[int, int, float] | None = None  # (local rank, code, when)
    # A list, not a generator: every child must be polled for its returncode to be set.
    while any([child.poll() is None for child in children]):
        if first_failure is None:
            first_failure = next(
                (
                    (i, c.returncode, time.monotonic())
                    for i, c in enumerate(children)
                    if c.returncode
                ),
                None,
            )
        elif time.monotonic() - first_failure[2] > grace_s:
            for child in children:
                if child.poll() is None:
                    child.kill()
        time.sleep(_POLL_S)
    if first_failure is None:
        first_failure = next(
            ((i, c.returncode, 0.0) for i, c in enumerate(children) if c.returncode), None
        )
    if first_failure is None:
        return 0
    local_rank, code, _ = first_failure
    if code > 0:
        return code
    rank = topology.child(local_rank, 0).rank
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = str(-code)
    sink.emit(
        "error",
        message=f"rank {rank} (pid {children[local_rank].pid}) was killed by signal {name}",
        hint="out of memory (the kernel's OOM killer) is the usual cause; see the node's log",
        cause="rank_died",
        exit_code=1,
        rank=rank,
        stage=None,
    )
    return 1
