"""Helpers of the runtime tests: run configs over the session's synthetic dataset, and running
``python -m bevdepth`` the way the local backend does (one process per rank, torchrun-style env).

Imported by the test modules as ``runtime_helpers`` (pytest puts this folder on sys.path; the
tests folders are not packages, so ``tests.runtime.conftest`` is not importable).
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bevdepth.events import Event, parse_line

GOLDEN = Path(__file__).resolve().parents[1] / "contract" / "run_config.json"
# Collectives give up quickly in tests, so a broken run fails instead of hanging.
TEST_ENV = {"BEVDEPTH_COLLECTIVE_TIMEOUT_S": "60", "PYTHONUNBUFFERED": "1"}


def small_config(run_dir: Path, data_root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """The golden config made small: small preset, CPU, one device, no workers, few steps.

    ``sections`` update the named sections, e.g. ``training={"max_steps": 2}``.
    """
    config = copy.deepcopy(json.loads(GOLDEN.read_text()))
    config["run"] = {"name": run_dir.name, "dir": str(run_dir)}
    config["stages"] = ["train", "eval"]
    config["data"].update(root=str(data_root), synthetic=None, num_workers=0)
    config["model"]["preset"] = "small"
    config["training"].update(
        epochs=2,
        batch_per_device=2,
        lr_milestones=[1],
        checkpoint_every_steps=3,
        keep_checkpoints=2,
        max_steps=None,
    )
    config["eval"]["batch_per_device"] = 2
    config["bench"].update(warmup_steps=1, steps=2)
    config["resources"].update(accelerator="cpu", nodes=1, devices_per_node=1)
    for name, values in sections.items():
        config[name].update(values)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` as JSON to ``path`` and return the path."""
    path.write_text(json.dumps(config, indent=1))
    return path


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@dataclass
class Finished:
    """One finished rank: exit code, stdout text and the events in it."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[Event]:
        return [e for e in map(parse_line, self.stdout.splitlines()) if e is not None]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e.fields for e in self.events if e.kind == kind]


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """torchrun-style variables of one rank on a single node (what the local backend sets)."""
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(rank),
        "LOCAL_WORLD_SIZE": str(world),
        "NODE_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m bevdepth ARGS`` with stdout captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "bevdepth", *args],
        env={**os.environ, **TEST_ENV, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> Finished:
    """Wait for ``process`` and collect its output."""
    stdout, stderr = process.communicate(timeout=timeout)
    return Finished(process.returncode, stdout, stderr)
