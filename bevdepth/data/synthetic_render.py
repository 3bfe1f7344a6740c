"""Ray-cast rendering of the synthetic world: camera images and LIDAR_TOP sweeps.

Both sensors see the same geometry, a flat ground at z = 0 (global and ego, the ego is level)
and solid 3D boxes standing on it, so every lidar point on a box lies on that box's pixels in the
images. Images are ray-cast per pixel (ground for all pixels, each box only inside its projected
bounding rectangle) with a depth buffer; lidar rays use the same slab intersection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bevdepth.data.poses import apply_transform, invert_transform, rotation_z

# Ground texture: 2 m checker, fading into a horizon colour with distance.
_CHECKER_SIZE_M = 2.0
_GROUND_COLORS = np.array([[92, 92, 88], [124, 122, 116]], dtype=np.float32)
_HORIZON_COLOR = np.array([170, 180, 190], dtype=np.float32)
_SKY_TOP = np.array([90, 140, 215], dtype=np.float32)
_SKY_BOTTOM = np.array([185, 205, 230], dtype=np.float32)
_FOG_DISTANCE_M = 160.0

# Brightness per box face, indexed by (axis, side): the front (+x, heading) face is tinted
# towards white so that heading, not only the box axis, is visible.
_FACE_SHADE = {(0, 1): 1.0, (0, 0): 0.55, (1, 1): 0.8, (1, 0): 0.7, (2, 1): 0.95, (2, 0): 0.4}
_FRONT_TINT = 0.45

LIDAR_ELEVATIONS_DEG = np.linspace(-30.67, 10.67, 32)
LIDAR_AZIMUTH_STEPS = 1084
LIDAR_MIN_RANGE_M = 1.0
LIDAR_MAX_RANGE_M = 70.0
_NO_HIT = -1


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``intrinsic`` 3x3 and ``sensor2ego`` 4x4.

    Camera axes are x right, y down, z forward.
    """

    intrinsic: np.ndarray
    sensor2ego: np.ndarray
    width: int
    height: int


@dataclass(frozen=True)
class Boxes:
    """Upright boxes in one frame. ``centers`` (M, 3) geometric centres, ``sizes`` (M, 3) as
    (w, l, h), ``yaws`` (M,) heading about +z (length along the heading), ``colors`` (M, 3) RGB,
    ``intensities`` (M,) lidar reflectance."""

    centers: np.ndarray
    sizes: np.ndarray
    yaws: np.ndarray
    colors: np.ndarray
    intensities: np.ndarray

    def __len__(self) -> int:
        return len(self.yaws)

    def transformed(self, transform: np.ndarray) -> Boxes:
        """The same boxes in another frame; ``transform`` is a level (yaw-only) 4x4 transform."""
        yaw = np.arctan2(transform[1, 0], transform[0, 0])
        return Boxes(
            centers=apply_transform(transform, self.centers),
            sizes=self.sizes,
            yaws=self.yaws + yaw,
            colors=self.colors,
            intensities=self.intensities,
        )

    def half_extents(self) -> np.ndarray:
        """(M, 3) half sizes along the box axes (length, width, height)."""
        return self.sizes[:, [1, 0, 2]] / 2.0

    def corners(self) -> np.ndarray:
        """(M, 8, 3) corner coordinates."""
        signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, 8).T
        local = signs[None] * self.half_extents()[:, None]
        rotations = (
            np.stack([rotation_z(yaw) for yaw in self.yaws]) if len(self) else np.zeros((0, 3, 3))
        )
        return np.einsum("mij,mkj->mki", rotations, local) + self.centers[:, None]


@dataclass(frozen=True)
class RayHits:
    """Nearest box hit along each ray: ``depth`` (R,) ray parameter (inf = none), ``box`` (R,)
    index (-1 = none), ``axis`` and ``side`` (R,) of the entry face."""

    depth: np.ndarray
    box: np.ndarray
    axis: np.ndarray
    side: np.ndarray


