"""Augmentation configuration and sampling (image-data "IDA" and BEV-data "BDA" augmentation).

The defaults are the reference ``ida_aug_conf`` / ``bda_aug_conf`` of
``bev_depth_lss_r50_256x704_128x128_24e_2key``. Sampling is a pure function of an explicit
``numpy.random.Generator``; :func:`sample_rng` derives that generator from (seed, epoch, index),
so a sample gets the same augmentation whichever DataLoader worker loads it.

Train vs test behaviour (reference ``sample_ida_augmentation`` / ``sample_bda_augmentation``):

=========== =============================================== ===================================
item        train                                           test
=========== =============================================== ===================================
resize r    U(resize_lim)                                   max(fH / H, fW / W)
crop_h      int((1 - U(bot_pct_lim)) * newH) - fH           int((1 - mean(bot_pct_lim)) * newH) - fH
crop_w      int(U(0, max(0, newW - fW)))                    int(max(0, newW - fW) / 2)
flip        p = 0.5 if rand_flip                            never
rotate      U(rot_lim) degrees                              0
BDA         U(rot_lim) deg, U(scale_lim), flips p = ratio   identity
=========== =============================================== ===================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from bevdepth.data.constants import IMAGE_HEIGHT, IMAGE_WIDTH

# The network input size the reference resize limits were tuned for.
REFERENCE_FINAL_DIM = (256, 704)


class Mode(str, Enum):
    """Whether augmentation is random (``train``) or the fixed test-time transform (``test``)."""

    TRAIN = "train"
    TEST = "test"


def _check_range(name: str, lim: tuple[float, float]) -> None:
    if len(lim) != 2 or lim[0] > lim[1]:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {lim!r}")


@dataclass(frozen=True)
class ImageAugConfig:
    """Image-data augmentation (reference ``ida_aug_conf``).

    Attributes:
        final_dim: network input (H, W).
        src_size: original image (H, W) the resize factor refers to.
        resize_lim: range of the resize factor r; the image is resized to (int(W r), int(H r)).
        bot_pct_lim: range of the fraction of bottom rows cut away before the crop.
        rot_lim: range of the rotation angle in degrees (counter-clockwise, PIL ``rotate``).
        rand_flip: whether training flips left-right with probability 0.5.
    """

    final_dim: tuple[int, int] = REFERENCE_FINAL_DIM
    src_size: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH)
    resize_lim: tuple[float, float] = (0.386, 0.55)
    bot_pct_lim: tuple[float, float] = (0.0, 0.0)
    rot_lim: tuple[float, float] = (-5.4, 5.4)
    rand_flip: bool = True

    def __post_init__(self) -> None:
        for name in ("final_dim", "src_size"):
            dims = getattr(self, name)
            if len(dims) != 2 or min(dims) <= 0:
                raise ValueError(f"{name} must be a positive (H, W) pair, got {dims!r}")
        _check_range("resize_lim", self.resize_lim)
        _check_range("bot_pct_lim", self.bot_pct_lim)
        _check_range("rot_lim", self.rot_lim)
        if self.resize_lim[0] <= 0:
            raise ValueError(f"resize_lim must be positive, got {self.resize_lim!r}")

    @classmethod
    def for_final_dim(
        cls,
        final_dim: tuple[int, int],
        src_size: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH),
    ) -> ImageAugConfig:
        """The reference augmentation rescaled for another network input size.

        The resize limits scale with the final size (by the larger of the H and W ratios to
        256x704, so that the bottom crop still fits), e.g. 128x352 gives (0.193, 0.275).
        Crop, flip and rotation settings are unchanged.

        Args:
            final_dim: network input (H, W).
            src_size: original image (H, W).
        """
        ref = cls()
        factor = max(final_dim[0] / REFERENCE_FINAL_DIM[0], final_dim[1] / REFERENCE_FINAL_DIM[1])
        low, high = ref.resize_lim
        return cls(
            final_dim=tuple(final_dim),
            src_size=tuple(src_size),
            resize_lim=(low * factor, high * factor),
        )


@dataclass(frozen=True)
class BevAugConfig:
    """BEV-data augmentation (reference ``bda_aug_conf``).

    Attributes:
        rot_lim: range of the rotation about z in degrees.
        scale_lim: range of the isotropic scale.
        flip_dx_ratio: probability of x -> -x.
        flip_dy_ratio: probability of y -> -y.
    """

    rot_lim: tuple[float, float] = (-22.5, 22.5)
    scale_lim: tuple[float, float] = (0.95, 1.05)
    flip_dx_ratio: float = 0.5
    flip_dy_ratio: float = 0.5

    def __post_init__(self) -> None:
        _check_range("rot_lim", self.rot_lim)
        _check_range("scale_lim", self.scale_lim)
        for name in ("flip_dx_ratio", "flip_dy_ratio"):
            ratio = getattr(self, name)
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {ratio!r}")


@dataclass(frozen=True)
class AugConfig:
    """Both augmentations; the defaults are the reference 256x704 configuration."""

    image: ImageAugConfig = field(default_factory=ImageAugConfig)
    bev: BevAugConfig = field(default_factory=BevAugConfig)

    @classmethod
    def reference(cls) -> AugConfig:
        """The reference configuration (network input 256x704)."""
        return cls()

    @classmethod
    def for_final_dim(cls, final_dim: tuple[int, int]) -> AugConfig:
        """The reference configuration rescaled for another input size, e.g. (128, 352)."""
        return cls(image=ImageAugConfig.for_final_dim(final_dim))


@dataclass(frozen=True)
class ImageAugParams:
    """One camera's image augmentation draw, shared by all frames of that camera.

    Attributes:
        resize: resize factor r (the matrices use r, the image uses ``resize_dims``).
        resize_dims: (W, H) of the resized image, ``(int(W0 r), int(H0 r))``.
        crop: (x0, y0, x1, y1) crop box in the resized image; x1 - x0 and y1 - y0 are the final
            W and H. It may reach past the resized image, which is then padded with black.
        flip: left-right flip after the crop.
        rotate: counter-clockwise rotation in degrees about the centre of the crop.
    """

    resize: float
    resize_dims: tuple[int, int]
    crop: tuple[int, int, int, int]
    flip: bool
    rotate: float

    @property
    def final_size(self) -> tuple[int, int]:
        """Output (W, H) in pixels."""
        return self.crop[2] - self.crop[0], self.crop[3] - self.crop[1]


@dataclass(frozen=True)
class BevAugParams:
    """One sample's BEV augmentation draw, shared by all frames.

    Attributes:
        rotate: rotation about z in degrees (counter-clockwise seen from above).
        scale: isotropic scale.
        flip_dx: x -> -x after rotation and scale.
        flip_dy: y -> -y after rotation and scale.
    """

    rotate: float = 0.0
    scale: float = 1.0
    flip_dx: bool = False
    flip_dy: bool = False


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, index), never on the worker or call order."""
    return np.random.default_rng([seed, epoch, index])


