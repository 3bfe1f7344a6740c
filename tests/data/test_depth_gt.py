"""Depth ground truth: agrees with the devkit's own projection, resumable, atomic."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bevdepth.atomic import atomic_path
from bevdepth.data.constants import CAMERAS
from bevdepth.data.depth_gt import create_depth_gt, depth_file
from bevdepth.data.infos import DatasetFileError, create_infos, load_infos


def read_depth(path) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32).reshape(-1, 3)


def test_depth_files_match_the_devkit_projection(synthetic_root):
    from nuscenes import NuScenes

    nusc = NuScenes("v1.0-mini", str(synthetic_root), verbose=False)
    info = load_infos(synthetic_root, "train")[2]
    sample = nusc.get("sample", info["sample_token"])
    compared = 0
    for camera in CAMERAS:
        rows = read_depth(depth_file(synthetic_root, info["cam_infos"][camera]["filename"]))
        points, depths, _ = nusc.explorer.map_pointcloud_to_image(
            sample["data"]["LIDAR_TOP"], sample["data"][camera], min_dist=0.0
        )
        expected = np.stack([points[0], points[1], depths], axis=1)
        np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=5e-3)  # float32 rounding only
        compared += len(rows)
    assert compared > 1000


def test_every_train_key_camera_has_a_depth_file_with_sane_rows(synthetic_root):
    for info in load_infos(synthetic_root, "train"):
        for camera in CAMERAS:
            rows = read_depth(depth_file(synthetic_root, info["cam_infos"][camera]["filename"]))
            assert len(rows) > 0
            assert np.all((rows[:, 0] > 1) & (rows[:, 0] < 1599))
            assert np.all((rows[:, 1] > 1) & (rows[:, 1] < 899))
            assert np.all((rows[:, 2] > 0) & (rows[:, 2] < 80))


def test_rerun_skips_finished_samples_and_redoes_missing_ones(synthetic_root, tmp_path):
    prepared = tmp_path / "prepared"
    create_infos(synthetic_root, prepared)
    first = create_depth_gt(synthetic_root, prepared, workers=2)
    assert first.samples == first.written == 8
    files = sorted((prepared / "depth_gt").iterdir())
    stamps = {path: path.stat().st_mtime_ns for path in files}
    files[0].unlink()
    again = create_depth_gt(synthetic_root, prepared, workers=1)
    assert again.written == 1
    assert all(path.stat().st_mtime_ns == stamps[path] for path in files[1:])
    assert not list((prepared / "depth_gt").glob(".*.tmp"))


def test_parallel_and_serial_runs_write_identical_files(synthetic_root, tmp_path):
    for name, workers in (("serial", 1), ("parallel", 2)):
        create_infos(synthetic_root, tmp_path / name)
        create_depth_gt(synthetic_root, tmp_path / name, workers=workers)
    serial = sorted((tmp_path / "serial" / "depth_gt").iterdir())
    for path in serial:
        assert path.read_bytes() == (tmp_path / "parallel" / "depth_gt" / path.name).read_bytes()


def test_missing_lidar_file_and_missing_infos_are_named(synthetic_root, tmp_path):
    with pytest.raises(DatasetFileError, match="prepare infos"):
        create_depth_gt(synthetic_root, tmp_path, workers=1)
    create_infos(synthetic_root, tmp_path)
    empty_root = tmp_path / "no-data"
    empty_root.mkdir()
    with pytest.raises(DatasetFileError, match=r"LIDAR_TOP.*\.pcd\.bin"):
        create_depth_gt(empty_root, tmp_path, workers=1)


def test_a_failed_write_leaves_neither_the_target_nor_a_temporary(tmp_path):
    target = tmp_path / "depth.bin"

    def write_then_die() -> None:
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_then_die()
    assert not target.exists()
    assert os.listdir(tmp_path) == []
