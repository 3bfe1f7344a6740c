"""`bevlaunch build-image` against a real Docker daemon: build the cpu target offline, run the
workload in it, rebuild (a cache hit), push to a local registry and pin the digest.

Cost: about 2 minutes with a warm cache (the build ~30 s, a 1-step training ~20 s, the push of
~1.7 GB ~60 s); a cold cache adds debootstrap and the wheel download (~1-2 min).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker_infra
import pytest

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


def build(env: dict[str, str], cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    base = docker_infra.import_base_image(env)
    house = docker_infra.wheelhouse(REPO / "docker" / "lock" / "cpu.txt")
    argv = [
        BEVLAUNCH, "build-image", "--target", "cpu", "--context", str(REPO),
        "--network", "none", "--wheelhouse", str(house),
        "--build-arg", f"CPU_BASE_IMAGE={base}", "--build-arg", "PIP_NO_INDEX=1", *extra,
    ]  # fmt: skip
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


def docker(env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([docker_infra.DOCKER, *args], env=env, capture_output=True, text=True,
                          **kw)  # fmt: skip


def test_cpu_image_builds_runs_hits_the_cache_and_pushes(docker_env, tmp_path: Path) -> None:
    first = build(docker_env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    image = first.stdout.strip()
    assert image.startswith("bevdepth:cpu-") and "built " in first.stderr

    helped = docker(docker_env, "run", "--rm", "--network", "none", image, "--help")
    assert helped.returncode == 0 and "usage: python -m bevdepth" in helped.stdout
    who = docker(docker_env, "run", "--rm", "--network", "none", image, "id", "-u")
    assert who.stdout.strip() == "1000"  # not root

    config = tmp_path / "cfg"
    config.mkdir()
    (config / "config.json").write_text(json.dumps(SMALL_RUN))
    trained = docker(
        docker_env, "run", "--rm", "--network", "none", "-v", f"{config}:/etc/bevlaunch:ro",
        image, "run", "--config", "/etc/bevlaunch/config.json", timeout=900,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    events = [
        json.loads(line.split(" ", 1)[1])
        for line in trained.stdout.splitlines()
        if line.startswith("@@bevdepth-event ")
    ]
    assert any(e.get("kind") == "progress" and e.get("step") == 1 for e in events), events
    assert events[-1]["kind"] == "done" and events[-1].get("exit_code", 0) == 0

    before = docker(docker_env, "image", "inspect", "--format", "{{.Id}}", image).stdout
    again = build(docker_env, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip() == image and "cache hit" in again.stderr
    assert "#1 " not in again.stderr  # the builder never ran
    assert docker(docker_env, "image", "inspect", "--format", "{{.Id}}", image).stdout == before

    with docker_infra.local_registry() as registry:
        pushed = build(docker_env, tmp_path, "--push", f"{registry}/team/bevdepth")
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        pinned = pushed.stdout.strip()
        assert pinned.startswith(f"{registry}/team/bevdepth@sha256:")
        records = json.loads((tmp_path / ".bevlaunch" / "images.json").read_text())
        assert records["images"]["cpu"]["digest"] == pinned.split("@", 1)[1]
        # The registry serves the manifest under that digest.
        docker(docker_env, "rmi", image, f"{registry}/team/bevdepth:{image.split(':', 1)[1]}")
        pulled = docker(docker_env, "pull", pinned, timeout=600)
        assert pulled.returncode == 0, pulled.stderr
    assert shutil.which("docker-registry")
