"""Camera image loading, augmentation and normalization.

Two modes produce the same geometry (the same ``ida_mat``, see ``geometry.ida_affine``):

- ``exact``: the reference PIL sequence. Decode the full image, ``resize`` to
  ``(int(W0 r), int(H0 r))`` with bicubic filtering (what ``Image.resize`` uses by default for
  RGB since Pillow 7, hence what the reference got), ``crop`` (black past the edge), optional
  ``FLIP_LEFT_RIGHT``, ``rotate(angle)`` with nearest-neighbour sampling (its default).
- ``fast``: decode at reduced size with JPEG DCT scaling (``Image.draft``, 1/2 for the reference
  scales; it accepts a decode down to 1 / ``MAX_UPSAMPLE`` of the resize target), then resize,
  crop, flip and rotate in ONE bilinear affine warp (``cv2.warpAffine``; Pillow's
  ``Image.transform`` is about 7x slower for this) from the crop window of the decoded image,
  so that everything outside the window is black as in ``exact``. Geometry matches ``exact``
  to a fraction of a pixel (tested with a painted patch); the pixels differ slightly, because
  of the reduced decode, bilinear instead of bicubic filtering, and no nearest-neighbour jaggies
  from the rotation. Mean absolute difference to ``exact`` (grey levels of 255, measured with
  ``benchmarks/data_pipeline.py`` and ``tests/data/test_data_images.py``): about 1.5 on the
  synthetic dataset with the reference train augmentation (1.1 for the same draws without
  rotation), 1.9 on a high-contrast texture near the output Nyquist limit (0.5 without
  rotation). Throughput: 3.5 to 4x the samples/s of ``exact`` for a full train sample.

Normalization follows quirk 1 of the reference: PIL gives RGB, ``mmcv.imnormalize(to_rgb=True)``
still swaps channels, so the network sees B, G, R with the listed means/stds applied in that
swapped order (channel 0 = (B - 123.675) / 58.395).
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from bevdepth.data.augment import ImageAugParams
from bevdepth.data.geometry import ida_affine
from bevdepth.data.infos import DatasetFileError

# Reference `img_conf`; applied to channels in the order the network sees them (B, G, R).
IMG_MEAN = (123.675, 116.28, 103.53)
IMG_STD = (58.395, 57.12, 57.375)

# Pillow's default `Image.resize` filter for RGB images (bicubic since Pillow 7.0) and
# `Image.rotate`'s default (nearest); named explicitly so a Pillow upgrade cannot change them.
RESIZE_FILTER = Image.Resampling.BICUBIC
ROTATE_FILTER = Image.Resampling.NEAREST
# Fast mode: largest enlargement accepted in exchange for a smaller JPEG decode.
MAX_UPSAMPLE = 1.125


class ImageMode(str, Enum):
    """How images are decoded and augmented (see the module docstring)."""

    EXACT = "exact"
    FAST = "fast"


def _normalization_table() -> np.ndarray:
    """(3, 256) float32: normalized value of every uint8 level for output channels B, G, R.

    The same float32 arithmetic as ``mmcv.imnormalize`` ((x - mean) * (1 / std)), tabulated
    once so that normalizing an image is a table lookup.
    """
    levels = np.arange(256, dtype=np.float32)[None, :]
    mean = np.asarray(IMG_MEAN, dtype=np.float32)[:, None]
    std_inv = (1.0 / np.asarray(IMG_STD, dtype=np.float64)).astype(np.float32)[:, None]
    return (levels - mean) * std_inv


_NORM_TABLE = _normalization_table()


def normalize_image(rgb: np.ndarray) -> np.ndarray:
    """Reference normalization of an RGB image into the network's B, G, R layout (quirk 1).

    Args:
        rgb: (H, W, 3) uint8 RGB.

    Returns:
        (3, H, W) float32; channel 0 is (B - 123.675) / 58.395, 1 is G, 2 is R.
    """
    out = np.empty((3, *rgb.shape[:2]), dtype=np.float32)
    for channel in range(3):
        # Output channel c reads input channel 2 - c: the BGR<->RGB swap of the reference.
        np.take(_NORM_TABLE[channel], rgb[:, :, 2 - channel], out=out[channel])
    return out


def _open(path: Path) -> Image.Image:
    """Open an image lazily (header only); decoding happens in ``_decode``."""
    try:
        return Image.open(path)
    except FileNotFoundError as e:
        raise DatasetFileError(
            f"camera image {path} not found; check the dataroot and that the dataset is complete"
        ) from e
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetFileError(f"camera image {path} is not a readable image: {e}") from e


def _decode(img: Image.Image, path: Path) -> Image.Image:
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetFileError(f"camera image {path} is corrupt or truncated: {e}") from e
    return img if img.mode == "RGB" else img.convert("RGB")


def augment_exact(img: Image.Image, params: ImageAugParams) -> np.ndarray:
    """The reference sequence: resize, crop (black past the edge), flip, rotate.

    Args:
        img: decoded RGB image of any size (normally 1600x900).
        params: the camera's augmentation draw.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    img = img.resize(params.resize_dims, RESIZE_FILTER).crop(params.crop)
    if params.flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(img.rotate(params.rotate, resample=ROTATE_FILTER))


