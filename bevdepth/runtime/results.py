"""``<run.dir>/results.json``: the eval and bench sections of a run, written atomically.

Layout: ``{"schema": 1, "run": name, "config": {...resolved config...}, "eval": {...},
"bench": {...}}``; a stage replaces only its own section (see docs/RUNTIME.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bevdepth.atomic import write_text_atomic
from bevdepth.runtime.config import RunConfig

RESULTS_SCHEMA = 1


def results_path(config: RunConfig) -> Path:
    return config.run_dir / "results.json"


def update_results(config: RunConfig, section: str, payload: dict[str, Any]) -> Path:
    """Replace ``section`` (``eval`` or ``bench``) of results.json, keeping the other one."""
    path = results_path(config)
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        existing = {}
    document = {
        "schema": RESULTS_SCHEMA,
        "run": config.run.name,
        "config": config.to_dict(),
        **{key: existing[key] for key in ("eval", "bench") if key in existing},
        section: payload,
    }
    write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return path
