"""A synthetic dataset in the nuScenes v1.0 format, consistent enough to learn from.

Each scene is a level ego vehicle driving a gentle arc over a checkered ground, among upright
boxes of the ten detection classes (and a few ignored categories). Objects move at constant
velocity; the world is frozen for the instant of one capture (lidar sweep plus six camera images),
while the ego keeps moving between the sensors' trigger times as on the real car. Images and lidar
are ray-cast from the same geometry (``synthetic_render``), so annotations, pixels and points agree.

The output loads unchanged in ``nuscenes.NuScenes``: all 13 tables, scene names from the official
split lists (``mini_train``/``mini_val`` or ``train``/``val``, plus ``test``), prev/next chains,
1600x900 JPEG images and float32 x5 ``.pcd.bin`` point clouds. Everything is a pure function of
the configuration and the seed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from bevdepth.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from bevdepth.data.constants import IMAGE_HEIGHT, IMAGE_WIDTH, LIDAR
from bevdepth.data.poses import (
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    rotation_z,
    yaw_to_quaternion,
)
from bevdepth.data.synthetic_render import Boxes, cast_lidar, render_camera
from bevdepth.data.synthetic_rig import (
    CAMERA_CHANNELS,
    CAMERA_TIME_OFFSETS_US,
    LIDAR_TO_EGO,
    camera,
    camera_rays,
)

MARKER_FILE = "synthetic.json"
IN_PROGRESS_FILE = ".synthetic-in-progress.json"
KEY_INTERVAL_S = 0.5  # nuScenes annotates key samples at 2 Hz
ANNOTATION_RANGE_M = 60.0
RENDER_RANGE_M = 90.0
_FIRST_TIMESTAMP_US = 1_531_883_530_000_000
_LOCATIONS = (
    "singapore-onenorth",
    "boston-seaport",
    "singapore-queenstown",
    "singapore-hollandvillage",
)

Flavour = Literal["mini", "trainval"]
_SPLIT_SCENES: dict[str, tuple[str, str]] = {
    "mini": ("mini_train", "mini_val"),
    "trainval": ("train", "val"),
}


@dataclass(frozen=True)
class ObjectKind:
    """How a category looks and moves: size (w, l, h) in metres, RGB colour, lidar intensity,
    frequency weight, probability of moving and speed range in m/s."""

    category: str
    size: tuple[float, float, float]
    color: tuple[int, int, int]
    intensity: float
    weight: float
    moving_probability: float = 0.0
    speed: tuple[float, float] = (0.0, 0.0)


# Sizes are nuScenes class means; colours are distinct per detection class.
OBJECT_KINDS: tuple[ObjectKind, ...] = (
    ObjectKind("vehicle.car", (1.95, 4.62, 1.73), (200, 40, 40), 40.0, 0.32, 0.5, (2.0, 10.0)),
    ObjectKind("vehicle.truck", (2.51, 6.93, 2.84), (230, 130, 30), 45.0, 0.07, 0.4, (2.0, 8.0)),
    ObjectKind(
        "vehicle.construction", (2.85, 6.37, 3.19), (225, 205, 40), 50.0, 0.03, 0.1, (0.5, 2.0)
    ),
    ObjectKind(
        "vehicle.bus.rigid", (2.94, 11.19, 3.47), (40, 80, 210), 55.0, 0.03, 0.5, (2.0, 8.0)
    ),
    ObjectKind("vehicle.trailer", (2.90, 12.28, 3.87), (130, 60, 170), 50.0, 0.03, 0.2, (1.0, 5.0)),
    ObjectKind("movable_object.barrier", (2.53, 0.50, 0.98), (235, 235, 235), 70.0, 0.10),
    ObjectKind(
        "vehicle.motorcycle", (0.77, 2.11, 1.47), (30, 200, 210), 35.0, 0.04, 0.6, (2.0, 8.0)
    ),
    ObjectKind("vehicle.bicycle", (0.60, 1.70, 1.28), (60, 190, 70), 30.0, 0.04, 0.6, (1.0, 5.0)),
    ObjectKind(
        "human.pedestrian.adult", (0.67, 0.73, 1.77), (210, 70, 200), 25.0, 0.15, 0.7, (0.5, 1.6)
    ),
    ObjectKind(
        "human.pedestrian.child", (0.51, 0.53, 1.38), (210, 70, 200), 25.0, 0.02, 0.7, (0.5, 1.4)
    ),
    ObjectKind("movable_object.trafficcone", (0.41, 0.41, 1.07), (250, 100, 20), 80.0, 0.08),
    ObjectKind("animal", (0.36, 0.73, 0.51), (120, 90, 60), 20.0, 0.02, 0.5, (0.5, 2.0)),
    ObjectKind("movable_object.debris", (0.70, 0.90, 0.45), (110, 110, 110), 20.0, 0.02),
)

# Every nuScenes v1.0 category (the table lists them all, used or not).
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("animal", "All animals."),
    ("human.pedestrian.adult", "Adult walking, standing or sitting."),
    ("human.pedestrian.child", "Child walking, standing or sitting."),
    ("human.pedestrian.construction_worker", "Person working on a construction site."),
    ("human.pedestrian.personal_mobility", "Person on a scooter, skateboard or similar."),
    ("human.pedestrian.police_officer", "Police officer."),
    ("human.pedestrian.stroller", "Stroller."),
    ("human.pedestrian.wheelchair", "Wheelchair."),
    ("movable_object.barrier", "Temporary road barrier."),
    ("movable_object.debris", "Debris or movable object left on the road."),
    ("movable_object.pushable_pullable", "Object a pedestrian pushes or pulls."),
    ("movable_object.trafficcone", "Traffic cone."),
    ("static_object.bicycle_rack", "Area where bicycles are parked."),
    ("vehicle.bicycle", "Bicycle."),
    ("vehicle.bus.bendy", "Articulated bus."),
    ("vehicle.bus.rigid", "Rigid bus."),
    ("vehicle.car", "Passenger car, van or SUV."),
    ("vehicle.construction", "Construction vehicle."),
    ("vehicle.emergency.ambulance", "Ambulance."),
    ("vehicle.emergency.police", "Police vehicle."),
    ("vehicle.motorcycle", "Motorcycle or scooter."),
    ("vehicle.trailer", "Trailer."),
    ("vehicle.truck", "Truck."),
)
ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("vehicle.moving", "Vehicle is moving."),
    ("vehicle.stopped", "Vehicle is stationary but about to move (e.g. at a light)."),
    ("vehicle.parked", "Vehicle is parked."),
    ("cycle.with_rider", "There is a rider on the cycle."),
    ("cycle.without_rider", "There is no rider on the cycle."),
    ("pedestrian.sitting_lying_down", "The pedestrian is sitting or lying down."),
    ("pedestrian.standing", "The pedestrian is standing."),
    ("pedestrian.moving", "The pedestrian is moving."),
)
# (token, level, description); visibility is the visible fraction over all six images.
VISIBILITIES: tuple[tuple[str, str, str], ...] = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of a synthetic dataset.

    ``flavour`` picks the annotated version (``v1.0-mini``: at most 8 train and 2 val scenes;
    ``v1.0-trainval``: at most 700 and 150). ``test_scenes`` > 0 also writes ``v1.0-test``
    (no annotations), as the real dataset ships it.
    """

    flavour: Flavour = "mini"
    train_scenes: int = 2
    val_scenes: int = 1
    test_scenes: int = 0
    samples_per_scene: int = 6
    sweeps_per_sample: int = 0
    seed: int = 0
    jpeg_quality: int = 90

    @property
    def version(self) -> str:
        return f"v1.0-{self.flavour}"

    def validate(self) -> None:
        """Raise ValueError naming the field that is out of range."""
        from nuscenes.utils.splits import create_splits_scenes

        if self.flavour not in _SPLIT_SCENES:
            raise ValueError(f"flavour: {self.flavour!r} is not one of {sorted(_SPLIT_SCENES)}")
        splits = create_splits_scenes()
        train_split, val_split = _SPLIT_SCENES[self.flavour]
        limits = {
            "train_scenes": (self.train_scenes, len(splits[train_split])),
            "val_scenes": (self.val_scenes, len(splits[val_split])),
            "test_scenes": (self.test_scenes, len(splits["test"])),
        }
        for name, (value, limit) in limits.items():
            if not 0 <= value <= limit:
                raise ValueError(f"{name}: {value} is outside 0..{limit} for {self.version}")
        if self.train_scenes + self.val_scenes + self.test_scenes == 0:
            raise ValueError("train_scenes/val_scenes/test_scenes: at least one scene is needed")
        if self.samples_per_scene < 2:
            raise ValueError(f"samples_per_scene: {self.samples_per_scene} must be at least 2")
        if not 0 <= self.sweeps_per_sample <= 10:
            raise ValueError(f"sweeps_per_sample: {self.sweeps_per_sample} must be in 0..10")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality: {self.jpeg_quality} must be in 1..100")