def _decode_reduced(
    img: Image.Image, params: ImageAugParams, path: Path
) -> tuple[Image.Image, float, float]:
    """Decode with JPEG DCT scaling, as small as the resize target allows.

    Returns:
        the decoded RGB image and its (x, y) scale relative to the original image.
    """
    full_w, full_h = img.size
    new_w, new_h = params.resize_dims
    # Ask for target / MAX_UPSAMPLE so that the reference scales r in (0.5, 0.55] still decode
    # at 1/2; the warp then enlarges by at most MAX_UPSAMPLE.
    request = (math.ceil(new_w / MAX_UPSAMPLE), math.ceil(new_h / MAX_UPSAMPLE))
    # `draft` returns the original image's extent in decoded pixels (W0 / s, H0 / s); None when
    # the format has no reduced decoding (PNG), which then decodes at full size.
    drafted = img.draft("RGB", request)
    content_w, content_h = drafted[1][2:] if drafted else (full_w, full_h)
    return _decode(img, path), content_w / full_w, content_h / full_h


def augment_fast(img: Image.Image, params: ImageAugParams, path: Path | str = "") -> np.ndarray:
    """Reduced JPEG decode, then resize + crop + flip + rotate as one bilinear affine warp.

    Args:
        img: an opened, *not yet decoded* image (``Image.open``); decoded here so that JPEG
            DCT scaling can be requested first.
        params: the camera's augmentation draw.
        path: file name used in error messages.

    Returns:
        (H, W, 3) uint8 RGB, the same geometry as :func:`augment_exact`.
    """
    full_w, full_h = img.size
    decoded, decode_x, decode_y = _decode_reduced(img, params, Path(path))
    pixels = np.asarray(decoded)
    new_w, new_h = params.resize_dims
    # Decoded pixels per resized pixel: the exact path resizes (W0, H0) onto resize_dims.
    step_x, step_y = full_w * decode_x / new_w, full_h * decode_y / new_h
    # Warp from the crop window only, so that what lies outside it turns black, as when the
    # exact path rotates its crop (its corners) or crops past the image edge. Rounding the
    # window to whole decoded pixels moves its edges by about half a pixel at most.
    x0, y0, x1, y1 = params.crop
    cols = np.clip(np.round([x0 * step_x, x1 * step_x]).astype(int), 0, pixels.shape[1])
    rows = np.clip(np.round([y0 * step_y, y1 * step_y]).astype(int), 0, pixels.shape[0])
    window = pixels[rows[0] : rows[1], cols[0] : cols[1]]
    if window.size == 0:
        return np.zeros((*params.final_size[::-1], 3), dtype=np.uint8)
    # Window pixels -> output pixels, in PIL coordinates (pixel centres at +0.5).
    forward = ida_affine(params, scale=(1 / step_x, 1 / step_y)) @ _translation(cols[0], rows[0])
    # OpenCV puts pixel centres at integers: shift by half a pixel on both sides.
    half = _translation(0.5, 0.5)
    output_to_window = np.linalg.inv(half) @ np.linalg.inv(forward) @ half
    return cv2.warpAffine(
        window,
        output_to_window[:2],
        params.final_size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def _translation(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def load_image(path: Path | str, params: ImageAugParams, mode: ImageMode) -> np.ndarray:
    """Load one camera image, augment it and normalize it for the network.

    Args:
        path: JPEG file.
        params: the camera's augmentation draw.
        mode: ``ImageMode.EXACT`` (reference pixels) or ``ImageMode.FAST``.

    Returns:
        (3, H, W) float32, channels B, G, R (quirk 1).

    Raises:
        DatasetFileError: the file is missing, not an image, or corrupt.
    """
    path = Path(path)
    with _open(path) as img:
        if ImageMode(mode) is ImageMode.FAST:
            augmented = augment_fast(img, params, path)
        else:
            augmented = augment_exact(_decode(img, path), params)
    return normalize_image(augmented)
