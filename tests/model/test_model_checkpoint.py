"""Reference checkpoints and ImageNet weights load strictly, with clear errors on mismatch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bevdepth.model import (
    BEVDepth,
    CheckpointMismatchError,
    build_model,
    load_imagenet_backbone,
    load_reference_checkpoint,
)
from bevdepth.model.checkpoint import convert_state_dict


def _randomized_state(model: BEVDepth, seed: int = 7) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            state[key] = torch.randn(value.shape, generator=gen)
        else:
            state[key] = value.clone() + 3
    return state


def _assert_loaded(model: BEVDepth, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, msg=key)


def test_lightning_checkpoint_with_model_prefix_round_trips(tmp_path: Path) -> None:
    state = _randomized_state(build_model("small"))
    path = tmp_path / "epoch=23-step=10536.ckpt"
    ckpt = {"epoch": 23, "state_dict": {f"model.{k}": v for k, v in state.items()}}
    torch.save(ckpt, path)
    model = build_model("small")
    load_reference_checkpoint(model, path)
    _assert_loaded(model, state)


def test_plain_pth_with_and_without_prefix_round_trips(tmp_path: Path) -> None:
    state = _randomized_state(build_model("small"), seed=8)
    for name, saved in (
        ("plain.pth", state),
        ("prefixed.pth", {f"model.{k}": v for k, v in state.items()}),
    ):
        torch.save(saved, tmp_path / name)
        model = build_model("small")
        load_reference_checkpoint(model, tmp_path / name)
        _assert_loaded(model, state)


def test_prefix_is_only_stripped_when_every_key_has_it() -> None:
    state = {"model.a": torch.zeros(1), "b": torch.zeros(1)}
    assert list(convert_state_dict(state)) == ["model.a", "b"]


def test_mismatch_lists_missing_unexpected_and_shape_keys(tmp_path: Path) -> None:
    state = _randomized_state(build_model("small"))
    del state["head.shared_conv.conv.weight"]
    state["head.extra.weight"] = torch.zeros(3)
    state["backbone.depth_net.bn.weight"] = torch.zeros(26)
    torch.save(state, tmp_path / "bad.pth")
    model = build_model("small")
    before = model.state_dict()["backbone.depth_net.bn.weight"].clone()
    with pytest.raises(CheckpointMismatchError) as info:
        load_reference_checkpoint(model, tmp_path / "bad.pth")
    message = str(info.value)
    assert "1 missing" in message and "head.shared_conv.conv.weight" in message
    assert "1 unexpected" in message and "head.extra.weight" in message
    assert "1 shape-mismatched" in message
    assert "backbone.depth_net.bn.weight: checkpoint (26,) vs model (27,)" in message
    # Nothing was loaded.
    torch.testing.assert_close(model.state_dict()["backbone.depth_net.bn.weight"], before)


def test_reference_checkpoint_does_not_fit_the_small_model(tmp_path: Path) -> None:
    state = {k: torch.zeros(1) for k in ["backbone.frustum", *[f"head.x{i}" for i in range(9)]]}
    torch.save({"state_dict": state}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"9 unexpected:[\s\S]*and 4 more"):
        load_reference_checkpoint(build_model("small"), tmp_path / "other.ckpt")


def torchvision_resnet50_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random weights under torchvision's ResNet-50 key names and shapes (incl. ``fc``)."""

    def bn(prefix: str, channels: int) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.weight": torch.rand(channels, generator=gen),
            f"{prefix}.bias": torch.randn(channels, generator=gen),
            f"{prefix}.running_mean": torch.randn(channels, generator=gen),
            f"{prefix}.running_var": torch.rand(channels, generator=gen),
            f"{prefix}.num_batches_tracked": torch.tensor(0),
        }

    state = {"conv1.weight": torch.randn(64, 3, 7, 7, generator=gen), **bn("bn1", 64)}
    in_ch = 64
    for stage, (blocks, planes) in enumerate(
        zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True), start=1
    ):
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            state[f"{p}.conv1.weight"] = torch.randn(planes, in_ch, 1, 1, generator=gen)
            state.update(bn(f"{p}.bn1", planes))
            state[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=gen)
            state.update(bn(f"{p}.bn2", planes))
            state[f"{p}.conv3.weight"] = torch.randn(planes * 4, planes, 1, 1, generator=gen)
            state.update(bn(f"{p}.bn3", planes * 4))
            if block == 0:
                state[f"{p}.downsample.0.weight"] = torch.randn(
                    planes * 4, in_ch, 1, 1, generator=gen
                )
                state.update(bn(f"{p}.downsample.1", planes * 4))
            in_ch = planes * 4
    state["fc.weight"] = torch.randn(1000, 2048, generator=gen)
    state["fc.bias"] = torch.randn(1000, generator=gen)
    return state


def test_imagenet_weights_load_into_the_image_backbone(tmp_path: Path) -> None:
    state = torchvision_resnet50_state(torch.Generator().manual_seed(0))
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(state, path)
    model = build_model("reference")
    head_before = model.head.shared_conv.conv.weight.clone()
    load_imagenet_backbone(model, path)
    loaded = model.backbone.img_backbone.state_dict()
    assert len(loaded) == len(state) - 2
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], msg=key)
    torch.testing.assert_close(model.head.shared_conv.conv.weight, head_before)


def test_imagenet_weights_of_another_shape_are_rejected(tmp_path: Path) -> None:
    state = torchvision_resnet50_state(torch.Generator().manual_seed(0))
    torch.save(state, tmp_path / "resnet50.pth")
    # The small preset has a narrow ResNet: every conv differs in shape.
    with pytest.raises(CheckpointMismatchError, match="shape-mismatched"):
        load_imagenet_backbone(build_model("small"), tmp_path / "resnet50.pth")


def test_non_tensor_pickles_are_refused_by_default(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "callback": Path("x")}, tmp_path / "odd.ckpt")
    with pytest.raises(CheckpointMismatchError, match="weights_only=False"):
        load_reference_checkpoint(build_model("small"), tmp_path / "odd.ckpt")
