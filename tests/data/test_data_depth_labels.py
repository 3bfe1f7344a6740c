"""Depth labels: file reading and the reference ``depth_transform`` (fact sheet 3.5, 4.4)."""

from __future__ import annotations

import numpy as np
import pytest

from bevdepth.data.augment import ImageAugConfig, ImageAugParams, Mode, sample_image_aug
from bevdepth.data.depth_gt import depth_file
from bevdepth.data.depth_labels import depth_map, load_depth_points
from bevdepth.data.geometry import ida_matrix
from bevdepth.data.infos import DatasetFileError

TEST_PARAMS = ImageAugParams(0.44, (704, 396), (0, 140, 704, 396), False, 0.0)


def reference_depth_transform(points: np.ndarray, params: ImageAugParams) -> np.ndarray:
    """The fact sheet's step list: scale, -crop, flip u -> W - u, rotate about the centre."""
    width, height = params.final_size
    uv = points[:, :2].astype(np.float64) * params.resize - np.array(params.crop[:2])
    if params.flip:
        uv[:, 0] = width - uv[:, 0]
    h = np.deg2rad(params.rotate)
    rot = np.array([[np.cos(h), np.sin(h)], [-np.sin(h), np.cos(h)]])
    centre = np.array([width / 2, height / 2])
    uv = (uv - centre) @ rot.T + centre
    cols, rows = uv.astype(np.int16).T
    out = np.zeros((height, width), dtype=np.float32)
    for col, row, depth in zip(cols, rows, points[:, 2], strict=True):
        if 0 <= col < width and 0 <= row < height:
            out[row, col] = depth
    return out


def random_points(seed: int, count: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.uniform(1, 1599, count), rng.uniform(1, 899, count), rng.uniform(1, 60, count)],
        axis=1,
    ).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_depth_map_matches_reference_steps_and_ida_mat(seed):
    params = sample_image_aug(ImageAugConfig(), np.random.default_rng(seed), Mode.TRAIN)
    points = random_points(seed)
    out = depth_map(points, params)
    assert out.shape == (256, 704)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, reference_depth_transform(points, params))
    # Every written pixel is where ida_mat sends some point with that depth.
    mat = ida_matrix(params)
    uv = points[:, :2] @ mat[:2, :2].T + mat[:2, 3]
    cols, rows = uv.astype(np.int16).T
    for row, col in zip(*np.nonzero(out), strict=True):
        hit = (rows == row) & (cols == col)
        assert out[row, col] in points[hit, 2]


def test_last_point_on_a_pixel_wins():
    points = np.array([[100.0, 400.0, 5.0], [100.2, 400.1, 7.0], [100.1, 400.2, 6.0]], np.float32)
    out = depth_map(points, TEST_PARAMS)
    assert np.count_nonzero(out) == 1
    assert out[int(400 * 0.44) - 140, int(100 * 0.44)] == 6.0


def test_truncation_toward_zero_keeps_slightly_negative_coordinates():
    # u = -0.5 / 0.44 original pixels maps to u' = -0.5; int16 truncation gives column 0.
    points = np.array([[-0.5 / 0.44, 500.0, 3.0], [-1.5 / 0.44, 500.0, 4.0]], np.float32)
    out = depth_map(points, TEST_PARAMS)
    assert np.count_nonzero(out) == 1
    assert out[int(500 * 0.44) - 140, 0] == 3.0


def test_points_outside_are_dropped():
    points = np.array([[800.0, 100.0, 3.0], [1700.0, 800.0, 4.0]], np.float32)  # above the crop
    assert np.count_nonzero(depth_map(points, TEST_PARAMS)) == 0


FIX = "python -m bevdepth prepare depth --root /data"


def test_load_depth_points_round_trip(tmp_path):
    points = random_points(0, 10)
    path = tmp_path / "x.jpg.bin"
    points.tofile(path)
    np.testing.assert_array_equal(load_depth_points(path, FIX), points)


def test_missing_depth_file_names_file_and_command(tmp_path):
    path = depth_file(tmp_path, "samples/CAM_BACK/img.jpg")
    with pytest.raises(DatasetFileError) as info:
        load_depth_points(path, FIX)
    message = str(info.value)
    assert str(path) in message
    assert FIX in message


def test_malformed_depth_file(tmp_path):
    path = tmp_path / "bad.bin"
    np.zeros(4, np.float32).tofile(path)
    with pytest.raises(DatasetFileError, match=r"bad\.bin.*prepare depth"):
        load_depth_points(path, FIX)
