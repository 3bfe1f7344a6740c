"""Depth labels: LiDAR depth points of a camera, moved into the augmented image.

The points come from ``<prepared root>/depth_gt/<image basename>.bin`` (written by
``bevdepth.data.depth_gt``, path from ``depth_gt.depth_file``): float32 rows (u, v, depth) in
original-image pixels, depth = camera z in metres. They go through the camera's image
augmentation (the same affine map as ``ida_mat``), are truncated to int16 pixel indices (toward
zero, so coordinates in (-1, 0) land in row/column 0, as in the reference), and points inside
the final image are written into a zero map; where two points hit one pixel the later one wins
(no minimum here; the loss takes the minimum per 16x16 patch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bevdepth.data.augment import ImageAugParams
from bevdepth.data.geometry import ida_affine
from bevdepth.data.infos import DatasetFileError


def load_depth_points(path: Path | str, fix_command: str) -> np.ndarray:
    """Read one depth file.

    Args:
        path: the ``.bin`` file.
        fix_command: the command that creates it, for the error message (``hints``).

    Returns:
        (P, 3) float32 rows (u, v, depth).

    Raises:
        DatasetFileError: the file is missing or its size is not a multiple of 3 float32 values.
    """
    path = Path(path)
    try:
        values = np.fromfile(path, dtype=np.float32)
    except FileNotFoundError as e:
        raise DatasetFileError(
            f"depth label file {path} not found; create the depth labels with `{fix_command}`"
        ) from e
    if values.size % 3:
        raise DatasetFileError(
            f"depth label file {path} holds {values.size} float32 values, not (u, v, depth) rows; "
            f"delete it and recreate it with `{fix_command}`"
        )
    return values.reshape(-1, 3)


def depth_map(points: np.ndarray, params: ImageAugParams) -> np.ndarray:
    """Rasterize depth points into the augmented image.

    Args:
        points: (P, 3) rows (u, v, depth) in original-image pixels.
        params: the camera's image augmentation draw (the one its image used).

    Returns:
        (H, W) float32 depth in metres, 0 where no point landed.
    """
    width, height = params.final_size
    affine = ida_affine(params)
    uv = points[:, :2].astype(np.float64) @ affine[:2, :2].T + affine[:2, 2]
    # int16 truncation toward zero, as the reference `depth_transform`; the clip only stops
    # far-away coordinates from wrapping around into the image.
    cols, rows = np.clip(uv, -(2**15), 2**15 - 1).astype(np.int16).T
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    flat = rows[inside].astype(np.int64) * width + cols[inside]
    depths = points[inside, 2]
    # The reference writes points in file order, so the last point on a pixel wins. numpy does
    # not promise an order for repeated fancy indices; pick each pixel's last point explicitly.
    pixels, first_from_end = np.unique(flat[::-1], return_index=True)
    out = np.zeros((height, width), dtype=np.float32)
    out.flat[pixels] = depths[len(flat) - 1 - first_from_end]
    return out
