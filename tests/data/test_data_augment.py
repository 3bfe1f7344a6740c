"""Augmentation configuration and sampling (fact sheet 1.3, 1.4)."""

from __future__ import annotations

import numpy as np
import pytest

from bevdepth.data.augment import (
    AugConfig,
    BevAugConfig,
    BevAugParams,
    ImageAugConfig,
    Mode,
    sample_bev_aug,
    sample_image_aug,
    sample_rng,
)


def test_reference_defaults():
    cfg = AugConfig.reference()
    assert cfg.image == ImageAugConfig(
        final_dim=(256, 704),
        src_size=(900, 1600),
        resize_lim=(0.386, 0.55),
        bot_pct_lim=(0.0, 0.0),
        rot_lim=(-5.4, 5.4),
        rand_flip=True,
    )
    assert cfg.bev == BevAugConfig((-22.5, 22.5), (0.95, 1.05), 0.5, 0.5)


def test_for_final_dim_scales_resize_limits():
    cfg = AugConfig.for_final_dim((128, 352))
    assert cfg.image.final_dim == (128, 352)
    np.testing.assert_allclose(cfg.image.resize_lim, (0.193, 0.275))
    assert cfg.image.rot_lim == ImageAugConfig().rot_lim
    assert cfg.bev == BevAugConfig()
    assert AugConfig.for_final_dim((256, 704)) == AugConfig.reference()


def test_test_mode_is_the_fixed_reference_transform():
    params = sample_image_aug(ImageAugConfig(), np.random.default_rng(0), Mode.TEST)
    assert params.resize == pytest.approx(0.44)
    assert params.resize_dims == (704, 396)
    assert params.crop == (0, 140, 704, 396)
    assert not params.flip
    assert params.rotate == 0.0
    assert sample_bev_aug(BevAugConfig(), np.random.default_rng(0), "test") == BevAugParams()


def test_test_mode_small_preset():
    cfg = ImageAugConfig.for_final_dim((128, 352))
    params = sample_image_aug(cfg, np.random.default_rng(0), Mode.TEST)
    assert params.resize_dims == (352, 198)
    assert params.crop == (0, 70, 352, 198)


def test_train_draws_stay_in_the_reference_ranges():
    cfg = ImageAugConfig()
    rng = np.random.default_rng(1)
    draws = [sample_image_aug(cfg, rng, Mode.TRAIN) for _ in range(300)]
    for p in draws:
        assert 0.386 <= p.resize <= 0.55
        new_w, new_h = p.resize_dims
        assert (new_w, new_h) == (int(1600 * p.resize), int(900 * p.resize))
        # bot_pct_lim (0, 0) keeps the bottom rows.
        assert p.crop[1] == new_h - 256
        assert 0 <= p.crop[0] <= max(0, new_w - 704)
        assert p.final_size == (704, 256)
        assert -5.4 <= p.rotate <= 5.4
    flips = [p.flip for p in draws]
    assert 0.35 < np.mean(flips) < 0.65
    # Resized widths below 704 exist in the reference range; their crop starts at 0.
    assert any(p.resize_dims[0] < 704 and p.crop[0] == 0 for p in draws)


def test_bev_train_draws_stay_in_range():
    rng = np.random.default_rng(2)
    draws = [sample_bev_aug(BevAugConfig(), rng, Mode.TRAIN) for _ in range(300)]
    assert all(-22.5 <= d.rotate <= 22.5 and 0.95 <= d.scale <= 1.05 for d in draws)
    assert 0.35 < np.mean([d.flip_dx for d in draws]) < 0.65
    assert 0.35 < np.mean([d.flip_dy for d in draws]) < 0.65


def test_no_flip_when_disabled():
    cfg = ImageAugConfig(rand_flip=False)
    rng = np.random.default_rng(3)
    assert not any(sample_image_aug(cfg, rng, Mode.TRAIN).flip for _ in range(50))


def test_rng_depends_only_on_seed_epoch_index():
    def draw(seed: int, epoch: int, index: int):
        return sample_image_aug(ImageAugConfig(), sample_rng(seed, epoch, index), Mode.TRAIN)

    assert draw(0, 3, 7) == draw(0, 3, 7)
    assert draw(0, 3, 7) != draw(0, 4, 7)
    assert draw(0, 3, 7) != draw(0, 3, 8)
    assert draw(0, 3, 7) != draw(1, 3, 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resize_lim": (0.6, 0.5)}, "resize_lim"),
        ({"final_dim": (0, 704)}, "final_dim"),
        ({"rot_lim": (1.0,)}, "rot_lim"),
    ],
)
def test_invalid_image_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageAugConfig(**kwargs)


def test_invalid_bev_config():
    with pytest.raises(ValueError, match="flip_dx_ratio"):
        BevAugConfig(flip_dx_ratio=1.5)
