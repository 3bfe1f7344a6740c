"""Shared fixtures: one small synthetic nuScenes dataset, prepared once per test session."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# The Kubernetes tests run against kmock, which needs Python 3.11+ (a dev extra marked so);
# on 3.10, where only the workload runs in production, they are left out.
collect_ignore = ["kubernetes"] if importlib.util.find_spec("kmock") is None else []

# Small but complete: train, val and test scenes, one sweep between key frames.
TINY_SYNTHETIC = {
    "train_scenes": 2,
    "val_scenes": 1,
    "test_scenes": 1,
    "samples_per_scene": 4,
    "sweeps_per_sample": 1,
    "seed": 7,
}


@pytest.fixture(scope="session")
def synthetic_config():
    from bevdepth.data.synthetic import SyntheticConfig

    return SyntheticConfig(**TINY_SYNTHETIC)


@pytest.fixture(scope="session")
def synthetic_raw_root(tmp_path_factory, synthetic_config) -> Path:
    """A generated dataset (tables, images, lidar) without infos or depth files."""
    from bevdepth.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    return generate_dataset(root, synthetic_config, workers=2)


@pytest.fixture(scope="session")
def synthetic_root(synthetic_raw_root) -> Path:
    """The generated dataset with infos for every split and depth files for the train split."""
    from bevdepth.data.depth_gt import create_depth_gt
    from bevdepth.data.infos import create_infos

    create_infos(synthetic_raw_root)
    create_depth_gt(synthetic_raw_root, workers=2)
    return synthetic_raw_root
