"""Following pod logs through drops, restarts and sleep, without repeating a line.

The API server's log stream ends when the container exits, but also when a connection drops
or a laptop sleeps; it cannot say which. So a follower always looks at the pod afterwards and
reconnects from where it was. Lines are read with their kubelet timestamps: a reconnect asks for
a few seconds more than needed (``sinceSeconds``; clocks differ) and :class:`LogCursor` drops
what was already seen. A restarted container is followed anew, after the tail of the previous
one (``previous=true``) is read.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bevlaunch.backends.base import LogLine
from bevlaunch.backends.k8s_api import POD
from bevlaunch.backends.k8s_state import container_status, pod_phase
from bevlaunch.render import CONTAINER_NAME

if TYPE_CHECKING:
    from bevlaunch.backends.k8s_api import KubeApi

# Re-read this many seconds more than the last line's age: the laptop's clock and the node's
# may differ; the cursor drops the overlap.
SINCE_MARGIN_S = 60
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ?")

Stamp = tuple[int, int]  # (Unix seconds, nanoseconds): exact order, unlike floats


def split_timestamp(line: str) -> tuple[Stamp | None, str]:
    """``"2026-01-02T03:04:05.123456789Z text"`` → ((seconds, nanos), "text")."""
    match = _STAMP.match(line)
    if match is None:
        return None, line
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    seconds = int(datetime.fromisoformat(base + zone).timestamp())
    nanos = int((fraction or "0").ljust(9, "0"))
    return (seconds, nanos), line[match.end() :]


@dataclass
class LogCursor:
    """How far a container's log has been read: the last timestamp and how many lines carried
    exactly that timestamp (several lines may share one)."""

    last: Stamp | None = None
    seen_at_last: int = 0
    _in_this_read: int = 0  # lines stamped ``last`` met in the current read

    def accept(self, stamp: Stamp | None) -> bool:
        """True for a line not seen before (a read returns lines in timestamp order)."""
        if stamp is None:
            return True  # nothing to compare: never drop a line
        if self.last is None or stamp > self.last:
            self.last, self.seen_at_last, self._in_this_read = stamp, 1, 1
            return True
        if stamp < self.last:
            return False
        self._in_this_read += 1
        if self._in_this_read > self.seen_at_last:
            self.seen_at_last = self._in_this_read
            return True
        return False

    def rewind(self) -> None:
        """A new read starts (it may repeat lines stamped ``last``)."""
        self._in_this_read = 0

    def since_seconds(self, now: float) -> int | None:
        """``sinceSeconds`` for a reconnect (None: from the start of the container)."""
        if self.last is None:
            return None
        return max(1, math.ceil(now - self.last[0]) + SINCE_MARGIN_S)


@dataclass
class PodFollower:
    """Follows the workload container of one pod until the pod ends or ``stop`` is set.

    Args:
        api: the cluster.
        pod: the pod's name.
        rank: its node rank (the prefix of its lines).
        stop: set to end following early (Ctrl-C).
        run_over: set once the run has finished: a pod that has not started never will.
        read_timeout_s: a stream that sends nothing this long is reconnected (sleep, dead
            connection); a quiet but healthy container just gets a new stream.
        poll_s: pause between looks at a pod that is not running.
        clock, sleep: injected for tests.
    """

    api: KubeApi
    pod: str
    rank: int
    stop: threading.Event
    run_over: threading.Event = field(default_factory=threading.Event)
    read_timeout_s: float = 60.0
    poll_s: float = 2.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def lines(self) -> Iterator[LogLine]:
        cursor = LogCursor()
        restarts_seen: int | None = None
        while not self.stop.is_set():
            pod = self.api.get(POD, self.pod)
            if pod is None:
                return  # deleted (cancelled, or replaced)
            status = container_status(pod)
            state = status.get("state") or {}
            restarts = int(status.get("restartCount") or 0)
            ended = pod_phase(pod) in ("Succeeded", "Failed")
            if restarts_seen is None:
                if not state or ("waiting" in state and not status.get("lastState")):
                    if ended or self.run_over.is_set():
                        yield from self._read(cursor)
                        return
                    self.sleep(self.poll_s)  # not started yet (pulling, ContainerCreating)
                    continue
                restarts_seen = restarts
            if restarts > restarts_seen:
                yield from self._read(cursor, previous=True)  # the tail of the one that died
                yield LogLine(
                    self.rank,
                    f"[bevlaunch] rank {self.rank}: the container restarted "
                    f"({restarts} restarts); following the new one",
                )
                cursor, restarts_seen = LogCursor(), restarts
                continue
            if "running" in state and not ended:
                cursor.rewind()
                for raw in self.api.follow_log(
                    self.pod,
                    CONTAINER_NAME,
                    since_seconds=cursor.since_seconds(self.clock()),
                    read_timeout_s=self.read_timeout_s,
                ):
                    line = self._accept(cursor, raw)
                    if line is not None:
                        yield line
                    if self.stop.is_set():
                        return
                continue  # the stream ended: exited, restarted, or dropped; look again
            if "terminated" in state:
                yield from self._read(cursor)
                if ended or self.run_over.is_set():
                    return
            elif ended or self.run_over.is_set():
                return
            self.sleep(self.poll_s)

    def _read(self, cursor: LogCursor, previous: bool = False) -> Iterator[LogLine]:
        cursor.rewind()
        text = self.api.read_log(
            self.pod,
            CONTAINER_NAME,
            previous=previous,
            since_seconds=cursor.since_seconds(self.clock()),
            timestamps=True,
        )
        for raw in text.splitlines():
            line = self._accept(cursor, raw)
            if line is not None:
                yield line

    def _accept(self, cursor: LogCursor, raw: str) -> LogLine | None:
        stamp, text = split_timestamp(raw)
        return LogLine(self.rank, text) if cursor.accept(stamp) else None
