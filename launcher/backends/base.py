"""The backend-neutral interface: run states, status, log lines, and the Backend protocol."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from bevlaunch.spec import JobSpec


class RunState(str, Enum):
    """Where a run is in its life. Backends map their own phases onto these."""

    PENDING = "pending"  # accepted, no stage started yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # the backend cannot tell (e.g. its supervisor vanished mid-write)

    @property
    def finished(self) -> bool:
        """True once the run can change no more."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


@dataclass(frozen=True)
class RunStatus:
    """A snapshot of one run.

    Attributes:
        name: the run name.
        state: where the run is.
        stage: the stage running now, or the last one that ran.
        stages: the planned stages, in order.
        ranks: processes (ranks) of the current stage.
        started: Unix time the run started (None while pending).
        ended: Unix time it finished (None until then).
        diagnosis: one line saying why a run failed (which rank, exit code, cause).
        last_lines: the failed rank's last log lines, for context.
        location: where the run lives (a run directory, a namespace/name).
        progress: how far the current stage is (e.g. ``epoch 2/24, step 900/10536``), when the
            backend can tell without following the run.
    """

    name: str
    state: RunState
    stage: str | None = None
    stages: tuple[str, ...] = ()
    ranks: int = 0
    started: float | None = None
    ended: float | None = None
    diagnosis: str | None = None
    last_lines: tuple[str, ...] = ()
    location: str = ""
    progress: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for ``--output json|yaml``."""
        return {
            "name": self.name,
            "state": self.state.value,
            "stage": self.stage,
            "stages": list(self.stages),
            "ranks": self.ranks,
            "started": self.started,
            "ended": self.ended,
            "diagnosis": self.diagnosis,
            "last_lines": list(self.last_lines),
            "location": self.location,
            "progress": self.progress,
        }


@dataclass(frozen=True)
class LogLine:
    """One line of a rank's output (without its newline)."""

    rank: int
    text: str


@dataclass(frozen=True)
class Submitted:
    """What ``submit`` created: the run name and where it lives."""

    name: str
    location: str


class Backend(Protocol):
    """What every backend offers. Library code: raises BevlaunchError subclasses, never prints."""

    def submit(self, spec: JobSpec) -> Submitted:
        """Start a run of ``spec`` and return at once."""
        ...

    def status(self, name: str) -> RunStatus:
        """The state of run ``name``. Raises ClusterError when there is no such run."""
        ...

    def logs(self, name: str, *, rank: int | None = 0, follow: bool = False) -> Iterator[LogLine]:
        """Lines of one rank (``rank=None``: every rank); ``follow`` waits for more until the
        run has finished."""
        ...

    def cancel(self, name: str) -> RunStatus:
        """Stop every process of the run; returns the final status."""
        ...

    def list(self) -> list[RunStatus]:
        """Every run this backend knows, oldest first."""
        ...

    def results(self, name: str) -> dict[str, Any]:
        """The run's ``results.json`` (run contract §4). Raises ClusterError when absent."""
        ...
