"""One process, no process group: ``run`` with train then eval, as a laptop user runs it."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import small_config, write_config

METRICS = ("mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "NDS")


@pytest.mark.slow
def test_single_process_trains_evaluates_and_writes_results(synthetic_root, tmp_path, run_bevdepth):
    run_dir = tmp_path / "run"
    config = small_config(
        run_dir,
        synthetic_root,
        training={"batch_per_device": 1, "max_steps": 3, "checkpoint_every_steps": 2},
        eval={"batch_per_device": 2},
    )
    path = write_config(tmp_path / "config.json", config)
    finished = run_bevdepth("run", "--config", str(path))
    assert finished.returncode == 0, finished.stderr

    (train_start,) = [e for e in finished.of("start") if e["stage"] == "train"]
    assert train_start["precision"] == "32-true"  # 16-mixed requested, downgraded on cpu
    assert "using 32-true" in finished.stdout
    assert (train_start["world_size"], train_start["resume_step"]) == (1, 0)
    assert train_start["lr"] == pytest.approx(config["training"]["lr_per_image"])
    progress = finished.of("progress")
    assert [p["step"] for p in progress] == [1, 2, 3]
    assert all(set(p["losses"]) == {"detection", "depth"} and p["loss"] > 0 for p in progress)
    assert [(c["step"], c["reason"]) for c in finished.of("checkpoint")] == [
        (2, "steps"),
        (3, "steps"),
    ]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "epoch=0-step=2.ckpt",
        "epoch=0-step=3.ckpt",
    ]

    results = json.loads((run_dir / "results.json").read_text())
    evaluation = results["eval"]
    assert set(evaluation["metrics"]) == set(METRICS)
    assert all(isinstance(evaluation["metrics"][name], float) for name in METRICS)
    assert len(evaluation["per_class_ap"]) == 10 and len(evaluation["per_class_tp_errors"]) == 10
    assert evaluation["checkpoint"] == str(run_dir / "checkpoints" / "epoch=0-step=3.ckpt")
    assert (evaluation["samples"], evaluation["eval_set"]) == (4, "mini_val")
    assert results["config"]["training"]["max_steps"] == 3
    (metrics,) = finished.of("metrics")
    assert {name: metrics[name] for name in METRICS} == evaluation["metrics"]
    assert [d["stage"] for d in finished.of("done")] == ["train", "eval", "all"]
    assert finished.of("error") == []