@dataclass(frozen=True)
class WorldObject:
    """An object of a scene: constant velocity along its heading from ``position`` at t = 0."""

    kind: ObjectKind
    size: tuple[float, float, float]
    position: tuple[float, float]
    yaw: float
    speed: float
    color: tuple[int, int, int]
    attribute: str | None

    def center_at(self, t: float) -> np.ndarray:
        x, y = self.position
        distance = self.speed * t
        return np.array(
            [x + distance * np.cos(self.yaw), y + distance * np.sin(self.yaw), self.size[2] / 2]
        )

    def velocity(self) -> np.ndarray:
        return np.array([self.speed * np.cos(self.yaw), self.speed * np.sin(self.yaw), 0.0])


@dataclass(frozen=True)
class EgoPath:
    """A level arc: ``speed`` m/s, ``yaw_rate`` rad/s, starting at ``start`` with ``yaw``."""

    start: tuple[float, float]
    yaw: float
    speed: float
    yaw_rate: float

    def pose_at(self, t: float) -> np.ndarray:
        """4x4 ego -> global at time ``t`` seconds into the scene."""
        yaw = self.yaw + self.yaw_rate * t
        if abs(self.yaw_rate) < 1e-9:
            dx, dy = self.speed * t * np.cos(self.yaw), self.speed * t * np.sin(self.yaw)
        else:
            radius = self.speed / self.yaw_rate
            dx = radius * (np.sin(yaw) - np.sin(self.yaw))
            dy = -radius * (np.cos(yaw) - np.cos(self.yaw))
        return make_transform(rotation_z(yaw), (self.start[0] + dx, self.start[1] + dy, 0.0))


