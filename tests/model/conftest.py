"""Shared fixtures of the model tests."""

from __future__ import annotations

import pytest
import torch

from bevdepth.model import BEVDepth, build_model


@pytest.fixture(scope="session")
def reference_model() -> BEVDepth:
    """The full reference network (about 2 s to build; shared, do not mutate its weights)."""
    torch.manual_seed(0)
    return build_model("reference")


@pytest.fixture
def small_model() -> BEVDepth:
    torch.manual_seed(0)
    return build_model("small")
