"""Load reference BEVDepth checkpoints and ImageNet ResNet-50 weights.

Module attribute names equal the reference keys, so no renaming is needed: a reference state dict
only loses its Lightning ``model.`` prefix (:func:`convert_state_dict`).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from bevdepth.model.bevdepth import BEVDepth

LIGHTNING_PREFIX = "model."
"""Lightning (and the EMA callback) store ``BaseBEVDepth`` under ``self.model``."""

_SHOWN = 5


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model; the message lists what differs."""


def read_state_dict(
    path: str | os.PathLike[str], *, weights_only: bool = True
) -> dict[str, Tensor]:
    """Tensors of a ``.ckpt`` / ``.pth`` file: its ``state_dict`` entry or the file itself.

    Args:
        path: local file.
        weights_only: refuse arbitrary pickled objects (safe default). Pass False only for a
            trusted file whose extra entries (e.g. Lightning hyper-parameters) need it.

    Raises:
        FileNotFoundError: no such file.
        CheckpointMismatchError: the file holds no tensor mapping.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as e:
        raise CheckpointMismatchError(
            f"{path} contains pickled objects other than tensors; if you trust the file, call "
            f"again with weights_only=False"
        ) from e
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise CheckpointMismatchError(
            f"{path} holds no state dict: expected a mapping of tensors or a dict with a "
            f"'state_dict' entry"
        )
    return dict(data)


def convert_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Reference keys -> model keys: strip the ``model.`` prefix when every key has it."""
    if state and all(key.startswith(LIGHTNING_PREFIX) for key in state):
        return {key[len(LIGHTNING_PREFIX) :]: value for key, value in state.items()}
    return dict(state)


def load_state_dict_strict(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """``module.load_state_dict(state)`` with every key and shape checked first.

    Raises:
        CheckpointMismatchError: listing missing, unexpected and shape-mismatched keys (the first
            few of each, with counts).
    """
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    problems = [
        _describe("missing", missing),
        _describe("unexpected", unexpected),
        _describe("shape-mismatched", mismatched),
    ]
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointMismatchError(
            f"{source} does not match the model ({len(expected)} keys):\n" + "\n".join(problems)
        )
    module.load_state_dict(state, strict=True)


def load_reference_checkpoint(
    model: BEVDepth, path: str | os.PathLike[str], *, weights_only: bool = True
) -> None:
    """Load a reference BEVDepth checkpoint into ``model`` with strict key and shape matching.

    Accepts a Lightning ``.ckpt`` (``state_dict`` with ``model.``-prefixed keys) or a plain
    ``.pth`` state dict with or without the prefix.

    Raises:
        CheckpointMismatchError: when keys or shapes differ.
    """
    state = convert_state_dict(read_state_dict(path, weights_only=weights_only))
    load_state_dict_strict(model, state, os.fspath(path))


def load_imagenet_backbone(model: BEVDepth, path: str | os.PathLike[str]) -> None:
    """Load torchvision ResNet-50 ImageNet weights (e.g. ``resnet50-0676ba61.pth``).

    The torchvision key names equal those of ``backbone.img_backbone``; the classifier ``fc.*``
    is dropped, as mmcv's non-strict pretrained loading does.

    Raises:
        CheckpointMismatchError: when any backbone key is missing or has another shape.
    """
    state = read_state_dict(path)
    state = {key: value for key, value in state.items() if not key.startswith("fc.")}
    load_state_dict_strict(model.backbone.img_backbone, state, os.fspath(path))


def _describe(kind: str, keys: list[str]) -> str:
    if not keys:
        return ""
    shown = "\n    ".join(keys[:_SHOWN])
    more = f"\n    ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return f"  {len(keys)} {kind}:\n    {shown}{more}"
