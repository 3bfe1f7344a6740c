"""What every stage of one rank gets: the config, its place in the job, the event sink."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from bevdepth.events import EventSink
from bevdepth.runtime.config import RunConfig
from bevdepth.runtime.environment import Topology

COLLECTIVE_TIMEOUT_VARIABLE = "BEVDEPTH_COLLECTIVE_TIMEOUT_S"
DEFAULT_COLLECTIVE_TIMEOUT_S = 1800.0  # torch's own default for gloo and NCCL


def collective_timeout(env: Mapping[str, str] = os.environ) -> timedelta:
    """How long a collective (and the rendezvous) may wait for the other ranks."""
    value = env.get(COLLECTIVE_TIMEOUT_VARIABLE)
    return timedelta(seconds=float(value) if value else DEFAULT_COLLECTIVE_TIMEOUT_S)


@dataclass(frozen=True)
class RankContext:
    """One rank's view of the run.

    Attributes:
        config: the resolved run config.
        topology: a ``process``-mode topology (this process is one rank).
        sink: events; it also writes ``events.jsonl`` on global rank 0.
    """

    config: RunConfig
    topology: Topology
    sink: EventSink

    @property
    def rank(self) -> int:
        return self.topology.rank or 0

    @property
    def is_zero(self) -> bool:
        return self.rank == 0

    @property
    def world_size(self) -> int:
        return self.topology.world_size

    def emit(self, kind: str, **fields) -> None:
        """Emit an event from global rank 0 only (errors are emitted by the runner directly)."""
        if self.is_zero:
            self.sink.emit(kind, **fields)

    def start_fields(self, stage: str) -> dict:
        """The fields every ``start`` event carries."""
        return {
            "stage": stage,
            "run": self.config.run.name,
            "world_size": self.world_size,
            "nodes": self.topology.num_nodes,
            "devices_per_node": self.topology.devices_per_node,
            "accelerator": self.config.resources.accelerator,
        }

    def info(self, message: str) -> None:
        """A log line from global rank 0 (ordinary stdout text, not an event)."""
        if self.is_zero:
            print(f"[bevdepth] {message}", flush=True)