@dataclass(frozen=True)
class SceneWorld:
    name: str
    split: str
    index: int
    location: str
    ego: EgoPath
    objects: tuple[WorldObject, ...]
    duration_s: float


@dataclass(frozen=True)
class Capture:
    """One lidar sweep with its six camera images (``key`` for annotated samples)."""

    scene: int
    key: bool
    sample_index: int  # the key sample this capture belongs to (the next one for sweeps)
    time_s: float
    timestamp_us: int


@dataclass(frozen=True)
class CaptureJob:
    """What a worker renders: file paths relative to ``root``, poses and global boxes."""

    root: str
    lidar_file: str
    lidar_pose: np.ndarray
    camera_files: tuple[str, ...]
    camera_poses: tuple[np.ndarray, ...]
    boxes: Boxes
    jpeg_quality: int


@dataclass(frozen=True)
class CaptureStats:
    """Per box of a job: lidar points on it, projected pixels and visible pixels (all cameras)."""

    lidar_points: np.ndarray
    box_pixels: np.ndarray
    visible_pixels: np.ndarray


@dataclass
class _Tables:
    """The 13 nuScenes tables of one version, filled in scene by scene."""

    category: list[dict] = field(default_factory=list)
    attribute: list[dict] = field(default_factory=list)
    visibility: list[dict] = field(default_factory=list)
    instance: list[dict] = field(default_factory=list)
    sensor: list[dict] = field(default_factory=list)
    calibrated_sensor: list[dict] = field(default_factory=list)
    ego_pose: list[dict] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    scene: list[dict] = field(default_factory=list)
    sample: list[dict] = field(default_factory=list)
    sample_data: list[dict] = field(default_factory=list)
    sample_annotation: list[dict] = field(default_factory=list)
    map: list[dict] = field(default_factory=list)


