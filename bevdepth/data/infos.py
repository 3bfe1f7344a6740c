"""Info records: one dict per key sample, the reference's ``nuscenes_infos_{split}.pkl`` schema.

Built with the nuScenes devkit from any dataroot (real ``v1.0-trainval``/``v1.0-test``,
``v1.0-mini``, or the synthetic generator's output), written once per split and atomically.
Loading a written split is a single ``pickle.load``.

One deliberate difference from the reference: camera sweeps carry their own ego pose and
calibration, where the reference copies the key frame's (a quirk of its info script; BEVDepth's
2-key configuration never reads sweeps).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bevdepth.atomic import atomic_path
from bevdepth.data.constants import CAMERAS, LIDAR
from bevdepth.data.hints import prepare_command

MAX_CAMERA_SWEEPS = 6
MAX_LIDAR_SWEEPS = 10
# Annotated version -> (devkit split name, our split name); test data has its own version.
_VERSION_SPLITS: dict[str, tuple[tuple[str, str], ...]] = {
    "v1.0-trainval": (("train", "train"), ("val", "val")),
    "v1.0-mini": (("mini_train", "train"), ("mini_val", "val")),
    "v1.0-test": (("test", "test"),),
}
SPLITS = ("train", "val", "test")


class DatasetFileError(FileNotFoundError):
    """A file the data pipeline needs is missing or unreadable; the message says how to fix it."""


def info_path(prepared_root: str | os.PathLike, split: str) -> Path:
    """Where the infos of ``split`` live."""
    return Path(prepared_root) / f"nuscenes_infos_{split}.pkl"


def find_versions(dataroot: str | os.PathLike) -> list[str]:
    """The nuScenes versions present under ``dataroot`` (trainval is preferred over mini)."""
    present = [v for v in _VERSION_SPLITS if (Path(dataroot) / v / "sample.json").is_file()]
    if "v1.0-trainval" in present and "v1.0-mini" in present:
        present.remove("v1.0-mini")
    return present


@dataclass(frozen=True)
class InfoSummary:
    """What ``create_infos`` did: samples per split written now, and splits already present."""

    written: dict[str, int]
    skipped: tuple[str, ...]


def create_infos(
    dataroot: str | os.PathLike,
    prepared_root: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> InfoSummary:
    """Write ``nuscenes_infos_{train,val,test}.pkl`` for every version found under ``dataroot``.

    Args:
        dataroot: nuScenes root (tables in ``<dataroot>/<version>/``).
        prepared_root: where to write (default: ``dataroot``; use another folder when the
            dataset is mounted read-only).
        overwrite: rebuild splits that already exist.
    """
    from nuscenes import NuScenes

    prepared_root = Path(prepared_root or dataroot)
    versions = find_versions(dataroot)
    if not versions:
        raise DatasetFileError(
            f"{dataroot}: no nuScenes tables found (expected e.g. {dataroot}/v1.0-trainval/"
            "sample.json); check the data root, or generate data with "
            "`python -m bevdepth prepare synthetic --root DIR`"
        )
    written: dict[str, int] = {}
    skipped: list[str] = []
    for version in versions:
        done = {
            split
            for _, split in _VERSION_SPLITS[version]
            if not overwrite and info_path(prepared_root, split).exists()
        }
        skipped += sorted(done)
        todo = [pair for pair in _VERSION_SPLITS[version] if pair[1] not in done]
        if not todo:
            continue
        nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
        for devkit_split, split in todo:
            infos = list(split_infos(nusc, devkit_split, with_annotations=split != "test"))
            with (
                atomic_path(info_path(prepared_root, split)) as temporary,
                open(temporary, "wb") as stream,
            ):
                pickle.dump(infos, stream, protocol=pickle.HIGHEST_PROTOCOL)
            written[split] = len(infos)
    return InfoSummary(written=written, skipped=tuple(skipped))


def load_info_file(path: Path | str, fix_command: str) -> list[dict[str, Any]]:
    """Load an info pickle (a list of per-sample dicts, reference ``gen_info`` schema).

    Unlike ``infos.load_infos`` this takes any path (``info_path=`` of the dataset) and checks
    that the records look like samples.

    Args:
        path: the ``.pkl`` file.
        fix_command: the command that creates it, for the error message.

    Raises:
        DatasetFileError: the file is missing, unreadable or not a list of sample dicts.
    """
    path = Path(path)
    fix = f"create it with `{fix_command}`"
    try:
        with path.open("rb") as f:
            infos = pickle.load(f)
    except FileNotFoundError as e:
        raise DatasetFileError(f"info file {path} not found; {fix}") from e
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as e:
        raise DatasetFileError(f"info file {path} is corrupt ({e}); re-{fix}") from e
    if not isinstance(infos, list) or not all(
        isinstance(info, dict) and "cam_infos" in info and "scene_token" in info for info in infos
    ):
        raise DatasetFileError(
            f"info file {path} is not a list of sample dicts with cam_infos; re-{fix}"
        )
    return infos


def load_infos(
    prepared_root: str | os.PathLike, split: str, dataroot: str | os.PathLike | None = None
) -> list[dict]:
    """Load the infos of ``split`` from ``prepared_root``; errors say how to create them."""
    command = prepare_command("infos", dataroot or prepared_root, prepared_root)
    return load_info_file(info_path(prepared_root, split), command)


def split_infos(nusc, devkit_split: str, with_annotations: bool) -> Iterator[dict]:
    """Info records of the scenes of ``devkit_split``, in table order, samples in time order."""
    from nuscenes.utils.splits import create_splits_scenes

    scene_names = set(create_splits_scenes()[devkit_split])
    for scene in nusc.scene:
        if scene["name"] not in scene_names:
            continue
        sample_token = scene["first_sample_token"]
        while sample_token:
            sample = nusc.get("sample", sample_token)
            yield sample_info(nusc, sample, with_annotations)
            sample_token = sample["next"]


def sample_info(nusc, sample: dict, with_annotations: bool) -> dict:
    """The info record of one key sample (reference schema)."""
    info = {
        "sample_token": sample["token"],
        "timestamp": sample["timestamp"],
        "scene_token": sample["scene_token"],
        "cam_infos": {},
        "lidar_infos": {},
        "cam_sweeps": [],
        "lidar_sweeps": [],
    }
    for camera in CAMERAS:
        key_data = nusc.get("sample_data", sample["data"][camera])
        info["cam_infos"][camera] = _sensor_info(nusc, key_data)
        for offset, sweep in enumerate(_sweeps(nusc, key_data, MAX_CAMERA_SWEEPS)):
            if offset == len(info["cam_sweeps"]):
                info["cam_sweeps"].append({})
            info["cam_sweeps"][offset][camera] = _sensor_info(nusc, sweep)
    lidar_data = nusc.get("sample_data", sample["data"][LIDAR])
    info["lidar_infos"][LIDAR] = _sensor_info(nusc, lidar_data)
    info["lidar_sweeps"] = [
        {LIDAR: _sensor_info(nusc, sweep)} for sweep in _sweeps(nusc, lidar_data, MAX_LIDAR_SWEEPS)
    ]
    if with_annotations:
        info["ann_infos"] = [_annotation_info(nusc, token) for token in sample["anns"]]
    return info


def _sensor_info(nusc, sample_data: dict) -> dict:
    record = {
        "sample_token": sample_data["sample_token"],
        "ego_pose": dict(nusc.get("ego_pose", sample_data["ego_pose_token"])),
        "timestamp": sample_data["timestamp"],
        "filename": sample_data["filename"],
        "calibrated_sensor": dict(
            nusc.get("calibrated_sensor", sample_data["calibrated_sensor_token"])
        ),
    }
    if sample_data["sensor_modality"] == "camera":
        record.update(
            is_key_frame=sample_data["is_key_frame"],
            height=sample_data["height"],
            width=sample_data["width"],
        )
    return record


def _sweeps(nusc, key_data: dict, limit: int) -> Iterator[dict]:
    """Up to ``limit`` non-key frames before ``key_data``, newest first."""
    token = key_data["prev"]
    for _ in range(limit):
        if not token:
            return
        sweep = nusc.get("sample_data", token)
        if sweep["is_key_frame"]:
            return
        yield sweep
        token = sweep["prev"]


def _annotation_info(nusc, token: str) -> dict:
    record = dict(nusc.get("sample_annotation", token))
    velocity = nusc.box_velocity(token)
    record["velocity"] = np.nan_to_num(velocity, nan=0.0)
    return record
