"""Formatting data for stdout: YAML/JSON documents and the rich tables of runs and results.

Pure functions returning strings or rich renderables; the CLI decides where they go.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from bevlaunch.backends.base import RunStatus

# The nuScenes detection metrics, in the order the devkit prints them.
METRICS = ("mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "NDS")


class OutputFormat(str, Enum):
    """How data is printed on stdout."""

    text = "text"
    json = "json"
    yaml = "yaml"


def dump_yaml(documents: Sequence[Any]) -> str:
    """Multi-document YAML in insertion order; multi-line strings as literal blocks."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def dump(data: Any, fmt: OutputFormat) -> str:
    """``data`` as JSON or YAML text (one document), ending in a newline."""
    if fmt is OutputFormat.yaml:
        return dump_yaml([data])
    return json.dumps(data, indent=2) + "\n"


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int | float):
        return f"{value:.{digits}f}"
    return str(value)


def duration(seconds: float | None) -> str:
    """``1h02m03s``, ``4m05s`` or ``6s``; ``-`` for None."""
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def metrics_table(results: Mapping[str, Any]) -> Table:
    """The metrics of a ``results.json`` (or of ``metrics`` events): detection, FPS, per class."""
    from rich.table import Table

    run = results.get("run")
    name = run.get("name") if isinstance(run, dict) else run  # the workload writes the name
    table = Table(title=f"results of {name or 'the run'}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    evaluation = results.get("eval") or {}
    metrics = evaluation.get("metrics") or {}
    for name in METRICS:
        if name in metrics:
            table.add_row(name, _number(metrics[name]))
    if "samples_per_s" in evaluation:
        table.add_row("eval samples/s", _number(evaluation["samples_per_s"], 2))
    for name, ap in sorted((evaluation.get("per_class_ap") or {}).items()):
        table.add_row(f"AP {name}", _number(ap))
    bench = results.get("bench") or {}
    for key, label in (
        ("samples_per_s", "train FPS (samples/s)"),
        ("images_per_s", "train images/s"),
        ("step_time_s", "step time (s)"),
    ):
        if key in bench:
            table.add_row(label, _number(bench[key], 3))
    return table


def runs_table(runs: Sequence[RunStatus], now: float | None = None) -> Table:
    """``bevlaunch list``: one row per run."""
    from rich.table import Table

    now = time.time() if now is None else now
    table = Table()
    for column in ("name", "state", "stage", "started", "duration", "location"):
        table.add_column(column)
    for run in runs:
        started = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started)) if run.started else "-"
        )
        elapsed = None if run.started is None else (run.ended or now) - run.started
        table.add_row(
            run.name, run.state.value, run.stage or "-", started, duration(elapsed), run.location
        )
    return table


def status_lines(status: RunStatus, now: float | None = None) -> list[str]:
    """``bevlaunch status NAME`` as text."""
    now = time.time() if now is None else now
    elapsed = None if status.started is None else (status.ended or now) - status.started
    lines = [
        f"run:      {status.name}",
        f"state:    {status.state.value}",
        f"stage:    {status.stage or '-'} (of {', '.join(status.stages) or '-'})",
        f"ranks:    {status.ranks}",
        *([f"progress: {status.progress}"] if status.progress else []),
        f"duration: {duration(elapsed)}",
        f"location: {status.location}",
    ]
    if status.diagnosis:
        lines.append(f"diagnosis: {status.diagnosis}")
    return lines
