"""The small preset overfits a few synthetic samples to a clearly non-zero mAP (minutes)."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import small_config, write_config

EPOCHS = 60


@pytest.mark.overfit
def test_small_preset_overfits_the_training_samples(synthetic_root, tmp_path, run_bevdepth):
    run_dir = tmp_path / "run"
    config = small_config(
        run_dir,
        synthetic_root,
        # A learning rate far above the reference's, decayed for the last epochs; scored on
        # the training samples themselves (the point is memorising them).
        training={
            "epochs": EPOCHS,
            "lr_per_image": 1e-3,
            "lr_milestones": [EPOCHS - 10],
            "checkpoint_every_steps": 1000,
            "precision": "32-true",
        },
        eval={"split": "train"},
    )
    finished = run_bevdepth("run", "--config", str(write_config(tmp_path / "c.json", config)))
    assert finished.returncode == 0, finished.stderr
    results = json.loads((run_dir / "results.json").read_text())["eval"]
    print(json.dumps(results["metrics"]), json.dumps(results["per_class_ap"]))
    assert results["metrics"]["mAP"] > 0.05
