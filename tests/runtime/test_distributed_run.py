"""Two ranks with gloo on CPU, started like the local backend starts them: train, then eval."""

from __future__ import annotations

import json

import pytest
import torch
from runtime_helpers import finish, free_port, rank_env, small_config, start, write_config

from bevdepth.events import read_events

METRICS = ("mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "NDS")


@pytest.mark.slow
def test_two_ranks_train_evaluate_and_write_results(synthetic_root, tmp_path):
    run_dir = tmp_path / "run"
    config = small_config(
        run_dir,
        synthetic_root,
        training={"batch_per_device": 1, "max_steps": 3, "checkpoint_every_steps": 2},
        eval={"batch_per_device": 1},
        resources={"devices_per_node": 2},
    )
    config["stages"] = ["prepare", "train", "eval"]
    path = write_config(tmp_path / "config.json", config)
    port = free_port()
    ranks = [start(["run", "--config", str(path)], rank_env(r, 2, port)) for r in range(2)]
    rank0, rank1 = (finish(process) for process in ranks)
    assert (rank0.returncode, rank1.returncode) == (0, 0), rank0.stderr + rank1.stderr

    assert rank1.events == []  # only rank 0 reports
    (train_start,) = [e for e in rank0.of("start") if e["stage"] == "train"]
    assert (train_start["world_size"], train_start["global_batch"]) == (2, 2)
    assert train_start["lr"] == pytest.approx(2 * config["training"]["lr_per_image"])
    assert [p["step"] for p in rank0.of("progress")] == [1, 2, 3]
    assert [c["step"] for c in rank0.of("checkpoint")] == [2, 3]
    assert [d["stage"] for d in rank0.of("done")] == ["prepare", "train", "eval", "all"]

    results = json.loads((run_dir / "results.json").read_text())
    evaluation = results["eval"]
    assert set(evaluation["metrics"]) == set(METRICS)
    assert all(0.0 <= evaluation["metrics"][name] <= 1.0 for name in METRICS if name != "mAVE")
    assert len(evaluation["per_class_ap"]) == 10 and len(evaluation["per_class_tp_errors"]) == 10
    assert evaluation["samples"] == 4 and evaluation["samples_per_s"] > 0
    assert evaluation["checkpoint"] == str(run_dir / "checkpoints" / "epoch=0-step=3.ckpt")
    assert evaluation["eval_set"] == "mini_val"
    assert results["config"]["resources"]["devices_per_node"] == 2
    (metrics,) = rank0.of("metrics")
    assert {name: metrics[name] for name in METRICS} == evaluation["metrics"]

    # Every rank's share of the evaluation reached rank 0: one entry per val sample.
    submission = json.loads((run_dir / "eval" / "results_nusc.json").read_text())
    assert len(submission["results"]) == 4
    stored = [e for e in read_events(run_dir / "events.jsonl")]
    assert [e.fields for e in stored] == [e.fields for e in rank0.events]
    assert (run_dir / "plots" / "losses.png").stat().st_size > 0
    assert (run_dir / "plots" / "per_class_ap.png").stat().st_size > 0
    checkpoint = torch.load(run_dir / "checkpoints" / "epoch=0-step=3.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 3
