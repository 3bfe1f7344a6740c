"""Spec → run config (contract §1): the golden file and the resolved paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bevlaunch.errors import SpecError
from bevlaunch.resolve import resolve_config
from bevlaunch.spec import spec_from_dict

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((ROOT / "tests" / "contract" / "run_config.json").read_text())

# The spec the golden config resolves from (base directory /abs/path).
GOLDEN_SPEC = {
    "name": "quickstart",
    "backend": "local",
    "model": {"preset": "small"},
    "data": {"synthetic": {}, "image_mode": "fast", "num_workers": 2},
    "resources": {"accelerator": "cpu", "devices_per_node": 2},
}


def test_golden_run_config():
    config = resolve_config(spec_from_dict(GOLDEN_SPEC), base_dir="/abs/path")
    assert config == GOLDEN
    # Same JSON text modulo whitespace: key order matches the contract too.
    assert list(config) == list(GOLDEN)
    assert json.dumps(config) == json.dumps(GOLDEN)


def test_resolved_config_is_json_and_fully_resolved():
    config = resolve_config(spec_from_dict(GOLDEN_SPEC), base_dir="/abs/path")
    assert json.loads(json.dumps(config)) == config
    text = json.dumps(config)
    assert "$" not in text and "~" not in text


def test_local_paths_are_relative_to_the_base_dir():
    spec = spec_from_dict(
        {
            "name": "r",
            "data": {"path": "nuscenes", "prepared_root": "/p"},
            "output": {"path": "out"},
        }
    )
    config = resolve_config(spec, base_dir="/srv/project")
    assert config["run"]["dir"] == "/srv/project/out/r"
    assert config["data"]["root"] == "/srv/project/nuscenes"
    assert config["data"]["prepared_root"] == "/p"
    assert config["data"]["synthetic"] is None


def test_local_backend_needs_an_absolute_base_dir():
    with pytest.raises(SpecError):
        resolve_config(spec_from_dict(GOLDEN_SPEC))
    with pytest.raises(SpecError):
        resolve_config(spec_from_dict(GOLDEN_SPEC), base_dir="relative")


def test_kubernetes_paths_are_the_pod_mounts():
    spec = spec_from_dict(
        {
            "name": "k",
            "image": "bevdepth:1",
            "backend": "kubernetes",
            "data": {"pvc": {"claim": "nuscenes"}},
            "output": {"pvc": {"claim": "runs"}},
        }
    )
    config = resolve_config(spec)
    assert config["run"]["dir"] == "/mnt/output/runs/k"
    assert config["data"]["root"] == "/mnt/data"
    assert config["data"]["prepared_root"] == "/mnt/output/prepared"
    assert config["resources"] == {"accelerator": "npu", "nodes": 1, "devices_per_node": 8}


def test_eval_batch_follows_training_unless_set():
    spec = spec_from_dict({**GOLDEN_SPEC, "training": {"batch_per_device": 3}})
    assert resolve_config(spec, base_dir="/a")["eval"]["batch_per_device"] == 3
    spec = spec_from_dict({**GOLDEN_SPEC, "evaluation": {"batch_per_device": 5}})
    assert resolve_config(spec, base_dir="/a")["eval"]["batch_per_device"] == 5
