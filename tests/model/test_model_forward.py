"""End-to-end forward / backward of the model on CPU."""

from __future__ import annotations

import pytest
import torch

from bevdepth.model import BEVDepth
from bevdepth.model.geometry import camera_vector
from bevdepth.model.testing import (
    make_camera_mats,
    random_boxes,
    random_depth_labels,
    random_images,
)


def _inputs(model: BEVDepth, batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    imgs = random_images(cfg, batch, generator=gen)
    mats = make_camera_mats(cfg, batch, generator=gen)
    boxes, labels = zip(*(random_boxes(cfg, 8, generator=gen) for _ in range(batch)), strict=True)
    depth = random_depth_labels(cfg, batch, generator=gen)
    return imgs, mats, list(boxes), list(labels), depth


def _train_step(model: BEVDepth, batch: int):
    imgs, mats, boxes, labels, depth = _inputs(model, batch)
    imgs.requires_grad_(True)
    model.train()
    preds, depth_pred = model(imgs, mats)
    losses = model.loss(preds, depth_pred, boxes, labels, depth)
    losses.total.backward()
    return imgs, preds, depth_pred, losses


def test_small_preset_trains_one_step(small_model: BEVDepth) -> None:
    cfg = small_model.config
    imgs, preds, depth_pred, losses = _train_step(small_model, batch=1)
    ny, nx = cfg.grid.voxel_num[1], cfg.grid.voxel_num[0]
    assert len(preds) == 6
    assert [p["heatmap"].shape[1] for p in preds] == [1, 2, 2, 1, 2, 2]
    for pred in preds:
        assert {k: tuple(v.shape[1:]) for k, v in pred.items() if k != "heatmap"} == {
            "reg": (2, ny, nx),
            "height": (1, ny, nx),
            "dim": (3, ny, nx),
            "rot": (2, ny, nx),
            "vel": (2, ny, nx),
        }
        assert pred["heatmap"].dtype == torch.float32
    h, w = cfg.grid.feature_size
    assert depth_pred.shape == (6, cfg.grid.depth_channels, h, w)
    torch.testing.assert_close(depth_pred.sum(1), torch.ones(6, h, w))
    assert torch.isfinite(losses.detection) and losses.detection > 0
    assert torch.isfinite(losses.depth) and losses.depth > 0
    # Gradients reach the trainable parts, not the frozen stem. (Inside a residual branch only
    # the zero-initialized last BN gets a gradient at init, so check the shortcut and that BN.)
    backbone = small_model.backbone.img_backbone
    assert backbone.conv1.weight.grad is None
    assert backbone.layer1[0].downsample[0].weight.grad.abs().sum() > 0
    assert backbone.layer1[0].bn3.weight.grad.abs().sum() > 0
    assert small_model.backbone.depth_net.depth_conv[4].weight.grad.abs().sum() > 0
    assert small_model.head.task_heads[0].heatmap[1].weight.grad.abs().sum() > 0
    # The previous frame runs under no_grad (quirk 8): its images get no gradient.
    assert imgs.grad[:, 0].abs().sum() > 0
    assert bool((imgs.grad[:, 1] == 0).all())


def test_eval_returns_predictions_only_and_decodes(small_model: BEVDepth) -> None:
    imgs, mats, *_ = _inputs(small_model, batch=1)
    small_model.eval()
    with torch.no_grad():
        preds = small_model(imgs, mats)
    assert isinstance(preds, list) and isinstance(preds[0], dict)
    (detections,) = small_model.decode(preds)
    boxes, scores, labels = detections
    assert boxes.shape[1] == 9 and boxes.shape[0] == scores.shape[0] == labels.shape[0]
    assert boxes.shape[0] <= 6 * 83
    assert bool((scores > 0.1).all())
    assert labels.dtype == torch.int64 and bool(((labels >= 0) & (labels < 10)).all())


def test_bev_concatenates_current_then_previous(small_model: BEVDepth) -> None:
    imgs, mats, *_ = _inputs(small_model, batch=1)
    small_model.eval()
    captured = {}
    hook = small_model.head.register_forward_pre_hook(
        lambda module, args: captured.setdefault("bev", args[0])
    )
    try:
        with torch.no_grad():
            small_model(imgs, mats)
            params = camera_vector(mats)
            current = small_model.backbone._forward_frame(imgs, mats, params, frame=0)[0]
            previous = small_model.backbone._forward_frame(imgs, mats, params, frame=1)[0]
    finally:
        hook.remove()
    channels = small_model.config.output_channels
    assert not torch.allclose(current, previous)
    torch.testing.assert_close(captured["bev"][:, :channels], current)
    torch.testing.assert_close(captured["bev"][:, channels:], previous)


def test_wrong_frame_count_is_rejected(small_model: BEVDepth) -> None:
    imgs, mats, *_ = _inputs(small_model, batch=1)
    with pytest.raises(ValueError, match="expected 2 frames"):
        small_model(imgs[:, :1], mats)


@pytest.mark.slow
def test_reference_preset_forward_backward(reference_model: BEVDepth) -> None:
    reference_model.zero_grad(set_to_none=True)
    try:
        _, preds, depth_pred, losses = _train_step(reference_model, batch=1)
        assert preds[0]["heatmap"].shape == (1, 1, 128, 128)
        assert depth_pred.shape == (6, 112, 16, 44)
        assert torch.isfinite(losses.total)
        assert reference_model.backbone.depth_net.depth_conv[5].weight.grad.abs().sum() > 0
        assert reference_model.head.trunk.conv1.weight.grad.abs().sum() > 0
    finally:
        reference_model.zero_grad(set_to_none=True)
        reference_model.eval()


def test_head_runs_in_float32_under_autocast(small_model: BEVDepth) -> None:
    cfg = small_model.config
    bev = torch.randn(1, cfg.bev_channels, *cfg.grid.voxel_num[1::-1], dtype=torch.bfloat16)
    small_model.eval()
    with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        preds = small_model.head(bev)
        outside = small_model.head.shared_conv.conv(torch.randn(1, 64, 4, 4))
    assert outside.dtype == torch.bfloat16  # autocast is really on around the head
    assert all(v.dtype == torch.float32 for pred in preds for v in pred.values())
