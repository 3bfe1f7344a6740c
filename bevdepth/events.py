"""Events: the only contract between the workload and the launcher (standard library only).

The workload prints one JSON object per line on stdout, behind ``PREFIX``; everything else on
stdout is ordinary log text. Global rank 0 also appends every event it prints, without the prefix,
to ``<run.dir>/events.jsonl``. Each object has ``kind`` (one of ``KINDS``), ``time`` (Unix seconds,
float) and the kind's fields below. Fields are only ever added, never renamed; a reader must ignore
fields it does not know. Numbers are JSON numbers (never NaN or infinity; a value that cannot be
computed is ``null``).

``start`` (rank 0, once per stage):
    ``stage`` (``prepare`` | ``train`` | ``eval`` | ``bench``), ``run`` (run name),
    ``world_size``, ``nodes``, ``devices_per_node``, ``accelerator`` (``npu`` | ``gpu`` | ``cpu``).
    train and bench add ``precision`` (the Lightning precision actually used), ``epochs``,
    ``steps_per_epoch``, ``global_batch``, ``lr``; train adds ``resume_from`` (checkpoint path or
    null) and ``resume_step`` (optimizer steps already done, 0 for a fresh run). eval adds
    ``checkpoint`` and ``samples``.

``progress`` (rank 0 only, after every optimizer step of train and bench):
    ``stage``, ``epoch`` (0-based), ``step`` (optimizer steps done in the whole run, 1-based),
    ``steps_per_epoch``, ``max_steps`` (the step the run stops at), ``loss`` (total training loss
    of rank 0's batch), ``losses`` (``{"detection": float, "depth": float}``), ``lr`` (learning
    rate of that step), ``samples_per_s`` (global: batch_per_device x world size / seconds since the
    previous step; includes data loading).

``checkpoint`` (rank 0, after a checkpoint file is complete):
    ``path`` (absolute), ``epoch`` (0-based epoch it was taken in), ``step`` (optimizer steps done),
    ``reason`` (``steps`` every checkpoint_every_steps, or ``epoch_end``).

``metrics`` (rank 0):
    ``stage``. For ``eval``: ``mAP``, ``mATE``, ``mASE``, ``mAOE``, ``mAVE``, ``mAAE``, ``NDS``
    (nuScenes detection_cvpr_2019), ``per_class_ap`` (``{class: AP}`` averaged over the distance
    thresholds), ``samples_per_s`` (the FPS of distributed inference: samples / wall seconds of
    the predict loop over all ranks), ``samples``, ``eval_set``, ``checkpoint``, ``results``
    (path of results.json). For ``bench``: ``step_time_s`` (mean after warm-up),
    ``samples_per_s`` (the FPS: batch_per_device / step_time_s x world size, as the reference
    scripts compute it), ``images_per_s`` (samples_per_s x frames x cameras), ``steps``,
    ``warmup_steps``, ``world_size``, ``batch_per_device``, ``method`` (that formula in words).

``error`` (any rank, and the node agent when a rank dies):
    ``message`` (one line naming the cause), ``hint`` (what to change), ``cause`` (``config``,
    ``data``, ``checkpoint``, ``nan_loss``, ``rank_died``, ``distributed``, ``interrupted`` or
    ``internal``), ``exit_code`` (what the process exits with), ``rank`` (global rank, null when
    unknown), ``stage`` (null outside a stage).

``done`` (rank 0, once per stage that succeeded, and last, once for the whole command):
    ``stage`` (the stage, or ``all`` for the whole command), ``exit_code`` (0 for a stage; for
    ``all`` the process's exit code: 0, 1, 2 or 130 as in the run contract), ``seconds`` (wall
    time).

Importing this module must never import torch (the launcher uses it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

PREFIX = "@@bevdepth-event "
KINDS = frozenset({"start", "progress", "checkpoint", "metrics", "error", "done"})


@dataclass(frozen=True)
class Event:
    """One event: its ``kind``, when it happened, and its kind-specific ``fields``."""

    kind: str
    time: float
    fields: dict[str, Any] = field(default_factory=dict)


def _body(kind: str, when: float | None, fields: dict[str, Any]) -> str:
    if kind not in KINDS:
        raise ValueError(f"event kind {kind!r} is not one of {sorted(KINDS)}")
    body = {"kind": kind, "time": time.time() if when is None else when, **fields}
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


def format_event(kind: str, when: float | None = None, **fields: Any) -> str:
    """The stdout line of an event (without a trailing newline)."""
    return PREFIX + _body(kind, when, fields)


def parse_line(line: str) -> Event | None:
    """The event carried by a stdout line, or None for ordinary log text or a damaged event."""
    start = line.find(PREFIX)
    if start < 0:
        return None
    return _parse_body(line[start + len(PREFIX) :])


def _parse_body(text: str) -> Event | None:
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(body, dict) or body.get("kind") not in KINDS:
        return None
    kind = body.pop("kind")
    when = body.pop("time", 0.0)
    return Event(kind=kind, time=float(when) if isinstance(when, int | float) else 0.0, fields=body)


def read_events(path: str | os.PathLike) -> list[Event]:
    """The events of an ``events.jsonl`` file (damaged lines, e.g. a torn last line, skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [event for event in map(_parse_body, lines) if event is not None]


class EventSink:
    """Prints events on stdout and, when ``jsonl`` is given, appends them to that file.

    Args:
        jsonl: ``<run.dir>/events.jsonl`` on global rank 0, None elsewhere.
        stream: where the prefixed lines go (stdout).
    """

    def __init__(self, jsonl: str | os.PathLike | None = None, stream: TextIO | None = None):
        self.jsonl = Path(jsonl) if jsonl is not None else None
        self.stream = stream

    def emit(self, kind: str, **fields: Any) -> None:
        """Print one event and append it to the jsonl file."""
        body = _body(kind, None, fields)
        stream = self.stream or sys.stdout
        stream.write(PREFIX + body + "\n")
        stream.flush()
        if self.jsonl is not None:
            self.jsonl.parent.mkdir(parents=True, exist_ok=True)
            # One short write in append mode per event: lines from a killed process stay whole.
            with self.jsonl.open("a", encoding="utf-8") as f:
                f.write(body + "\n")
