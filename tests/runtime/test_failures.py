"""Failures a user can cause: an error event naming the cause, the contract's exit code, and
nothing half-written left behind."""

from __future__ import annotations

import signal

import pytest
import torch
from runtime_helpers import finish, small_config, start, write_config

from bevdepth.model import build_model


def _only_error(finished):
    (error,) = finished.of("error")
    assert finished.of("done")[-1] == {
        "stage": "all",
        "exit_code": error["exit_code"],
        "seconds": pytest.approx(finished.of("done")[-1]["seconds"]),
    }
    return error


def test_unknown_config_field_exits_2(tmp_path, run_bevdepth):
    config = small_config(tmp_path / "run", tmp_path)
    config["training"]["epoch"] = 3
    finished = run_bevdepth("train", "--config", str(write_config(tmp_path / "c.json", config)))
    assert finished.returncode == 2
    (error,) = finished.of("error")
    assert error["cause"] == "config" and "training.epoch: unknown field" in error["message"]


@pytest.mark.slow
def test_missing_data_root_exits_2_naming_it(tmp_path, run_bevdepth):
    missing = tmp_path / "no-such-dataset"
    config = small_config(tmp_path / "run", missing)
    finished = run_bevdepth("run", "--config", str(write_config(tmp_path / "c.json", config)))
    assert finished.returncode == 2
    error = _only_error(finished)
    assert (error["cause"], error["stage"], error["rank"]) == ("data", "train", 0)
    assert str(missing) in error["message"] and "prepare" in error["hint"]
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_nan_loss_exits_1_and_keeps_only_sound_checkpoints(synthetic_root, tmp_path, run_bevdepth):
    # An absurd learning rate makes the weights overflow after the first step.
    config = small_config(
        tmp_path / "run",
        synthetic_root,
        training={"lr_per_image": 1e30, "checkpoint_every_steps": 1, "max_steps": 4},
    )
    finished = run_bevdepth("train", "--config", str(write_config(tmp_path / "c.json", config)))
    assert finished.returncode == 1
    error = _only_error(finished)
    assert (error["cause"], error["stage"]) == ("nan_loss", "train")
    failing_step = int(error["message"].split("at step ")[1].split()[0])
    saved = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert saved and all(not p.name.startswith(".") for p in saved)  # no temporary files
    for path in saved:
        checkpoint = torch.load(path, weights_only=False)
        assert checkpoint["global_step"] < failing_step
        assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.slow
def test_checkpoint_that_does_not_fit_exits_2(synthetic_root, tmp_path, run_bevdepth):
    state = build_model("small").state_dict()
    state["head.shared_conv.0.weight"] = torch.zeros(3, 3, 3, 3)
    del state[next(iter(state))]
    torch.save({"state_dict": state}, tmp_path / "other.ckpt")
    config = small_config(
        tmp_path / "run", synthetic_root, model={"checkpoint": str(tmp_path / "other.ckpt")}
    )
    config["stages"] = ["eval"]
    finished = run_bevdepth("run", "--config", str(write_config(tmp_path / "c.json", config)))
    assert finished.returncode == 2
    error = _only_error(finished)
    assert (error["cause"], error["stage"]) == ("checkpoint", "eval")
    assert "other.ckpt does not match the model" in error["message"]
    assert "1 missing" in finished.stderr and "head.shared_conv.0.weight" in finished.stderr
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.slow
def test_sigterm_exits_130(synthetic_root, tmp_path):
    config = small_config(tmp_path / "run", synthetic_root)
    process = start(["train", "--config", str(write_config(tmp_path / "c.json", config))])
    for line in process.stdout:
        if '"kind":"progress"' in line:
            process.send_signal(signal.SIGTERM)
            break
    finished = finish(process)
    assert finished.returncode == 130
    (error,) = finished.of("error")
    assert (error["cause"], error["exit_code"]) == ("interrupted", 130)
