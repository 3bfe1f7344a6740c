"""`bevlaunch build-image` failures end to end: the real CLI, builder detection and build flow,
against a stand-in `docker` on an otherwise empty PATH. Each failure is one line on stderr
that names what to change, with exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BEVLAUNCH = str(Path(sys.executable).parent / "bevlaunch")

# A docker 20.10 client (built-in BuildKit, no buildx). FAKE_DOCKER says what goes wrong:
# daemon-down, no-base (the build cannot resolve its FROM image) or push-denied. The build
# and push output is what Docker 20.10 printed in those cases here.
FAKE_DOCKER = r"""#!/bin/sh
case "$1" in
  version)
    case "$3" in *Client*) echo 20.10.24; exit 0 ;; esac
    if [ "$FAKE_DOCKER" = daemon-down ]; then
      echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." \
        "Is the docker daemon running?" >&2
      exit 1
    fi
    echo 20.10.24 ;;
  buildx) echo "docker: 'buildx' is not a docker command." >&2; exit 1 ;;
  image) [ "$FAKE_DOCKER" = push-denied ] ;;  # `image inspect`: only there to push
  build)
    echo "#3 [internal] load metadata for 127.0.0.1:5000/nosuch:1"
    echo "#3 ERROR: 127.0.0.1:5000/nosuch:1: not found"
    echo "failed to solve with frontend dockerfile.v0: failed to create LLB definition:" \
      "127.0.0.1:5000/nosuch:1: not found" >&2
    exit 1 ;;
  tag) ;;
  push)
    echo "The push refers to repository [127.0.0.1:5000/team/bevdepth]"
    echo "no basic auth credentials" >&2
    exit 1 ;;
  *) exit 2 ;;
esac
"""


def build_image(tmp_path: Path, mode: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "COLUMNS": "200"}
    if mode is not None:
        (bin_dir / "docker").write_text(FAKE_DOCKER)
        (bin_dir / "docker").chmod(0o755)
        env["FAKE_DOCKER"] = mode
    argv = [BEVLAUNCH, "build-image", "--target", "cpu", "--source", str(REPO), *args]
    return subprocess.run(
        argv, cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_no_builder_on_path(tmp_path: Path) -> None:
    line = error_line(build_image(tmp_path, None))
    assert line == (
        "error: no image builder found: install Docker (with BuildKit), podman or buildah, "
        "and make sure it is on PATH"
    )


def test_docker_daemon_not_running(tmp_path: Path) -> None:
    line = error_line(build_image(tmp_path, "daemon-down"))
    assert "the Docker daemon is not running or not reachable" in line
    assert "start it or set DOCKER_HOST" in line


def test_base_image_not_reachable(tmp_path: Path) -> None:
    result = build_image(
        tmp_path, "no-base", "--build-arg", "CPU_BASE_IMAGE=127.0.0.1:5000/nosuch:1"
    )
    line = error_line(result)
    assert line.startswith("error: base image 127.0.0.1:5000/nosuch:1 is not reachable")
    assert line.endswith("or pass --build-arg CPU_BASE_IMAGE=IMAGE")


def test_the_npu_reference_target_builds_from_the_npu_base(tmp_path: Path) -> None:
    result = build_image(
        tmp_path, "no-base", "--target", "npu-reference",
        "--build-arg", "NPU_BASE_IMAGE=127.0.0.1:5000/nosuch:1",
    )  # fmt: skip
    line = error_line(result)
    assert line.startswith("error: base image 127.0.0.1:5000/nosuch:1 is not reachable")
    assert line.endswith("or pass --build-arg NPU_BASE_IMAGE=IMAGE")


def test_push_denied(tmp_path: Path) -> None:
    line = error_line(
        build_image(tmp_path, "push-denied", "--push", "127.0.0.1:5000/team/bevdepth")
    )
    assert line.startswith("error: push to 127.0.0.1:5000/team/bevdepth denied")
    assert "log in first (`docker login 127.0.0.1:5000`)" in line
    assert not (tmp_path / ".bevlaunch").exists()  # nothing recorded for a failed push


@pytest.mark.parametrize("args", [["--target", "tpu"], ["--build-arg", "NOEQUALS"]])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = build_image(tmp_path, "daemon-down", *args)
    assert result.returncode == 2, result.stderr
