"""Events: the only contract between the workload and the launcher (standard library only).

The workload prints one JSON object per line on stdout, behind ``PREFIX``; everything else on
stdout is ordinary log text. Each object has ``kind`` (one of ``KINDS``), ``time`` (Unix seconds)
and kind-specific fields:

- ``start``: stage, run name, world size.
- ``progress``: epoch, step, steps_per_epoch, loss (and named losses), lr, samples_per_s.
- ``checkpoint``: path, epoch, step.
- ``metrics``: mAP, mATE, mASE, mAOE, mAVE, mAAE, NDS, per-class AP, FPS.
- ``error``: message, hint.
- ``done``: stage, exit status.

Importing this module must never import torch (the launcher uses it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

PREFIX = "@@bevdepth-event "
KINDS = frozenset({"start", "progress", "checkpoint", "metrics", "error", "done"})


@dataclass(frozen=True)
class Event:
    """One event: its ``kind``, when it happened, and its kind-specific ``fields``."""

    kind: str
    time: float
    fields: dict[str, Any] = field(default_factory=dict)


def format_event(kind: str, when: float | None = None, **fields: Any) -> str:
    """The stdout line of an event (without a trailing newline)."""
    if kind not in KINDS:
        raise ValueError(f"event kind {kind!r} is not one of {sorted(KINDS)}")
    body = {"kind": kind, "time": time.time() if when is None else when, **fields}
    return PREFIX + json.dumps(body, separators=(",", ":"), allow_nan=False)


def parse_line(line: str) -> Event | None:
    """The event carried by a stdout line, or None for ordinary log text or a damaged event."""
    start = line.find(PREFIX)
    if start < 0:
        return None
    try:
        body = json.loads(line[start + len(PREFIX) :])
    except json.JSONDecodeError:
        return None
    if not isinstance(body, dict) or body.get("kind") not in KINDS:
        return None
    kind = body.pop("kind")
    when = body.pop("time", 0.0)
    return Event(kind=kind, time=float(when) if isinstance(when, int | float) else 0.0, fields=body)
