"""Depth ground truth: key-frame lidar points projected into each key camera.

For every key sample and camera this writes ``depth_gt/<image basename>.bin``: float32 rows
(u, v, depth) with (u, v) in original-image pixels and depth the camera-frame z in metres, the
format the reference's Ascend recipe reads. The projection goes lidar -> ego (lidar time) ->
global -> ego (camera time) -> camera, and keeps points in front of the camera that fall
strictly inside the image's one-pixel border (as the reference does).

Samples are processed in parallel worker processes. Each file is written atomically and
existing files are skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bevdepth.atomic import write_bytes_atomic
from bevdepth.data.constants import CAMERAS, LIDAR
from bevdepth.data.infos import DatasetFileError, load_infos
from bevdepth.data.poses import invert_transform, pose_to_matrix

DEPTH_DIR = "depth_gt"


def depth_file(prepared_root: str | os.PathLike, image_filename: str) -> Path:
    """The depth file of a camera image (``image_filename`` as stored in the infos)."""
    return Path(prepared_root) / DEPTH_DIR / f"{os.path.basename(image_filename)}.bin"


def read_lidar_points(path: str | os.PathLike) -> np.ndarray:
    """(P, 5) float32 x, y, z, intensity, ring of a nuScenes ``.pcd.bin`` file."""
    try:
        raw = np.fromfile(path, dtype=np.float32)
    except OSError as error:
        raise DatasetFileError(f"{path}: cannot read lidar points ({error})") from error
    if raw.size % 5:
        raise DatasetFileError(f"{path}: size is not a multiple of 5 float32 values")
    return raw.reshape(-1, 5)


def lidar_to_camera(lidar: dict, camera: dict) -> np.ndarray:
    """4x4 transform from the lidar frame to the camera frame, through the global frame."""
    lidar2global = pose_to_matrix(lidar["ego_pose"]) @ pose_to_matrix(lidar["calibrated_sensor"])
    camera2global = pose_to_matrix(camera["ego_pose"]) @ pose_to_matrix(camera["calibrated_sensor"])
    return invert_transform(camera2global) @ lidar2global


def project_points(
    points: np.ndarray, lidar2camera: np.ndarray, intrinsic: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Project lidar ``points`` (P, >=3) into an image.

    Returns (K, 3) float32 rows (u, v, depth) of the points visible in the image, in input
    order, and the (P,) mask of those points.
    """
    xyz = points[:, :3].astype(np.float64) @ lidar2camera[:3, :3].T + lidar2camera[:3, 3]
    depth = xyz[:, 2]
    in_front = depth > 0
    uv = np.full((len(xyz), 2), -1.0)
    uv[in_front] = (xyz[in_front] @ np.asarray(intrinsic).T)[:, :2] / depth[in_front, None]
    keep = (
        in_front
        & (uv[:, 0] > 1)
        & (uv[:, 0] < width - 1)
        & (uv[:, 1] > 1)
        & (uv[:, 1] < height - 1)
    )
    return np.concatenate([uv[keep], depth[keep, None]], axis=1).astype(np.float32), keep


def sample_depth(dataroot: str | os.PathLike, info: dict) -> dict[str, np.ndarray]:
    """Depth rows per camera of one info record (no file writes)."""
    lidar = info["lidar_infos"][LIDAR]
    points = read_lidar_points(Path(dataroot) / lidar["filename"])
    rows = {}
    for camera in CAMERAS:
        record = info["cam_infos"][camera]
        rows[camera], _ = project_points(
            points,
            lidar_to_camera(lidar, record),
            np.asarray(record["calibrated_sensor"]["camera_intrinsic"]),
            record["width"],
            record["height"],
        )
    return rows


@dataclass(frozen=True)
class _SampleJob:
    dataroot: str
    prepared_root: str
    info: dict


def _process_sample(job: _SampleJob) -> bool:
    """Write the missing depth files of one sample; False when none was missing."""
    targets = {
        camera: depth_file(job.prepared_root, job.info["cam_infos"][camera]["filename"])
        for camera in CAMERAS
    }
    missing = [camera for camera, path in targets.items() if not path.exists()]
    if not missing:
        return False
    rows = sample_depth(job.dataroot, job.info)
    for camera in missing:
        write_bytes_atomic(targets[camera], rows[camera].tobytes())
    return True


@dataclass(frozen=True)
class DepthSummary:
    """What ``create_depth_gt`` did."""

    samples: int
    written: int
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def create_depth_gt(
    dataroot: str | os.PathLike,
    prepared_root: str | os.PathLike | None = None,
    splits: Sequence[str] = ("train",),
    workers: int | None = None,
) -> DepthSummary:
    """Write depth files for every key sample of ``splits`` (infos must exist).

    Only the train split is needed for training (the reference does the same); pass more
    splits to inspect depth elsewhere.
    """
    prepared_root = Path(prepared_root or dataroot)
    infos = [info for split in splits for info in load_infos(prepared_root, split, dataroot)]
    jobs = [_SampleJob(str(dataroot), str(prepared_root), info) for info in infos]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 16)
    start = time.perf_counter()
    written = sum(_run(jobs, workers))
    return DepthSummary(samples=len(jobs), written=written, seconds=time.perf_counter() - start)


def _run(jobs: Sequence[_SampleJob], workers: int) -> Iterable[bool]:
    if workers <= 1 or len(jobs) <= 1:
        return [_process_sample(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_process_sample, jobs, chunksize=4))