def generate_dataset(
    root: str | os.PathLike, config: SyntheticConfig | None = None, workers: int | None = None
) -> Path:
    """Write the synthetic dataset to ``root`` and return it.

    Rerunning with the same configuration finds the completion marker and does nothing. Every
    file is written atomically and the marker last, so an interrupted run leaves no dataset that
    looks complete, and rerunning it finishes the job. A ``root`` holding nuScenes tables that
    this generator did not write is refused rather than overwritten.
    """
    config = config or SyntheticConfig()
    config.validate()
    root = Path(root)
    marker = root / MARKER_FILE
    wanted = json.dumps(asdict(config), sort_keys=True)
    if marker.exists():
        if marker.read_text() == wanted:
            return root
        raise FileExistsError(
            f"{root} already holds a synthetic dataset with another configuration "
            f"({marker}); choose another root or delete it"
        )
    # A run that was interrupted left its configuration here; its files may be overwritten.
    in_progress = root / IN_PROGRESS_FILE
    resuming = in_progress.exists() and in_progress.read_text() == wanted
    for version in _versions(config):
        if (root / version).exists() and not resuming:
            raise FileExistsError(
                f"{root / version} exists and was not written by the synthetic generator; "
                "choose an empty root"
            )
    write_text_atomic(in_progress, wanted)

    scenes = build_worlds(config)
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    for version in _versions(config):
        version_scenes = [scene for scene in scenes if _version_of(scene.split, config) == version]
        tables = _build_tables(root, config, version_scenes, workers)
        _write_tables(root / version, tables)
    _write_map_masks(root, scenes, config)
    write_text_atomic(marker, wanted)
    in_progress.unlink()
    return root


def _versions(config: SyntheticConfig) -> list[str]:
    versions = [config.version] if config.train_scenes + config.val_scenes else []
    return [*versions, "v1.0-test"] if config.test_scenes else versions


def _version_of(split: str, config: SyntheticConfig) -> str:
    return "v1.0-test" if split == "test" else config.version


