"""`bevlaunch build-image` against a real Docker daemon: build the cpu target offline, run the
workload in it, stop it (SIGTERM must reach it), rebuild (a cache hit), push to a local
registry and pin the digest.

The build reads a snapshot of the checkout taken when the test starts, so edits made in the
working tree while it runs cannot change the content hash between the build and the rebuild.

Cost: about 2.5-3 minutes on 2 cores with a warm cache (see docker/README.md for the measured
breakdown); a cold cache adds debootstrap and the wheel download (~1-2 min).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker_infra
import pytest

from bevlaunch.images.context import INPUTS

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BEVLAUNCH = str(Path(sys.executable).parent / "bevlaunch")
SMALL_RUN = {
    "schema": 1,
    "run": {"name": "tiny", "dir": "/tmp/run"},
    "stages": ["prepare", "train"],
    "data": {
        "root": "/tmp/data",
        "prepared_root": None,
        "synthetic": {
            "flavour": "mini", "train_scenes": 1, "val_scenes": 1, "test_scenes": 0,
            "samples_per_scene": 2, "sweeps_per_sample": 0, "seed": 0,
        },
        "image_mode": "fast",
        "num_workers": 0,
    },
    "model": {"preset": "small", "checkpoint": None, "imagenet_backbone": None},
    "training": {
        "epochs": 1, "batch_per_device": 1, "lr_per_image": 3.125e-06, "weight_decay": 1e-07,
        "lr_milestones": [1], "gradient_clip": 5.0, "precision": "32-true", "seed": 0,
        "checkpoint_every_steps": 500, "keep_checkpoints": 1, "max_steps": 1, "resume_from": None,
    },
    "eval": {"batch_per_device": 1, "checkpoint": None, "split": "val"},
    "bench": {"warmup_steps": 1, "steps": 1},
    "resources": {"accelerator": "cpu", "nodes": 1, "devices_per_node": 1},
}  # fmt: skip


@pytest.fixture(scope="module")
def docker_env() -> Iterator[dict[str, str]]:
    docker_infra.ensure_programs()
    with docker_infra.docker_daemon() as env:
        yield env


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's image inputs, frozen for the whole test."""
    root = tmp_path_factory.mktemp("checkout")
    for entry in INPUTS:
        source = REPO / entry
        if source.is_dir():
            shutil.copytree(source, root / entry, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, root / entry)
    return root


@pytest.fixture(scope="module")
def base_image(docker_env: dict[str, str]) -> str:
    return docker_infra.import_base_image(docker_env)


