"""Process helpers of the local backend: free ports, liveness, stopping process groups.

Every rank runs in its own session (so its own process group): a signal to the group reaches
the rank and whatever it started (data loader workers), and a terminal closing reaches none.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (rank 0 binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_alive(pid: int, *, command_contains: str | None = None) -> bool:
    """Whether process ``pid`` runs (a zombie does not count).

    Args:
        pid: the process id.
        command_contains: when given (and /proc is there), the process's command line must
            contain it, so that a recycled pid of an unrelated process does not count.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    proc = Path(f"/proc/{pid}")
    try:
        # Field 3 of /proc/PID/stat is the state; the name before it may contain spaces.
        if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if command_contains is not None:
            return command_contains in proc.joinpath("cmdline").read_bytes().decode(
                errors="replace"
            )
    except (FileNotFoundError, IndexError):
        pass  # no /proc (not Linux): kill(pid, 0) is all we know
    return True


def group_exists(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still exists (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_groups(pgids: Iterable[int], sig: signal.Signals) -> None:
    """Send ``sig`` to every group; groups that are gone already are skipped."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def stop_groups(
    pgids: Iterable[int], grace_s: float, *, reap: Callable[[], None] | None = None
) -> None:
    """SIGTERM every group, then SIGKILL whatever is left after ``grace_s`` seconds.

    Args:
        pgids: process groups to stop.
        grace_s: how long the processes get to exit cleanly (the workload keeps its newest
            complete checkpoint and exits 130 on SIGTERM).
        reap: called while waiting, by a parent that must collect its exited children (they
            stay zombies, and so group members, until it does).
    """
    pgids = list(pgids)
    signal_groups(pgids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if reap is not None:
            reap()
        if not any(group_exists(g) for g in pgids):
            return
        time.sleep(0.05)
    signal_groups(pgids, signal.SIGKILL)
    if reap is not None:
        reap()
