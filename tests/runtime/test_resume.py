"""A training process killed after a checkpoint resumes from it: same steps, same schedule."""

from __future__ import annotations

import signal

import pytest
import torch
from runtime_helpers import finish, small_config, start, write_config

from bevdepth.events import parse_line
from bevdepth.runtime.checkpoints import list_checkpoints

STEPS_PER_EPOCH = 4  # 8 training samples, batch 2, one rank


@pytest.mark.slow
def test_killed_run_resumes_from_its_newest_checkpoint(synthetic_root, tmp_path):
    run_dir = tmp_path / "run"
    config = small_config(run_dir, synthetic_root)
    path = write_config(tmp_path / "config.json", config)
    lr = 2 * config["training"]["lr_per_image"]

    first = start(["train", "--config", str(path)])
    for line in first.stdout:
        event = parse_line(line)
        if event is not None and event.kind == "checkpoint":
            first.send_signal(signal.SIGKILL)
            break
    first.communicate()
    assert first.returncode == -signal.SIGKILL
    checkpoints = run_dir / "checkpoints"
    assert [p.name for p in checkpoints.iterdir() if p.name.startswith(".")] == []
    resumed_step = list_checkpoints(checkpoints)[-1][0]
    assert resumed_step < 2 * STEPS_PER_EPOCH

    second = finish(start(["train", "--config", str(path)]))
    assert second.returncode == 0, second.stderr
    (started,) = second.of("start")
    assert started["resume_step"] == resumed_step
    progress = second.of("progress")
    assert [p["step"] for p in progress] == list(range(resumed_step + 1, 9))
    for p in progress:
        epoch = (p["step"] - 1) // STEPS_PER_EPOCH
        assert p["epoch"] == epoch
        assert p["lr"] == pytest.approx(lr * (0.1 if epoch >= 1 else 1.0))  # milestone [1]

    final = torch.load(checkpoints / "epoch=1-step=8.ckpt", weights_only=False)
    assert final["global_step"] == 8
    assert final["lr_schedulers"][0]["last_epoch"] == 2
    # Adam counts its own steps: restored state, not a fresh optimizer after the resume.
    adam_steps = {float(s["step"]) for s in final["optimizer_states"][0]["state"].values()}
    assert adam_steps == {8.0}
