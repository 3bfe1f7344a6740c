"""Image augmentation geometry, the two image modes, normalization and image errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bevdepth.data.augment import ImageAugParams
from bevdepth.data.depth_labels import depth_map
from bevdepth.data.geometry import ida_affine
from bevdepth.data.images import (
    IMG_MEAN,
    IMG_STD,
    ImageMode,
    augment_exact,
    augment_fast,
    load_image,
    normalize_image,
)
from bevdepth.data.infos import DatasetFileError

PATCH = 14  # side of the painted square in original pixels

# Non-trivial draws: flip and rotation, a crop that runs past the right edge (r = 0.40), and a
# scale above 0.5, which the fast mode decodes at 1/2 and then enlarges a little.
PARAMS = {
    "draft_flip_rot": ImageAugParams(0.47, (752, 423), (31, 167, 735, 423), True, 4.3),
    "padded": ImageAugParams(0.40, (640, 360), (0, 104, 704, 360), False, -5.0),
    "upsampled": ImageAugParams(0.53, (848, 477), (90, 221, 794, 477), True, -2.7),
}
# Where the patch centre should land in the output (x, y), well inside the image.
TARGET = np.array([250.0, 120.0])


def patch_origin(params: ImageAugParams) -> np.ndarray:
    """Top-left original pixel of a patch whose centre lands on TARGET."""
    inverse = np.linalg.inv(ida_affine(params))
    centre = inverse[:2, :2] @ TARGET + inverse[:2, 2]
    return np.round(centre - PATCH / 2).astype(int)


def write_patch_image(path: Path, origin: np.ndarray) -> None:
    """Grey 1600x900 image with a red PATCH x PATCH square at ``origin`` (x, y), JPEG or PNG."""
    rgb = np.full((900, 1600, 3), 110, dtype=np.uint8)
    x, y = origin
    rgb[y : y + PATCH, x : x + PATCH] = (230, 20, 20)
    Image.fromarray(rgb).save(path, quality=95)


def red_centroid(rgb: np.ndarray) -> np.ndarray:
    """Centre (x, y) of the red pixels, in continuous pixel coordinates (centres at +0.5)."""
    rgb = rgb.astype(int)
    ys, xs = np.nonzero((rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90))
    assert xs.size > 0, "patch not found in the augmented image"
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def augment(path: Path, params: ImageAugParams, mode: ImageMode) -> np.ndarray:
    with Image.open(path) as img:
        if mode is ImageMode.FAST:
            return augment_fast(img, params, path)
        img.load()
        return augment_exact(img, params)


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [(ImageMode.EXACT, ".jpg"), (ImageMode.FAST, ".jpg"), (ImageMode.FAST, ".png")],
)
@pytest.mark.parametrize("name", list(PARAMS))
def test_patch_lands_where_ida_mat_says(tmp_path, name, mode, suffix):
    params = PARAMS[name]
    origin = patch_origin(params)
    path = tmp_path / f"patch{suffix}"  # PNG: the fast path without DCT scaling
    write_patch_image(path, origin)
    out = augment(path, params, mode)
    assert out.shape == (256, 704, 3)
    assert out.dtype == np.uint8
    affine = ida_affine(params)
    expected = affine[:2, :2] @ (origin + PATCH / 2) + affine[:2, 2]
    np.testing.assert_allclose(red_centroid(out), expected, atol=1.5)


@pytest.mark.parametrize("name", list(PARAMS))
def test_depth_point_lands_on_the_patch(tmp_path, name):
    params = PARAMS[name]
    origin = patch_origin(params)
    path = tmp_path / "patch.jpg"
    write_patch_image(path, origin)
    image = augment(path, params, ImageMode.EXACT).astype(int)
    point = np.array([[*(origin + PATCH / 2), 12.5]], dtype=np.float32)
    rows, cols = np.nonzero(depth_map(point, params))
    assert len(rows) == 1
    r, g, b = image[rows[0], cols[0]]
    assert r > 150
    assert max(g, b) < 90


def test_normalization_is_bgr_with_means_in_swapped_order():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[...] = (10, 20, 30)  # R, G, B
    out = normalize_image(rgb)
    assert out.shape == (3, 2, 3)
    assert out.dtype == np.float32
    # Quirk 1: channel 0 is blue normalized with the first mean/std, channel 2 is red.
    np.testing.assert_allclose(out[0], (30 - IMG_MEAN[0]) / IMG_STD[0], rtol=1e-6)
    np.testing.assert_allclose(out[1], (20 - IMG_MEAN[1]) / IMG_STD[1], rtol=1e-6)
    np.testing.assert_allclose(out[2], (10 - IMG_MEAN[2]) / IMG_STD[2], rtol=1e-6)


def test_normalization_matches_elementwise_arithmetic():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = (rgb[..., ::-1].astype(np.float32) - np.float32(IMG_MEAN)) / np.float32(IMG_STD)
    np.testing.assert_allclose(normalize_image(rgb), expected.transpose(2, 0, 1), rtol=1e-6)


def textured_image(path: Path) -> None:
    """Smooth gradients plus mid-frequency texture, like a camera image at this scale."""
    ys, xs = np.mgrid[0:900, 0:1600].astype(np.float32)
    texture = 40 * np.sin(xs / 9.0) * np.cos(ys / 7.0)
    rgb = np.stack([xs / 7, ys / 4, (xs + ys) / 10], axis=-1) + texture[..., None]
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=92)


@pytest.mark.parametrize("name", list(PARAMS))
def test_fast_mode_is_close_to_exact(tmp_path, name):
    params = PARAMS[name]
    path = tmp_path / "texture.jpg"
    textured_image(path)
    exact = augment(path, params, ImageMode.EXACT).astype(int)
    fast = augment(path, params, ImageMode.FAST).astype(int)
    assert np.abs(exact - fast).mean() < 2.0
    # Black padding past the right edge of the resized image in both modes.
    if name == "padded":
        assert exact[:, 660:].max() < 30
        assert fast[:, 660:].max() < 30


@pytest.mark.parametrize("mode", list(ImageMode))
def test_load_image_returns_normalized_chw(tmp_path, mode):
    path = tmp_path / "texture.jpg"
    textured_image(path)
    out = load_image(path, PARAMS["draft_flip_rot"], mode)
    assert out.shape == (3, 256, 704)
    assert out.dtype == np.float32


@pytest.mark.parametrize("mode", list(ImageMode))
def test_missing_image_names_the_file(tmp_path, mode):
    path = tmp_path / "samples" / "CAM_FRONT" / "missing.jpg"
    with pytest.raises(DatasetFileError, match=r"missing\.jpg") as info:
        load_image(path, PARAMS["padded"], mode)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("mode", list(ImageMode))
def test_garbage_image_names_the_file(tmp_path, mode):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"this is not a jpeg")
    with pytest.raises(DatasetFileError, match=r"broken\.jpg"):
        load_image(path, PARAMS["padded"], mode)


@pytest.mark.parametrize("mode", list(ImageMode))
def test_truncated_image_names_the_file(tmp_path, mode):
    path = tmp_path / "truncated.jpg"
    textured_image(path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetFileError, match=r"truncated\.jpg.*(corrupt|truncated)"):
        load_image(path, PARAMS["padded"], mode)
