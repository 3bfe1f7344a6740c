"""Throughput mode: steps after warm-up, FPS as the reference scripts compute it."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import small_config, write_config


@pytest.mark.slow
def test_bench_reports_fps_the_reference_way(synthetic_root, tmp_path, run_bevdepth):
    run_dir = tmp_path / "run"
    config = small_config(run_dir, synthetic_root, bench={"warmup_steps": 1, "steps": 2})
    finished = run_bevdepth("bench", "--config", str(write_config(tmp_path / "c.json", config)))
    assert finished.returncode == 0, finished.stderr
    (metrics,) = finished.of("metrics")
    bench = json.loads((run_dir / "results.json").read_text())["bench"]
    assert metrics == {"stage": "bench", **bench}
    assert bench["steps"] == 2 and bench["world_size"] == 1 and bench["batch_per_device"] == 2
    assert bench["samples_per_s"] == pytest.approx(2 / bench["step_time_s"])
    assert bench["images_per_s"] == pytest.approx(bench["samples_per_s"] * 12)  # 2 frames x 6
    assert [p["step"] for p in finished.of("progress")] == [1, 2, 3]
    assert not (run_dir / "checkpoints").exists()
