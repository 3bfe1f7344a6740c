"""The local run directory: its layout and the supervisor's state file.

``<output path>/<run name>/`` holds what the run contract names (``config.json``, ``logs/``,
``events.jsonl``, ``results.json``, ...) plus two files of the local backend: ``plan.json`` (what
the supervisor runs) and ``state.json`` (what it is doing; only the supervisor writes it once it
runs, always atomically, so a reader never sees half a file).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
PLAN_FILE = "plan.json"
STATE_FILE = "state.json"
RESULTS_FILE = "results.json"
LOGS_DIR = "logs"
SUPERVISOR_LOG = "supervisor.log"  # in LOGS_DIR
STATE_SCHEMA = 1
_RANK_LOG = re.compile(r"^rank-(\d+)\.log$")


def rank_log(run_dir: Path, rank: int) -> Path:
    """``<run dir>/logs/rank-<N>.log``: everything rank N printed, over all stages."""
    return run_dir / LOGS_DIR / f"rank-{rank}.log"


def rank_logs(run_dir: Path) -> dict[int, Path]:
    """The rank logs that exist, by rank."""
    found = {}
    logs = run_dir / LOGS_DIR
    if logs.is_dir():
        for path in logs.iterdir():
            match = _RANK_LOG.match(path.name)
            if match:
                found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it does not exist or is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def new_state(name: str, stages: list[str], submitted: float) -> dict[str, Any]:
    """The state of a run that was submitted and whose supervisor has not started yet."""
    return {
        "schema": STATE_SCHEMA,
        "name": name,
        "state": "pending",
        "stage": None,
        "stages": stages,
        "ranks": 0,
        "submitted": submitted,
        "started": None,
        "ended": None,
        "supervisor_pid": None,
        "process_groups": [],
        "diagnosis": None,
        "last_lines": [],
    }