def token(seed: int, *parts: object) -> str:
    """A deterministic 32-hex-digit token, like nuScenes' own."""
    text = "/".join(str(part) for part in (seed, *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def build_worlds(config: SyntheticConfig) -> list[SceneWorld]:
    """The scenes of the dataset, in table order (train, val, test)."""
    from nuscenes.utils.splits import create_splits_scenes

    splits = create_splits_scenes()
    train_split, val_split = _SPLIT_SCENES[config.flavour]
    chosen = [
        *(("train", name) for name in splits[train_split][: config.train_scenes]),
        *(("val", name) for name in splits[val_split][: config.val_scenes]),
        *(("test", name) for name in splits["test"][: config.test_scenes]),
    ]
    duration = (config.samples_per_scene - 1) * KEY_INTERVAL_S
    worlds = []
    for index, (split, name) in enumerate(chosen):
        rng = np.random.default_rng([config.seed, index])
        ego = EgoPath(
            start=(index * 1000.0 + rng.uniform(-50, 50), rng.uniform(-50, 50)),
            yaw=rng.uniform(-np.pi, np.pi),
            speed=rng.uniform(0.0, 9.0),
            yaw_rate=rng.uniform(-0.08, 0.08),
        )
        worlds.append(
            SceneWorld(
                name=name,
                split=split,
                index=index,
                location=_LOCATIONS[index % len(_LOCATIONS)],
                ego=ego,
                objects=tuple(_place_objects(rng, ego, duration)),
                duration_s=duration,
            )
        )
    return worlds


def _place_objects(rng: np.random.Generator, ego: EgoPath, duration: float) -> list[WorldObject]:
    """Scatter non-overlapping objects around the ego's path, off its lane."""
    weights = np.array([kind.weight for kind in OBJECT_KINDS])
    times = np.linspace(0.0, duration, 5)
    ego_track = np.stack([ego.pose_at(t)[:2, 3] for t in np.linspace(0.0, duration, 20)])
    middle = ego.pose_at(duration / 2)[:2, 3]
    objects: list[WorldObject] = []
    footprints: list[np.ndarray] = []  # (len(times), 3): x, y, radius over time
    target = int(rng.integers(25, 45))
    for _ in range(target * 20):
        if len(objects) == target:
            break
        kind = OBJECT_KINDS[rng.choice(len(OBJECT_KINDS), p=weights / weights.sum())]
        size = tuple(float(s * rng.uniform(0.9, 1.1)) for s in kind.size)
        radius = float(np.hypot(size[0], size[1]) / 2)
        distance, angle = 55.0 * np.sqrt(rng.uniform(0.005, 1.0)), rng.uniform(-np.pi, np.pi)
        moving = rng.uniform() < kind.moving_probability
        candidate = WorldObject(
            kind=kind,
            size=size,
            position=(middle[0] + distance * np.cos(angle), middle[1] + distance * np.sin(angle)),
            yaw=float(rng.uniform(-np.pi, np.pi)),
            speed=float(rng.uniform(*kind.speed)) if moving else 0.0,
            color=tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in kind.color),
            attribute=_attribute(kind.category, moving, rng),
        )
        track = np.array([[*candidate.center_at(t)[:2], radius] for t in times])
        shifted = candidate.center_at(-duration)[:2]  # also keep clear of where it came from
        lane_gap = np.min(np.linalg.norm(ego_track[:, None] - track[None, :, :2], axis=-1))
        if lane_gap < radius + 3.0 or np.linalg.norm(shifted - middle) > 200:
            continue
        if any(
            np.any(np.linalg.norm(other[:, :2] - track[:, :2], axis=1) < other[:, 2] + radius + 0.5)
            for other in footprints
        ):
            continue
        objects.append(candidate)
        footprints.append(track)
    return objects


def _attribute(category: str, moving: bool, rng: np.random.Generator) -> str | None:
    if category.startswith("vehicle.") and category not in (
        "vehicle.bicycle",
        "vehicle.motorcycle",
    ):
        return (
            "vehicle.moving" if moving else str(rng.choice(["vehicle.parked", "vehicle.stopped"]))
        )
    if category in ("vehicle.bicycle", "vehicle.motorcycle"):
        rider = moving or rng.uniform() < 0.3
        return "cycle.with_rider" if rider else "cycle.without_rider"
    if category.startswith("human.pedestrian"):
        if moving:
            return "pedestrian.moving"
        return "pedestrian.standing" if rng.uniform() < 0.85 else "pedestrian.sitting_lying_down"
    return None


def scene_captures(scene: SceneWorld, config: SyntheticConfig) -> list[Capture]:
    """Key samples at 2 Hz (with a little trigger jitter) and the sweeps between them."""
    rng = np.random.default_rng([config.seed, scene.index, 1])
    start_us = _FIRST_TIMESTAMP_US + scene.index * 3_600_000_000
    captures: list[Capture] = []
    previous_key_time = 0.0
    for sample_index in range(config.samples_per_scene):
        key_time = sample_index * KEY_INTERVAL_S
        if sample_index:
            key_time += rng.uniform(-0.004, 0.004)
            step = (key_time - previous_key_time) / (config.sweeps_per_sample + 1)
            for sweep in range(1, config.sweeps_per_sample + 1):
                time_s = previous_key_time + sweep * step
                captures.append(
                    Capture(
                        scene.index, False, sample_index, time_s, start_us + round(time_s * 1e6)
                    )
                )
        captures.append(
            Capture(scene.index, True, sample_index, key_time, start_us + round(key_time * 1e6))
        )
        previous_key_time = key_time
    return captures


def _build_tables(
    root: Path, config: SyntheticConfig, scenes: Sequence[SceneWorld], workers: int
) -> _Tables:
    seed = config.seed
    tables = _Tables(
        category=[
            {
                "token": token(seed, "category", name),
                "name": name,
                "description": text,
                "index": index,
            }
            for index, (name, text) in enumerate(CATEGORIES)
        ],
        attribute=[
            {"token": token(seed, "attribute", name), "name": name, "description": text}
            for name, text in ATTRIBUTES
        ],
        visibility=[
            {"token": key, "level": level, "description": text} for key, level, text in VISIBILITIES
        ],
        sensor=[
            {
                "token": token(seed, "sensor", channel),
                "channel": channel,
                "modality": "camera" if channel.startswith("CAM") else "lidar",
            }
            for channel in (*CAMERA_CHANNELS, LIDAR)
        ],
    )
    for scene in scenes:
        captures = scene_captures(scene, config)
        jobs, object_ids = zip(
            *(_capture_job(root, config, scene, c) for c in captures), strict=True
        )
        stats = _run_jobs(jobs, workers)
        _add_scene(tables, config, scene, captures, jobs, object_ids, stats)
    locations = sorted({log["location"] for log in tables.log})
    tables.map = [
        {
            "token": token(seed, "map", location),
            "category": "semantic_prior",
            "filename": f"maps/{token(seed, 'map', location)}.png",
            "log_tokens": [log["token"] for log in tables.log if log["location"] == location],
        }
        for location in locations
    ]
    return tables


def _log_name(scene: SceneWorld) -> str:
    return f"n015-2018-07-{1 + scene.index % 28:02d}-11-{scene.index % 60:02d}-00+0800"


def _file_name(scene: SceneWorld, capture: Capture, channel: str, timestamp_us: int) -> str:
    folder = "samples" if capture.key else "sweeps"
    extension = "pcd.bin" if channel == LIDAR else "jpg"
    return f"{folder}/{channel}/{_log_name(scene)}__{channel}__{timestamp_us}.{extension}"


def _capture_job(
    root: Path, config: SyntheticConfig, scene: SceneWorld, capture: Capture
) -> tuple[CaptureJob, np.ndarray]:
    """The render job of one capture and the scene object index of each of its boxes."""
    lidar_pose = scene.ego.pose_at(capture.time_s)
    ego_xy = lidar_pose[:2, 3]
    centers = np.array([obj.center_at(capture.time_s) for obj in scene.objects]).reshape(-1, 3)
    near = np.flatnonzero(np.linalg.norm(centers[:, :2] - ego_xy, axis=1) < RENDER_RANGE_M)
    objects = [scene.objects[i] for i in near]
    boxes = Boxes(
        centers=centers[near],
        sizes=np.array([obj.size for obj in objects]).reshape(-1, 3),
        yaws=np.array([obj.yaw for obj in objects]),
        colors=np.array([obj.color for obj in objects], dtype=np.float64).reshape(-1, 3),
        intensities=np.array([obj.kind.intensity for obj in objects]),
    )
    camera_times = [capture.time_s + CAMERA_TIME_OFFSETS_US[c] * 1e-6 for c in CAMERA_CHANNELS]
    job = CaptureJob(
        root=str(root),
        lidar_file=_file_name(scene, capture, LIDAR, capture.timestamp_us),
        lidar_pose=lidar_pose,
        camera_files=tuple(
            _file_name(
                scene, capture, channel, capture.timestamp_us + CAMERA_TIME_OFFSETS_US[channel]
            )
            for channel in CAMERA_CHANNELS
        ),
        camera_poses=tuple(scene.ego.pose_at(t) for t in camera_times),
        boxes=boxes,
        jpeg_quality=config.jpeg_quality,
    )
    return job, near


def _run_jobs(jobs: Sequence[CaptureJob], workers: int) -> list[CaptureStats]:
    if workers <= 1:
        return [render_capture(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(render_capture, jobs))


def render_capture(job: CaptureJob) -> CaptureStats:
    """Ray-cast and write one lidar sweep and its six images (atomically); count per box."""
    root = Path(job.root)
    count = len(job.boxes)
    boxes_lidar_ego = job.boxes.transformed(invert_transform(job.lidar_pose))
    sweep = cast_lidar(LIDAR_TO_EGO, job.lidar_pose, boxes_lidar_ego)
    write_bytes_atomic(root / job.lidar_file, sweep.points.astype(np.float32).tobytes())
    lidar_points = np.bincount(sweep.box_ids[sweep.box_ids >= 0], minlength=count)

    box_pixels = np.zeros(count, dtype=np.int64)
    visible_pixels = np.zeros(count, dtype=np.int64)
    for channel, file_name, pose in zip(
        CAMERA_CHANNELS, job.camera_files, job.camera_poses, strict=True
    ):
        rendered = render_camera(
            camera_rays(channel), pose, job.boxes.transformed(invert_transform(pose))
        )
        with atomic_path(root / file_name) as temporary:
            Image.fromarray(rendered.image).save(temporary, format="JPEG", quality=job.jpeg_quality)
        box_pixels += rendered.box_pixels
        ids = rendered.box_ids[rendered.box_ids >= 0]
        visible_pixels += np.bincount(ids, minlength=count)
    return CaptureStats(
        lidar_points=lidar_points, box_pixels=box_pixels, visible_pixels=visible_pixels
    )


def _visibility_token(visible: int, projected: int) -> str:
    fraction = visible / projected if projected else 0.0
    return next(
        key for key, upper in (("1", 0.4), ("2", 0.6), ("3", 0.8), ("4", 1.01)) if fraction < upper
    )


def _add_scene(
    tables: _Tables,
    config: SyntheticConfig,
    scene: SceneWorld,
    captures: Sequence[Capture],
    jobs: Sequence[CaptureJob],
    object_ids: Sequence[np.ndarray],
    stats: Sequence[CaptureStats],
) -> None:
    seed = config.seed
    log_token = token(seed, "log", scene.index)
    tables.log.append(
        {
            "token": log_token,
            "logfile": _log_name(scene),
            "vehicle": "n015",
            "date_captured": f"2018-07-{1 + scene.index % 28:02d}",
            "location": scene.location,
        }
    )
    calibration = {}
    for channel in (*CAMERA_CHANNELS, LIDAR):
        sensor2ego = LIDAR_TO_EGO if channel == LIDAR else camera(channel).sensor2ego
        intrinsic = [] if channel == LIDAR else camera(channel).intrinsic.tolist()
        calibration[channel] = token(seed, "calibrated_sensor", scene.index, channel)
        tables.calibrated_sensor.append(
            {
                "token": calibration[channel],
                "sensor_token": token(seed, "sensor", channel),
                "translation": sensor2ego[:3, 3].tolist(),
                "rotation": matrix_to_quaternion(sensor2ego[:3, :3]),
                "camera_intrinsic": intrinsic,
            }
        )

    sample_tokens = [token(seed, "sample", scene.index, i) for i in range(config.samples_per_scene)]
    key_captures = [c for c in captures if c.key]
    for i, capture in enumerate(key_captures):
        tables.sample.append(
            {
                "token": sample_tokens[i],
                "timestamp": capture.timestamp_us,
                "prev": sample_tokens[i - 1] if i else "",
                "next": sample_tokens[i + 1] if i + 1 < len(sample_tokens) else "",
                "scene_token": token(seed, "scene", scene.index),
            }
        )
    tables.scene.append(
        {
            "token": token(seed, "scene", scene.index),
            "log_token": log_token,
            "nbr_samples": len(sample_tokens),
            "first_sample_token": sample_tokens[0],
            "last_sample_token": sample_tokens[-1],
            "name": scene.name,
            "description": f"synthetic {scene.location}, ego {scene.ego.speed:.1f} m/s",
        }
    )

    _add_sample_data(tables, seed, scene, captures, jobs, calibration, sample_tokens)
    if scene.split != "test":
        _add_annotations(tables, seed, scene, captures, jobs, object_ids, stats, sample_tokens)


def _add_sample_data(
    tables: _Tables,
    seed: int,
    scene: SceneWorld,
    captures: Sequence[Capture],
    jobs: Sequence[CaptureJob],
    calibration: dict[str, str],
    sample_tokens: Sequence[str],
) -> None:
    for channel_index, channel in enumerate((*CAMERA_CHANNELS, LIDAR)):
        is_lidar = channel == LIDAR
        tokens = [token(seed, "sample_data", scene.index, channel, n) for n in range(len(captures))]
        for n, (capture, job) in enumerate(zip(captures, jobs, strict=True)):
            pose = job.lidar_pose if is_lidar else job.camera_poses[channel_index]
            timestamp = capture.timestamp_us + (0 if is_lidar else CAMERA_TIME_OFFSETS_US[channel])
            tables.ego_pose.append(
                {
                    "token": tokens[n],
                    "timestamp": timestamp,
                    "rotation": matrix_to_quaternion(pose[:3, :3]),
                    "translation": pose[:3, 3].tolist(),
                }
            )
            tables.sample_data.append(
                {
                    "token": tokens[n],
                    "sample_token": sample_tokens[capture.sample_index],
                    "ego_pose_token": tokens[n],
                    "calibrated_sensor_token": calibration[channel],
                    "timestamp": timestamp,
                    "fileformat": "pcd" if is_lidar else "jpg",
                    "is_key_frame": capture.key,
                    "height": 0 if is_lidar else IMAGE_HEIGHT,
                    "width": 0 if is_lidar else IMAGE_WIDTH,
                    "filename": job.lidar_file if is_lidar else job.camera_files[channel_index],
                    "prev": tokens[n - 1] if n else "",
                    "next": tokens[n + 1] if n + 1 < len(tokens) else "",
                }
            )


def _add_annotations(
    tables: _Tables,
    seed: int,
    scene: SceneWorld,
    captures: Sequence[Capture],
    jobs: Sequence[CaptureJob],
    object_ids: Sequence[np.ndarray],
    stats: Sequence[CaptureStats],
    sample_tokens: Sequence[str],
) -> None:
    category_tokens = {name: token(seed, "category", name) for name, _ in CATEGORIES}
    chains: dict[int, list[dict]] = {}
    for capture, job, ids, counts in zip(captures, jobs, object_ids, stats, strict=True):
        if not capture.key:
            continue
        ego_xy = job.lidar_pose[:2, 3]
        for box_index, object_index in enumerate(ids):
            center = job.boxes.centers[box_index]
            if np.linalg.norm(center[:2] - ego_xy) > ANNOTATION_RANGE_M:
                continue
            obj = scene.objects[object_index]
            instance = token(seed, "instance", scene.index, object_index)
            chains.setdefault(int(object_index), []).append(
                {
                    "token": token(
                        seed, "sample_annotation", scene.index, object_index, capture.sample_index
                    ),
                    "sample_token": sample_tokens[capture.sample_index],
                    "instance_token": instance,
                    "visibility_token": _visibility_token(
                        int(counts.visible_pixels[box_index]), int(counts.box_pixels[box_index])
                    ),
                    "attribute_tokens": [token(seed, "attribute", obj.attribute)]
                    if obj.attribute
                    else [],
                    "translation": center.tolist(),
                    "size": list(obj.size),
                    "rotation": yaw_to_quaternion(obj.yaw),
                    "num_lidar_pts": int(counts.lidar_points[box_index]),
                    "num_radar_pts": 0,
                }
            )
    for object_index, chain in sorted(chains.items()):
        for i, record in enumerate(chain):
            record["prev"] = chain[i - 1]["token"] if i else ""
            record["next"] = chain[i + 1]["token"] if i + 1 < len(chain) else ""
        tables.sample_annotation.extend(chain)
        tables.instance.append(
            {
                "token": chain[0]["instance_token"],
                "category_token": category_tokens[scene.objects[object_index].kind.category],
                "nbr_annotations": len(chain),
                "first_annotation_token": chain[0]["token"],
                "last_annotation_token": chain[-1]["token"],
            }
        )


def _write_tables(folder: Path, tables: _Tables) -> None:
    for name, records in asdict(tables).items():
        write_text_atomic(folder / f"{name}.json", json.dumps(records, indent=0))


def _write_map_masks(root: Path, scenes: Iterable[SceneWorld], config: SyntheticConfig) -> None:
    """A blank semantic-prior mask per location (the devkit requires the files to exist)."""
    for location in sorted({scene.location for scene in scenes}):
        path = root / "maps" / f"{token(config.seed, 'map', location)}.png"
        with atomic_path(path) as temporary:
            Image.new("L", (200, 200), color=255).save(temporary, format="PNG")
