"""The module tree reproduces the reference checkpoint layout and its init quirks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from bevdepth.model import BEVDepth

KEYS_FILE = Path(__file__).parent / "data" / "bevdepth-state-dict-keys.txt"

# Parameter counts per part from the reference fact sheet (section 6), conv/linear/BN params.
PART_PARAMS = {
    "backbone.img_backbone": 23_508_032,
    "backbone.img_neck": 1_967_104,
    "backbone.depth_net": 27_817_736,
    "head.trunk": 18_571_200,
    "head.neck": 3_000_832,
    "head.shared_conv": 147_584,
    "head.task_heads": 1_372_102,
}


def reference_keys() -> list[tuple[str, list[int]]]:
    rows = []
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        rows.append((key, [int(v) for v in shape.strip("[]").split(",") if v.strip()]))
    return rows


def test_state_dict_keys_and_shapes_match_reference_in_order(reference_model: BEVDepth) -> None:
    expected = reference_keys()
    assert len(expected) == 861
    actual = [(key, list(value.shape)) for key, value in reference_model.state_dict().items()]
    assert actual == expected


def test_parameter_counts_match_reference(reference_model: BEVDepth) -> None:
    for prefix, count in PART_PARAMS.items():
        module = reference_model.get_submodule(prefix)
        assert sum(p.numel() for p in module.parameters()) == count, prefix
    trainable = sum(p.numel() for p in reference_model.parameters() if p.requires_grad)
    # 76.375 M trainable: everything but the frozen stem conv1 (9408) and bn1 (128).
    assert trainable == sum(PART_PARAMS.values()) - 9408 - 128 == 76_375_054


def test_buffers_hold_reference_grid(reference_model: BEVDepth) -> None:
    state = reference_model.state_dict()
    torch.testing.assert_close(state["backbone.voxel_size"], torch.tensor([0.8, 0.8, 8.0]))
    torch.testing.assert_close(state["backbone.voxel_coord"], torch.tensor([-50.8, -50.8, -1.0]))
    assert state["backbone.voxel_num"].dtype == torch.int64
    assert state["backbone.voxel_num"].tolist() == [128, 128, 1]
    frustum = state["backbone.frustum"]
    # u / v are linspace over the full input (quirk 3): u step 703/43, not 16.
    assert frustum[0, 0, 1, 0].item() == pytest.approx(703 / 43)
    assert frustum[0, 0, -1, 0].item() == pytest.approx(703)
    assert frustum[0, -1, 0, 1].item() == pytest.approx(255)
    assert frustum[:, 0, 0, 2].tolist() == pytest.approx([2.0 + 0.5 * i for i in range(112)])
    assert bool((frustum[..., 3] == 1).all())


def test_stem_is_frozen_and_its_bn_stays_in_eval(reference_model: BEVDepth) -> None:
    backbone = reference_model.backbone.img_backbone
    assert not backbone.conv1.weight.requires_grad
    assert not any(p.requires_grad for p in backbone.bn1.parameters())
    assert backbone.layer1[0].conv1.weight.requires_grad
    reference_model.train()
    try:
        assert not backbone.bn1.training
        assert backbone.layer1[0].bn1.training
        assert reference_model.head.trunk.bn1.training  # the BEV trunk stem is not frozen
    finally:
        reference_model.eval()


def test_init_quirks(reference_model: BEVDepth) -> None:
    head = reference_model.head
    depth_conv = reference_model.backbone.depth_net.depth_conv
    # DCN offsets start at zero; its weight has groups=4 (quirk 7).
    assert bool((depth_conv[4].conv_offset.weight == 0).all())
    assert bool((depth_conv[4].conv_offset.bias == 0).all())
    assert isinstance(depth_conv[3].dropout, nn.Dropout) and depth_conv[3].dropout.p == 0.5
    # Zero-init residual in the BEV trunk (quirk 9 / mmdet init_weights).
    for stage in ("layer1", "layer2", "layer3"):
        for block in getattr(head.trunk, stage):
            assert bool((block.bn2.weight == 0).all())
    # No heatmap bias of -2.19: the final convs keep PyTorch's default uniform init (quirk 10).
    for task in head.task_heads:
        bias = task.heatmap[1].bias
        bound = 1 / math.sqrt(64 * 3 * 3)
        assert bool((bias.abs() <= bound).all())
    # SECONDFPN norm: BN(eps 1e-3, momentum 0.01); DepthNet BN keeps the PyTorch defaults.
    assert head.neck.deblocks[0][1].eps == 1e-3 and head.neck.deblocks[0][1].momentum == 0.01
    assert reference_model.backbone.depth_net.bn.eps == 1e-5
