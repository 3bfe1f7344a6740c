"""The synthetic dataset: loads in the real devkit, links are valid, pixels and points agree."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from nuscenes import NuScenes
from PIL import Image

from bevdepth.data.depth_gt import lidar_to_camera, project_points, read_lidar_points
from bevdepth.data.infos import load_infos
from bevdepth.data.poses import invert_transform
from bevdepth.data.synthetic import (
    build_worlds,
    scene_captures,
    token,
)
from bevdepth.data.synthetic_render import cast_lidar, render_camera
from bevdepth.data.synthetic_rig import CAMERA_CHANNELS, LIDAR_TO_EGO, camera_rays

TABLES = (
    "category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose",
    "log", "scene", "sample", "sample_data", "sample_annotation", "map",
)  # fmt: skip


@pytest.fixture(scope="module")
def nusc(synthetic_raw_root) -> NuScenes:
    return NuScenes(version="v1.0-mini", dataroot=str(synthetic_raw_root), verbose=False)


def test_every_table_is_written_and_loads_in_the_devkit(synthetic_raw_root, synthetic_config):
    for version in ("v1.0-mini", "v1.0-test"):
        assert sorted(p.stem for p in (synthetic_raw_root / version).glob("*.json")) == sorted(
            TABLES
        )
        NuScenes(version=version, dataroot=str(synthetic_raw_root), verbose=False)
    test = NuScenes(version="v1.0-test", dataroot=str(synthetic_raw_root), verbose=False)
    assert len(test.scene) == synthetic_config.test_scenes
    assert test.sample_annotation == []


def test_scene_names_come_from_the_official_splits(nusc, synthetic_config):
    from nuscenes.utils.splits import create_splits_scenes

    splits = create_splits_scenes()
    names = [scene["name"] for scene in nusc.scene]
    assert names[: synthetic_config.train_scenes] == splits["mini_train"][:2]
    assert names[synthetic_config.train_scenes :] == splits["mini_val"][:1]


def _assert_chain(records: list[dict], first: str, last: str, by_token: dict) -> None:
    assert records[0]["token"] == first and records[-1]["token"] == last
    assert records[0]["prev"] == "" and records[-1]["next"] == ""
    for earlier, later in itertools.pairwise(records):
        assert earlier["next"] == later["token"] and later["prev"] == earlier["token"]
    for record in records:
        for link in (record["prev"], record["next"]):
            assert link == "" or link in by_token


def test_links_and_chains_are_consistent(nusc, synthetic_config, synthetic_raw_root):
    samples = {s["token"]: s for s in nusc.sample}
    for scene in nusc.scene:
        chain = [s for s in nusc.sample if s["scene_token"] == scene["token"]]
        assert len(chain) == scene["nbr_samples"] == synthetic_config.samples_per_scene
        _assert_chain(chain, scene["first_sample_token"], scene["last_sample_token"], samples)
        assert [s["timestamp"] for s in chain] == sorted(s["timestamp"] for s in chain)
    for sample in nusc.sample:
        assert set(sample["data"]) == {*CAMERA_CHANNELS, "LIDAR_TOP"}
    by_token = {d["token"]: d for d in nusc.sample_data}
    for record in nusc.sample_data:
        assert record["sample_token"] in samples
        nusc.get("ego_pose", record["ego_pose_token"])
        file = synthetic_raw_root / record["filename"]
        assert file.is_file(), file
        folder = "samples" if record["is_key_frame"] else "sweeps"
        assert record["filename"].startswith(f"{folder}/{record['channel']}/")
        for link in (record["prev"], record["next"]):
            assert link == "" or by_token[link]["channel"] == record["channel"]
    sweeps = [d for d in nusc.sample_data if not d["is_key_frame"]]
    per_sensor = (synthetic_config.samples_per_scene - 1) * synthetic_config.sweeps_per_sample
    assert len(sweeps) == 3 * 7 * per_sensor
    annotations = {a["token"]: a for a in nusc.sample_annotation}
    for instance in nusc.instance:
        chain = [a for a in nusc.sample_annotation if a["instance_token"] == instance["token"]]
        assert len(chain) == instance["nbr_annotations"]
        _assert_chain(
            chain, instance["first_annotation_token"], instance["last_annotation_token"],
            annotations,
        )  # fmt: skip


def test_sensor_files_have_the_nuscenes_formats(nusc, synthetic_raw_root):
    camera_record = nusc.get("sample_data", nusc.sample[0]["data"]["CAM_FRONT"])
    with Image.open(synthetic_raw_root / camera_record["filename"]) as image:
        assert image.format == "JPEG" and image.size == (1600, 900) and image.mode == "RGB"
    lidar_record = nusc.get("sample_data", nusc.sample[0]["data"]["LIDAR_TOP"])
    points = read_lidar_points(synthetic_raw_root / lidar_record["filename"])
    assert points.shape[1] == 5 and len(points) > 10_000
    assert set(np.unique(points[:, 4])) <= set(range(32))  # ring index


def test_annotations_cover_the_detection_classes_with_attributes(nusc):
    from nuscenes.eval.detection.utils import category_to_detection_name

    names = {category_to_detection_name(a["category_name"]) for a in nusc.sample_annotation}
    assert {"car", "pedestrian", "barrier", "traffic_cone"} <= names
    assert None in names  # ignored categories are present too, as in real data
    assert {a["visibility_token"] for a in nusc.sample_annotation} <= {"1", "2", "3", "4"}
    assert all(len(a["attribute_tokens"]) <= 1 for a in nusc.sample_annotation)
    with_points = [a for a in nusc.sample_annotation if a["num_lidar_pts"] > 0]
    assert len(with_points) > len(nusc.sample_annotation) / 2


def test_ego_moves_and_camera_poses_differ_from_the_lidar_pose(nusc):
    first, last = nusc.sample[0], nusc.sample[nusc.scene[0]["nbr_samples"] - 1]
    lidar_pose = nusc.get("ego_pose", nusc.get("sample_data", first["data"]["LIDAR_TOP"])["token"])
    later_pose = nusc.get("ego_pose", nusc.get("sample_data", last["data"]["LIDAR_TOP"])["token"])
    front = nusc.get("ego_pose", nusc.get("sample_data", first["data"]["CAM_BACK"])["token"])
    assert lidar_pose["translation"] != later_pose["translation"]
    assert front["timestamp"] > lidar_pose["timestamp"]


def test_devkit_velocity_matches_the_world(nusc, synthetic_config):
    worlds = build_worlds(synthetic_config)
    checked = 0
    for scene in worlds[: synthetic_config.train_scenes]:
        for index, obj in enumerate(scene.objects):
            instance_token = token(synthetic_config.seed, "instance", scene.index, index)
            try:
                instance = nusc.get("instance", instance_token)
            except KeyError:
                continue  # never within annotation range
            if instance["nbr_annotations"] < 2:
                continue
            velocity = nusc.box_velocity(instance["first_annotation_token"])
            np.testing.assert_allclose(velocity[:2], obj.velocity()[:2], atol=0.05)
            checked += 1
    assert checked > 10


def test_devkit_evaluation_scores_ground_truth_perfectly(synthetic_raw_root):
    from bevdepth.data.check import score_ground_truth

    metrics = score_ground_truth(synthetic_raw_root, "v1.0-mini")
    present = {name: ap for name, ap in metrics["mean_dist_aps"].items() if ap > 0}
    assert len(present) >= 3
    assert all(ap == pytest.approx(1.0) for ap in present.values())
    for name in present:
        errors = metrics["label_tp_errors"][name]
        assert errors["trans_err"] == pytest.approx(0.0, abs=1e-6)
        assert errors["vel_err"] == pytest.approx(0.0, abs=1e-6) or np.isnan(errors["vel_err"])


def test_lidar_points_on_a_box_project_onto_that_box_at_the_right_depth(
    synthetic_raw_root, synthetic_config
):
    """Rebuild one capture in memory and compare the files with the renderer's buffers."""
    from bevdepth.data.synthetic import _capture_job

    scene = build_worlds(synthetic_config)[0]
    capture = next(c for c in scene_captures(scene, synthetic_config) if c.key)
    job, _ = _capture_job(Path(synthetic_raw_root), synthetic_config, scene, capture)
    sweep = cast_lidar(LIDAR_TO_EGO, job.lidar_pose, job.boxes.transformed(
        invert_transform(job.lidar_pose)))  # fmt: skip
    on_disk = read_lidar_points(synthetic_raw_root / job.lidar_file)
    np.testing.assert_array_equal(on_disk, sweep.points)

    info = load_infos_or_build(synthetic_raw_root)[0]
    assert info["lidar_infos"]["LIDAR_TOP"]["filename"] == job.lidar_file
    matched = checked = 0
    for channel, pose in zip(CAMERA_CHANNELS, job.camera_poses, strict=True):
        record = info["cam_infos"][channel]
        render = render_camera(camera_rays(channel), pose,
                               job.boxes.transformed(invert_transform(pose)))  # fmt: skip
        with Image.open(synthetic_raw_root / record["filename"]) as image:
            decoded = np.asarray(image, dtype=np.float32)
        assert np.abs(decoded - render.image).mean() < 3.0  # the file is this render (JPEG)

        on_box = sweep.box_ids >= 0
        rows, kept = project_points(
            sweep.points[on_box], lidar_to_camera(info["lidar_infos"]["LIDAR_TOP"], record),
            np.asarray(record["calibrated_sensor"]["camera_intrinsic"]), 1600, 900,
        )  # fmt: skip
        ids = sweep.box_ids[on_box][kept]
        u, v = rows[:, 0].astype(int), rows[:, 1].astype(int)
        same_box = render.box_ids[v, u] == ids
        checked += len(ids)
        matched += int(same_box.sum())
        depth_error = np.abs(render.depth[v, u] - rows[:, 2])[same_box]
        assert np.all(depth_error < 0.05 + 0.02 * rows[same_box, 2])
    assert checked > 200
    # The lidar sits above and behind most cameras: a few points it sees are hidden from them.
    assert matched / checked > 0.9


def load_infos_or_build(root: Path) -> list[dict]:
    from bevdepth.data.infos import create_infos

    create_infos(root)
    return load_infos(root, "train")