def sample_image_aug(cfg: ImageAugConfig, rng: np.random.Generator, mode: Mode) -> ImageAugParams:
    """Draw one camera's image augmentation (train) or return the fixed test transform.

    Args:
        cfg: image augmentation configuration.
        rng: source of randomness; not used in test mode.
        mode: ``Mode.TRAIN`` for random draws, ``Mode.TEST`` for the deterministic transform.
    """
    src_h, src_w = cfg.src_size
    final_h, final_w = cfg.final_dim
    train = Mode(mode) is Mode.TRAIN
    if train:
        resize = float(rng.uniform(*cfg.resize_lim))
        bot_pct = float(rng.uniform(*cfg.bot_pct_lim))
    else:
        resize = max(final_h / src_h, final_w / src_w)
        bot_pct = float(np.mean(cfg.bot_pct_lim))
    new_w, new_h = int(src_w * resize), int(src_h * resize)
    crop_h = int((1 - bot_pct) * new_h) - final_h
    slack_w = max(0, new_w - final_w)
    if train:
        crop_w = int(rng.uniform(0, slack_w))
        flip = bool(cfg.rand_flip and rng.random() < 0.5)
        rotate = float(rng.uniform(*cfg.rot_lim))
    else:
        crop_w = int(slack_w / 2)
        flip = False
        rotate = 0.0
    return ImageAugParams(
        resize=resize,
        resize_dims=(new_w, new_h),
        crop=(crop_w, crop_h, crop_w + final_w, crop_h + final_h),
        flip=flip,
        rotate=rotate,
    )


def sample_bev_aug(cfg: BevAugConfig, rng: np.random.Generator, mode: Mode) -> BevAugParams:
    """Draw one sample's BEV augmentation (train) or return the identity (test)."""
    if Mode(mode) is Mode.TEST:
        return BevAugParams()
    return BevAugParams(
        rotate=float(rng.uniform(*cfg.rot_lim)),
        scale=float(rng.uniform(*cfg.scale_lim)),
        flip_dx=bool(rng.random() < cfg.flip_dx_ratio),
        flip_dy=bool(rng.random() < cfg.flip_dy_ratio),
    )
