"""End to end: ``bevlaunch submit examples/quickstart.yaml`` with the real workload on CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bevlaunch.backends.base import RunState
from bevlaunch.backends.local import LocalBackend
from bevlaunch.cli import app
from bevlaunch.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 900


@pytest.mark.slow
def test_quickstart_trains_and_evaluates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BEVLAUNCH_WORKLOAD", raising=False)
    backend = LocalBackend("runs", base_dir=tmp_path)
    started = time.monotonic()
    backend.submit(load_spec(ROOT / "examples" / "quickstart.yaml"))
    status = backend.status("quickstart")
    while not status.state.finished and time.monotonic() - started < TIMEOUT_S:
        time.sleep(1.0)
        status = backend.status("quickstart")
    if not status.state.finished:
        backend.cancel("quickstart")
    assert status.state is RunState.SUCCEEDED, (status.diagnosis, status.last_lines)
    run_dir = tmp_path / "runs" / "quickstart"
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["eval"]["metrics"]) >= {"mAP", "NDS"}
    assert backend.results("quickstart") == results
    table = CliRunner().invoke(app, ["results", "quickstart"])
    assert table.exit_code == 0 and "NDS" in table.stdout, table.stderr
    lines = [line.text for line in backend.logs("quickstart")]
    assert any('"kind":"progress"' in line for line in lines)
    print(f"quickstart finished in {time.monotonic() - started:.0f} s")
