"""Which image builder to use, and the argv of each of its operations. Pure: probing runs through
an injected ``run`` function, so detection is tested over recorded answers.

Order when none is asked for: Docker with BuildKit (the buildx plugin, or the BuildKit built into
Docker clients before 23), then podman, then buildah. The Dockerfile needs BuildKit (cache and
bind mounts), so a Docker client whose only builder is the legacy one is skipped, and every
``docker`` on PATH is tried, not just the first.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from bevlaunch.images import ImageError

Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class BuilderKind(str, Enum):
    """An image builder program."""

    docker = "docker"
    podman = "podman"
    buildah = "buildah"


@dataclass(frozen=True)
class BuildRequest:
    """One image build: context folder, Dockerfile inside it, target, tag, arguments."""

    context: Path
    dockerfile: str
    target: str
    image: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None


@dataclass(frozen=True)
class Builder:
    """A usable builder: its program, and for Docker how it reaches BuildKit."""

    kind: BuilderKind
    program: str
    buildx: bool = False  # docker: `docker buildx build`; else the client's built-in BuildKit

    def env(self) -> dict[str, str]:
        """Variables the builder's processes need on top of the caller's environment."""
        if self.kind is BuilderKind.docker and not self.buildx:
            return {"DOCKER_BUILDKIT": "1"}
        return {}

    def build_argv(self, req: BuildRequest) -> list[str]:
        if self.kind is BuilderKind.docker:
            head = (
                [self.program, "buildx", "build", "--load"]
                if self.buildx
                else [self.program, "build"]
            )
            head += ["--progress", "plain"]
        elif self.kind is BuilderKind.podman:
            head = [self.program, "build", "--layers"]
        else:
            head = [self.program, "bud", "--layers"]
        argv = [*head, "--file", str(req.context / req.dockerfile), "--target", req.target]
        argv += ["--tag", req.image]
        for key in sorted(req.build_args):
            argv += ["--build-arg", f"{key}={req.build_args[key]}"]
        if req.network:
            argv += ["--network", req.network]
        return [*argv, str(req.context)]

    def exists_argv(self, image: str) -> list[str]:
        if self.kind is BuilderKind.docker:
            return [self.program, "image", "inspect", "--format", "{{.Id}}", image]
        if self.kind is BuilderKind.podman:
            return [self.program, "image", "exists", image]
        return [self.program, "inspect", "--type", "image", image]

    def tag_argv(self, image: str, new_name: str) -> list[str]:
        return [self.program, "tag", image, new_name]

    def push_argv(self, image: str, digest_file: Path) -> list[str]:
        if self.kind is BuilderKind.docker:
            return [self.program, "push", image]
        return [self.program, "push", "--digestfile", str(digest_file), image]


@dataclass(frozen=True)
class DockerProbe:
    """What one ``docker`` program said about itself."""

    program: str
    client_version: str | None
    daemon_error: str | None  # None: the daemon answered
    buildx: bool

    @property
    def builtin_buildkit(self) -> bool:
        # Clients from 23.0 on hand BuildKit builds to the buildx plugin only.
        major = _major(self.client_version)
        return major is not None and major < 23


def find_programs(name: str, path: str | None = None) -> list[str]:
    """Every executable called ``name`` on PATH, in PATH order, duplicates (same file) dropped."""
    seen: set[str] = set()
    out = []
    for folder in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        candidate = Path(folder or ".") / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            real = os.path.realpath(candidate)
            if real not in seen:
                seen.add(real)
                out.append(str(candidate))
    return out


def probe_docker(program: str, run: Run) -> DockerProbe:
    """Ask ``program`` for its client version, whether its daemon answers, and for buildx."""
    client = run([program, "version", "--format", "{{.Client.Version}}"])
    version = client.stdout.strip().splitlines()[0] if client.stdout.strip() else None
    server = run([program, "version", "--format", "{{.Server.Version}}"])
    daemon_error = None if server.returncode == 0 else _first_line(server.stderr or server.stdout)
    buildx = run([program, "buildx", "version"]).returncode == 0
    return DockerProbe(program, version, daemon_error, buildx)


def choose_builder(
    requested: BuilderKind | None,
    docker: Sequence[DockerProbe],
    podman: Sequence[str],
    buildah: Sequence[str],
) -> Builder:
    """The builder to use, or an :class:`ImageError` saying why none can be used.

    Args:
        requested: ``--builder``; None picks the first usable in the documented order.
        docker: probes of every ``docker`` on PATH.
        podman, buildah: those programs found on PATH.
    """
    problems: list[str] = []
    if requested in (None, BuilderKind.docker):
        for probe in docker:
            if probe.daemon_error is None and (probe.buildx or probe.builtin_buildkit):
                return Builder(BuilderKind.docker, probe.program, buildx=probe.buildx)
        problems += [_docker_problem(p) for p in docker]
        if requested is BuilderKind.docker:
            if not docker:
                raise ImageError("--builder docker: no `docker` program on PATH")
            raise ImageError("--builder docker: " + "; ".join(problems))
    if requested in (None, BuilderKind.podman) and podman:
        return Builder(BuilderKind.podman, podman[0])
    if requested in (None, BuilderKind.buildah) and buildah:
        return Builder(BuilderKind.buildah, buildah[0])
    if requested is not None:
        raise ImageError(f"--builder {requested.value}: no `{requested.value}` program on PATH")
    if problems:
        raise ImageError(
            "no usable image builder: " + "; ".join(problems) + "; or install podman or buildah"
        )
    raise ImageError(
        "no image builder found: install Docker (with BuildKit), podman or buildah, "
        "and make sure it is on PATH"
    )


def detect_builder(requested: BuilderKind | None = None, run: Run | None = None) -> Builder:
    """Probe PATH and pick a builder (see :func:`choose_builder`)."""
    run = run or _run_quietly
    docker = [] if requested not in (None, BuilderKind.docker) else find_programs("docker")
    return choose_builder(
        requested,
        [probe_docker(p, run) for p in docker],
        find_programs("podman"),
        find_programs("buildah"),
    )


def _docker_problem(probe: DockerProbe) -> str:
    if probe.daemon_error is not None:
        return (
            f"the Docker daemon is not running or not reachable ({probe.program}: "
            f"{probe.daemon_error}); start it or set DOCKER_HOST"
        )
    return (
        f"{probe.program} (client {probe.client_version}) has no BuildKit: "
        "install the docker buildx plugin"
    )


def _major(version: str | None) -> int | None:
    match = re.match(r"(\d+)\.", version or "")
    return int(match.group(1)) if match else None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no answer"


def _run_quietly(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(list(argv), 127, "", str(e))