def intersect_box(
    origin: np.ndarray, directions: np.ndarray, center: np.ndarray, yaw: float, half: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slab test of rays ``origin + t * directions`` (R, 3) against one upright box.

    Returns the entry parameter t (inf where the ray misses or starts inside), the entry axis and
    the entry side (1 = positive face). Computes in the precision of ``directions``.
    """
    dtype = directions.dtype
    to_local = rotation_z(-yaw)
    local_origin = (to_local @ (origin - center)).astype(dtype)
    local_dirs = directions @ to_local.T.astype(dtype)
    half = half.astype(dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / local_dirs
        t_low = (-half - local_origin) * inverse
        t_high = (half - local_origin) * inverse
    t_near = np.minimum(t_low, t_high)
    t_far = np.maximum(t_low, t_high)
    # Rays parallel to a slab: inside it the slab never constrains, outside it never hits.
    parallel = local_dirs == 0
    if parallel.any():
        outside = np.abs(local_origin) > half
        t_near = np.where(parallel, np.where(outside, np.inf, -np.inf), t_near).astype(dtype)
        t_far = np.where(parallel, np.where(outside, -np.inf, np.inf), t_far).astype(dtype)
    entry_axis = np.argmax(t_near, axis=1)
    rows = np.arange(len(entry_axis))
    t_entry = t_near[rows, entry_axis]
    hit = (t_entry <= t_far.min(axis=1)) & (t_entry > 0)
    side = (local_dirs[rows, entry_axis] < 0).astype(np.int8)  # entering against the axis: + face
    return np.where(hit, t_entry, np.inf), entry_axis, side


def cast_rays(origin: np.ndarray, directions: np.ndarray, boxes: Boxes) -> RayHits:
    """Nearest hit of each ray (R, 3) among all boxes."""
    count = len(directions)
    depth = np.full(count, np.inf)
    box = np.full(count, _NO_HIT, dtype=np.int32)
    axis = np.zeros(count, dtype=np.int8)
    side = np.zeros(count, dtype=np.int8)
    halves = boxes.half_extents()
    for index in range(len(boxes)):
        t, entry_axis, entry_side = intersect_box(
            origin, directions, boxes.centers[index], boxes.yaws[index], halves[index]
        )
        closer = t < depth
        depth[closer] = t[closer]
        box[closer] = index
        axis[closer] = entry_axis[closer]
        side[closer] = entry_side[closer]
    return RayHits(depth=depth, box=box, axis=axis, side=side)


class CameraRays:
    """Per-pixel rays of one camera in the ego frame, computed once per calibration.

    Rays pass through pixel centres and are scaled so that the ray parameter equals the
    camera-frame depth (z).
    """

    def __init__(self, camera: Camera):
        self.camera = camera
        us, vs = np.meshgrid(
            np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5, indexing="xy"
        )
        pixels = np.stack([us, vs, np.ones_like(us)], axis=-1).reshape(-1, 3)
        cam_dirs = pixels @ np.linalg.inv(camera.intrinsic).T
        self.origin = camera.sensor2ego[:3, 3].copy()
        self.directions = (cam_dirs @ camera.sensor2ego[:3, :3].T).astype(np.float32)
        with np.errstate(divide="ignore"):
            ground_t = np.where(
                self.directions[:, 2] < 0, -self.origin[2] / self.directions[:, 2], np.inf
            )
        self.ground_depth = ground_t.astype(np.float32)
        finite = np.isfinite(ground_t)
        ground_xy = np.zeros((len(ground_t), 2), dtype=np.float32)
        ground_xy[finite] = (
            self.origin[:2] + ground_t[finite, None] * self.directions[finite, :2]
        ).astype(np.float32)
        self.ground_xy = ground_xy
        # Colour = base + checker * contrast: everything but the checker parity is fixed per
        # camera, so it is computed once here rather than per frame.
        is_ground = finite[:, None]
        sky_mix = np.clip(vs.reshape(-1, 1) / (camera.height * 0.6), 0.0, 1.0)
        sky = _SKY_TOP * (1 - sky_mix) + _SKY_BOTTOM * sky_mix
        fog = np.clip(ground_t / _FOG_DISTANCE_M, 0.0, 1.0)[:, None]
        noise = np.random.default_rng(0).normal(0.0, 4.0, size=(len(ground_t), 1))
        ground = _GROUND_COLORS[0] * (1 - fog) + _HORIZON_COLOR * fog + noise
        self.base_color = np.where(is_ground, ground, sky).astype(np.float32)
        self.checker_contrast = np.where(
            is_ground, (_GROUND_COLORS[1] - _GROUND_COLORS[0]) * (1 - fog), 0.0
        ).astype(np.float32)


@dataclass(frozen=True)
class CameraRender:
    """``image`` (H, W, 3) uint8, ``box_ids`` (H, W) int32 (-1 = background), ``depth`` (H, W)
    float32 camera z (inf = sky), ``box_pixels`` (M,) unoccluded projected area of each box."""

    image: np.ndarray
    box_ids: np.ndarray
    depth: np.ndarray
    box_pixels: np.ndarray


def render_camera(rays: CameraRays, ego2global: np.ndarray, boxes_ego: Boxes) -> CameraRender:
    """Render one camera image. ``boxes_ego`` are in the ego frame at the capture time."""
    camera = rays.camera
    count = camera.width * camera.height
    depth = rays.ground_depth.copy()
    box_ids = np.full(count, _NO_HIT, dtype=np.int32)
    colors = _ground_colors(rays, ego2global)
    box_pixels = np.zeros(len(boxes_ego), dtype=np.int64)

    ego2camera = invert_transform(camera.sensor2ego)
    halves = boxes_ego.half_extents()
    for index, corners in enumerate(boxes_ego.corners()):
        pixel_index = _pixels_under_box(apply_transform(ego2camera, corners), camera)
        if pixel_index is None:
            continue
        t, axis, side = intersect_box(
            rays.origin,
            rays.directions[pixel_index],
            boxes_ego.centers[index],
            boxes_ego.yaws[index],
            halves[index],
        )
        hit = np.isfinite(t)
        box_pixels[index] = int(hit.sum())
        nearer = hit & (t < depth[pixel_index])
        target = pixel_index[nearer]
        depth[target] = t[nearer]
        box_ids[target] = index
        colors[target] = _face_colors(boxes_ego.colors[index], axis[nearer], side[nearer])

    image = np.clip(colors, 0, 255).astype(np.uint8).reshape(camera.height, camera.width, 3)
    return CameraRender(
        image=image,
        box_ids=box_ids.reshape(camera.height, camera.width),
        depth=depth.reshape(camera.height, camera.width),
        box_pixels=box_pixels,
    )


def _ground_colors(rays: CameraRays, ego2global: np.ndarray) -> np.ndarray:
    """(H*W, 3) float colours of ground and sky, the checker laid out in global coordinates."""
    rotation = ego2global[:2, :2].astype(np.float32)
    global_xy = rays.ground_xy @ rotation.T + ego2global[:2, 3].astype(np.float32)
    cells = np.floor(global_xy * (1.0 / _CHECKER_SIZE_M)).astype(np.int64)
    parity = ((cells[:, 0] + cells[:, 1]) & 1).astype(np.float32)
    return rays.base_color + parity[:, None] * rays.checker_contrast


def _face_colors(base: np.ndarray, axis: np.ndarray, side: np.ndarray) -> np.ndarray:
    shade = np.zeros(len(axis), dtype=np.float32)
    for (face_axis, face_side), value in _FACE_SHADE.items():
        shade[(axis == face_axis) & (side == face_side)] = value
    colors = base[None, :].astype(np.float32) * shade[:, None]
    front = (axis == 0) & (side == 1)
    colors[front] = colors[front] * (1 - _FRONT_TINT) + 255.0 * _FRONT_TINT
    return colors


def _pixels_under_box(corners_cam: np.ndarray, camera: Camera) -> np.ndarray | None:
    """Flat indices of the pixels inside the box's projected bounding rectangle, or None."""
    in_front = corners_cam[:, 2] > 0.05
    if not in_front.any():
        return None
    if in_front.all():
        projected = corners_cam[:, :2] / corners_cam[:, 2:3]
        projected = projected @ camera.intrinsic[:2, :2].T + camera.intrinsic[:2, 2]
        u0, v0 = np.floor(projected.min(axis=0)).astype(int)
        u1, v1 = np.ceil(projected.max(axis=0)).astype(int)
    else:
        # The box straddles the image plane: its projection is unbounded, test every pixel.
        u0, v0, u1, v1 = 0, 0, camera.width, camera.height
    u0, u1 = max(u0, 0), min(u1, camera.width)
    v0, v1 = max(v0, 0), min(v1, camera.height)
    if u0 >= u1 or v0 >= v1:
        return None
    rows = np.arange(v0, v1)[:, None] * camera.width
    return (rows + np.arange(u0, u1)[None, :]).reshape(-1)


@dataclass(frozen=True)
class LidarSweep:
    """``points`` (P, 5) float32 x, y, z, intensity, ring in the lidar frame; ``box_ids`` (P,)
    index of the box each point lies on (-1 = ground)."""

    points: np.ndarray
    box_ids: np.ndarray


def lidar_directions() -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (R, 3) of one 32-beam revolution in the lidar frame, and ring ids."""
    elevation = np.deg2rad(LIDAR_ELEVATIONS_DEG)[:, None]
    azimuth = np.linspace(-np.pi, np.pi, LIDAR_AZIMUTH_STEPS, endpoint=False)[None, :]
    directions = np.stack(
        [
            np.cos(elevation) * np.cos(azimuth),
            np.cos(elevation) * np.sin(azimuth),
            np.sin(elevation) * np.ones_like(azimuth),
        ],
        axis=-1,
    ).reshape(-1, 3)
    rings = np.repeat(np.arange(len(LIDAR_ELEVATIONS_DEG)), LIDAR_AZIMUTH_STEPS)
    return directions, rings


def cast_lidar(lidar2ego: np.ndarray, ego2global: np.ndarray, boxes_ego: Boxes) -> LidarSweep:
    """One lidar revolution against ground and boxes (``boxes_ego`` in the ego frame)."""
    directions_lidar, rings = lidar_directions()
    origin = lidar2ego[:3, 3]
    directions = directions_lidar @ lidar2ego[:3, :3].T
    hits = cast_rays(origin, directions, boxes_ego)
    with np.errstate(divide="ignore"):
        ground_t = np.where(directions[:, 2] < 0, -origin[2] / directions[:, 2], np.inf)
    on_box = hits.depth < ground_t
    ranges = np.where(on_box, hits.depth, ground_t)
    keep = (ranges >= LIDAR_MIN_RANGE_M) & (ranges <= LIDAR_MAX_RANGE_M)
    box_ids = np.where(on_box, hits.box, _NO_HIT)[keep]

    xyz = directions_lidar[keep] * ranges[keep, None]
    ground_xy = apply_transform(ego2global, origin + directions[keep] * ranges[keep, None])[:, :2]
    checker = (np.floor(ground_xy[:, 0] / _CHECKER_SIZE_M) + np.floor(ground_xy[:, 1] / 2.0)) % 2
    intensity = np.where(
        box_ids >= 0, boxes_ego.intensities[np.maximum(box_ids, 0)], 4.0 + 8.0 * checker
    )
    points = np.concatenate(
        [xyz, intensity[:, None], rings[keep, None].astype(np.float64)], axis=1
    ).astype(np.float32)
    return LidarSweep(points=points, box_ids=box_ids.astype(np.int32))
