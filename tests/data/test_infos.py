"""Info records: reference schema, split handling, reruns and clear errors."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from bevdepth.data.constants import CAMERAS
from bevdepth.data.infos import DatasetFileError, create_infos, info_path, load_infos

SENSOR_FIELDS = {"sample_token", "ego_pose", "timestamp", "filename", "calibrated_sensor"}
CAMERA_FIELDS = SENSOR_FIELDS | {"is_key_frame", "height", "width"}
ANNOTATION_FIELDS = {
    "token", "sample_token", "instance_token", "visibility_token", "attribute_tokens",
    "translation", "size", "rotation", "prev", "next", "num_lidar_pts", "num_radar_pts",
    "category_name", "velocity",
}  # fmt: skip


def test_train_infos_follow_the_reference_schema(synthetic_root, synthetic_config):
    infos = load_infos(synthetic_root, "train")
    assert len(infos) == synthetic_config.train_scenes * synthetic_config.samples_per_scene
    info = infos[1]
    assert set(info) == {
        "sample_token", "timestamp", "scene_token", "cam_infos", "lidar_infos", "cam_sweeps",
        "lidar_sweeps", "ann_infos",
    }  # fmt: skip
    assert set(info["cam_infos"]) == set(CAMERAS)
    for record in info["cam_infos"].values():
        assert set(record) == CAMERA_FIELDS
        assert record["is_key_frame"] and (record["height"], record["width"]) == (900, 1600)
        assert np.asarray(record["calibrated_sensor"]["camera_intrinsic"]).shape == (3, 3)
        assert len(record["ego_pose"]["rotation"]) == 4
    assert set(info["lidar_infos"]["LIDAR_TOP"]) == SENSOR_FIELDS
    assert info["ann_infos"] and all(set(a) == ANNOTATION_FIELDS for a in info["ann_infos"])
    assert all(np.asarray(a["velocity"]).shape == (3,) for a in info["ann_infos"])
    assert not any(np.isnan(a["velocity"]).any() for i in infos for a in i["ann_infos"])


def test_samples_are_in_scene_order_so_the_previous_index_is_the_previous_sample(synthetic_root):
    from nuscenes import NuScenes

    nusc = NuScenes("v1.0-mini", str(synthetic_root), verbose=False)
    infos = load_infos(synthetic_root, "train")
    for previous, current in itertools.pairwise(infos):
        sample = nusc.get("sample", current["sample_token"])
        if current["scene_token"] == previous["scene_token"]:
            assert sample["prev"] == previous["sample_token"]
        else:
            assert sample["prev"] == ""


def test_sweeps_are_the_non_key_frames_before_the_sample(synthetic_root, synthetic_config):
    infos = load_infos(synthetic_root, "train")
    assert infos[0]["cam_sweeps"] == [] and infos[0]["lidar_sweeps"] == []
    sweeps = infos[1]["cam_sweeps"]
    assert len(sweeps) == synthetic_config.sweeps_per_sample
    assert set(sweeps[0]) == set(CAMERAS)
    for camera in CAMERAS:
        sweep, key = sweeps[0][camera], infos[1]["cam_infos"][camera]
        assert not sweep["is_key_frame"] and sweep["filename"].startswith("sweeps/")
        assert infos[0]["cam_infos"][camera]["timestamp"] < sweep["timestamp"] < key["timestamp"]
        assert sweep["ego_pose"]["timestamp"] == sweep["timestamp"]  # its own pose, not the key's
    assert len(infos[1]["lidar_sweeps"]) == synthetic_config.sweeps_per_sample


def test_every_split_is_written_and_test_has_no_annotations(synthetic_root, synthetic_config):
    val = load_infos(synthetic_root, "val")
    test = load_infos(synthetic_root, "test")
    assert len(val) == synthetic_config.val_scenes * synthetic_config.samples_per_scene
    assert len(test) == synthetic_config.test_scenes * synthetic_config.samples_per_scene
    assert all("ann_infos" not in info for info in test)


def test_rerun_keeps_existing_files_and_overwrite_rebuilds(synthetic_root, tmp_path):
    prepared = tmp_path / "prepared"
    first = create_infos(synthetic_root, prepared)
    assert first.written == {"train": 8, "val": 4, "test": 4}
    stamp = info_path(prepared, "train").stat().st_mtime_ns
    again = create_infos(synthetic_root, prepared)
    assert again.written == {} and set(again.skipped) == {"train", "val", "test"}
    assert info_path(prepared, "train").stat().st_mtime_ns == stamp
    info_path(prepared, "val").unlink()
    assert create_infos(synthetic_root, prepared).written == {"val": 4}
    assert create_infos(synthetic_root, prepared, overwrite=True).written["train"] == 8


def test_missing_dataroot_and_info_files_name_the_path_and_the_fix(tmp_path):
    with pytest.raises(DatasetFileError, match=f"{tmp_path}: no nuScenes tables found"):
        create_infos(tmp_path)
    with pytest.raises(DatasetFileError, match=r"infos_train.pkl not found.*prepare infos"):
        load_infos(tmp_path, "train")
    info_path(tmp_path, "train").write_bytes(b"\x80\x05garbage")
    with pytest.raises(DatasetFileError, match="is corrupt"):
        load_infos(tmp_path, "train")
    info_path(tmp_path, "val").write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(DatasetFileError, match="not a list of sample dicts"):
        load_infos(tmp_path, "val")