def build(
    env: dict[str, str], base: str, checkout: Path, cwd: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    house = docker_infra.wheelhouse(checkout / "docker" / "lock" / "cpu.txt")
    argv = [
        BEVLAUNCH, "build-image", "--target", "cpu", "--source", str(checkout),
        "--network", "none", "--wheelhouse", str(house),
        "--build-arg", f"CPU_BASE_IMAGE={base}", "--build-arg", "PIP_NO_INDEX=1", *extra,
    ]  # fmt: skip
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


def docker(env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([docker_infra.DOCKER, *args], env=env, capture_output=True, text=True,
                          **kw)  # fmt: skip


def events_of(stdout: str) -> list[dict]:
    return [
        json.loads(line.split(" ", 1)[1])
        for line in stdout.splitlines()
        if line.startswith("@@bevdepth-event ")
    ]


def stop_reaches_the_workload(env: dict[str, str], image: str, config: Path) -> None:
    """`docker stop` (SIGTERM to PID 1) interrupts the workload itself: the entrypoint execs."""
    name = f"bevlaunch-sigterm-{time.monotonic_ns()}"
    started = docker(
        env, "run", "-d", "--name", name, "--network", "none",
        "-v", f"{config}:/etc/bevlaunch:ro", image, "run", "--config", "/etc/bevlaunch/config.json",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 120
        while not events_of(docker(env, "logs", name).stdout):  # the workload is up
            assert time.monotonic() < deadline, docker(env, "logs", name).stderr[-3000:]
            time.sleep(0.5)
        pid1 = docker(env, "exec", name, "cat", "/proc/1/cmdline").stdout.split("\0")
        assert pid1[:3] == ["python", "-m", "bevdepth"], pid1
        stopped_at = time.monotonic()
        # Ignored SIGTERM (a shell in between) would mean SIGKILL after 30 s and exit code 137.
        assert docker(env, "stop", "--time", "30", name).returncode == 0
        assert time.monotonic() - stopped_at < 25
        code = docker(env, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "130", code  # bevdepth's exit code for an interrupted run
        errors = [e for e in events_of(docker(env, "logs", name).stdout) if e["kind"] == "error"]
        assert errors and errors[-1]["cause"] == "interrupted", errors
        assert "SIGTERM" in errors[-1]["message"]
    finally:
        docker(env, "rm", "--force", name)


def test_cpu_image_builds_runs_hits_the_cache_and_pushes(
    docker_env, base_image: str, checkout: Path, tmp_path: Path
) -> None:
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    first = build(docker_env, base_image, checkout, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    image = first.stdout.strip()
    assert image.startswith("bevdepth:cpu-") and "built " in first.stderr
    lap("build")

    helped = docker(docker_env, "run", "--rm", "--network", "none", image, "--help")
    assert helped.returncode == 0 and "usage: python -m bevdepth" in helped.stdout
    who = docker(docker_env, "run", "--rm", "--network", "none", image, "id", "-u")
    assert who.stdout.strip() == "1000"  # not root
    lap("help")

    config = tmp_path / "cfg"
    config.mkdir()
    (config / "config.json").write_text(json.dumps(SMALL_RUN))
    trained = docker(
        docker_env, "run", "--rm", "--network", "none", "-v", f"{config}:/etc/bevlaunch:ro",
        image, "run", "--config", "/etc/bevlaunch/config.json", timeout=900,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    events = events_of(trained.stdout)
    assert any(e.get("kind") == "progress" and e.get("step") == 1 for e in events), events
    assert events[-1]["kind"] == "done" and events[-1].get("exit_code", 0) == 0
    lap("train")

    stop_reaches_the_workload(docker_env, image, config)
    lap("sigterm")

    before = docker(docker_env, "image", "inspect", "--format", "{{.Id}}", image).stdout
    again = build(docker_env, base_image, checkout, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip() == image and "cache hit" in again.stderr
    assert "#1 " not in again.stderr  # the builder never ran
    assert docker(docker_env, "image", "inspect", "--format", "{{.Id}}", image).stdout == before
    lap("rebuild")

    with docker_infra.local_registry() as registry:
        pushed = build(
            docker_env, base_image, checkout, tmp_path, "--push", f"{registry}/team/bevdepth"
        )
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        pinned = pushed.stdout.strip()
        assert pinned.startswith(f"{registry}/team/bevdepth@sha256:")
        records = json.loads((tmp_path / ".bevlaunch" / "images.json").read_text())
        assert records["images"]["cpu"]["digest"] == pinned.split("@", 1)[1]
        lap("push")
        # The registry serves the manifest under that digest.
        remote = f"{registry}/team/bevdepth:{image.split(':', 1)[1]}"
        removed = docker(docker_env, "rmi", image, remote)
        assert removed.returncode == 0, removed.stderr
        assert docker(docker_env, "image", "inspect", pinned).returncode != 0
        pulled = docker(docker_env, "pull", pinned, timeout=600)
        assert pulled.returncode == 0, pulled.stderr
        assert "Downloaded newer image" in pulled.stdout, pulled.stdout
        assert docker(docker_env, "image", "inspect", "--format", "{{.Id}}", pinned).stdout == (
            before
        )
        lap("pull")

        # A base image the registry does not have: one line naming it and the build argument.
        missing = build(docker_env, f"{registry}/nosuch:1", checkout, tmp_path)
        assert missing.returncode == 1
        assert (
            missing.stderr.strip()
            .splitlines()[-1]
            .startswith(f"error: base image {registry}/nosuch:1 is not reachable")
        ), missing.stderr[-3000:]
    with docker_infra.local_registry(login_required=True) as locked:
        denied = build(docker_env, base_image, checkout, tmp_path, "--push", f"{locked}/team/b")
        assert denied.returncode == 1
        assert (
            denied.stderr.strip()
            .splitlines()[-1]
            .startswith(f"error: push to {locked}/team/b denied")
        ), denied.stderr[-3000:]
        assert f"docker login {locked}" in denied.stderr
    lap("errors")
    print(f"image test timings (s): {timings}")
