"""Builder detection and argv, failure messages, push digests, records and `image: auto`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bevlaunch.images import ImageError, ImageUsageError
from bevlaunch.images.build import (
    BuildOptions,
    check_options,
    explain_failure,
    parse_build_args,
    parse_push_digest,
)
from bevlaunch.images.builders import (
    Builder,
    BuilderKind,
    BuildRequest,
    DockerProbe,
    choose_builder,
    find_programs,
    probe_docker,
)
from bevlaunch.images.records import (
    ImageRecord,
    load_records,
    pinned_image,
    save_record,
    with_built_image,
)
from bevlaunch.spec import spec_from_dict

REPO = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32

BUILDX = DockerProbe("/usr/local/bin/docker", "28.2.2", None, buildx=True)
LEGACY_ONLY = DockerProbe("/usr/local/bin/docker", "28.2.2", None, buildx=False)
BUILTIN = DockerProbe("/usr/bin/docker", "20.10.24+dfsg1", None, buildx=False)
DAEMON_DOWN = DockerProbe(
    "/usr/bin/docker", "20.10.24", "Cannot connect to the Docker daemon at unix:///x.sock", False
)


def test_docker_with_buildx_comes_first() -> None:
    chosen = choose_builder(None, [BUILDX], ["/usr/bin/podman"], [])
    assert chosen == Builder(BuilderKind.docker, "/usr/local/bin/docker", buildx=True)


def test_a_later_docker_with_builtin_buildkit_beats_a_legacy_only_one() -> None:
    chosen = choose_builder(None, [LEGACY_ONLY, BUILTIN], [], [])
    assert chosen.program == "/usr/bin/docker" and not chosen.buildx
    assert chosen.env() == {"DOCKER_BUILDKIT": "1"}


def test_podman_then_buildah_when_docker_is_unusable() -> None:
    assert choose_builder(None, [DAEMON_DOWN], ["/p/podman"], ["/b/buildah"]).kind == "podman"
    assert choose_builder(None, [], [], ["/b/buildah"]).kind == "buildah"
    assert choose_builder(BuilderKind.buildah, [BUILDX], ["/p/podman"], ["/b/buildah"]).kind == (
        "buildah"
    )


@pytest.mark.parametrize(
    ("requested", "docker", "podman", "message"),
    [
        (None, [], [], "no image builder found: install Docker (with BuildKit), podman or buildah"),
        (None, [DAEMON_DOWN], [], "the Docker daemon is not running or not reachable"),
        (None, [LEGACY_ONLY], [], "has no BuildKit: install the docker buildx plugin"),
        (BuilderKind.docker, [DAEMON_DOWN], ["/p/podman"], "--builder docker: the Docker daemon"),
        (BuilderKind.docker, [], [], "--builder docker: no `docker` program on PATH"),
        (BuilderKind.podman, [BUILDX], [], "--builder podman: no `podman` program on PATH"),
    ],
)
def test_unusable_builders_are_one_line_errors(requested, docker, podman, message) -> None:
    with pytest.raises(ImageError) as info:
        choose_builder(requested, docker, podman, [])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_probe_reads_versions_daemon_and_buildx() -> None:
    def run(argv):
        answers = {
            "{{.Client.Version}}": (0, "20.10.24\n", ""),
            "{{.Server.Version}}": (1, "", "Cannot connect to the Docker daemon at unix:///s\n"),
            "buildx": (1, "", "docker: 'buildx' is not a docker command.\n"),
        }
        code, out, err = answers[argv[-1] if argv[1] == "version" else argv[1]]
        return subprocess.CompletedProcess(argv, code, out, err)

    probe = probe_docker("/usr/bin/docker", run)
    assert probe == DockerProbe(
        "/usr/bin/docker", "20.10.24", "Cannot connect to the Docker daemon at unix:///s", False
    )
    assert probe.builtin_buildkit


def test_find_programs_lists_every_match_on_path(tmp_path: Path) -> None:
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    for folder in ("a", "c"):
        exe = tmp_path / folder / "docker"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    (tmp_path / "b" / "docker").write_text("not executable")
    path = ":".join(str(tmp_path / f) for f in ("a", "b", "c"))
    assert find_programs("docker", path) == [str(tmp_path / "a/docker"), str(tmp_path / "c/docker")]


def test_build_argv_per_builder(tmp_path: Path) -> None:
    req = BuildRequest(
        tmp_path, "docker/Dockerfile", "cpu", "bevdepth:cpu-1", {"B": "2", "A": "1"}, "none"
    )
    tail = [
        "--file", f"{tmp_path}/docker/Dockerfile", "--target", "cpu", "--tag", "bevdepth:cpu-1",
        "--build-arg", "A=1", "--build-arg", "B=2", "--network", "none", str(tmp_path),
    ]  # fmt: skip
    assert Builder(BuilderKind.docker, "docker", buildx=True).build_argv(req) == [
        "docker", "buildx", "build", "--load", "--progress", "plain", *tail
    ]  # fmt: skip
    assert Builder(BuilderKind.docker, "docker").build_argv(req) == [
        "docker", "build", "--progress", "plain", *tail
    ]  # fmt: skip
    assert Builder(BuilderKind.podman, "podman").build_argv(req) == [
        "podman", "build", "--layers", *tail
    ]  # fmt: skip
    assert Builder(BuilderKind.buildah, "buildah").build_argv(req)[:3] == [
        "buildah", "bud", "--layers"
    ]  # fmt: skip


def options(**kw) -> BuildOptions:
    return BuildOptions(root=REPO, **kw)


def test_explain_failure_names_the_cause() -> None:
    base = explain_failure(
        [
            "#3 [internal] load metadata for docker.io/library/python:3.11-slim-bookworm",
            "#3 ERROR: failed to do request: Head https://registry-1.docker.io/v2/: "
            "dial tcp: lookup registry-1.docker.io: no such host",
        ],
        step="build",
        options=options(target="cpu"),
    )
    assert base.startswith(
        "base image docker.io/library/python:3.11-slim-bookworm is not reachable"
    )
    assert "--build-arg CPU_BASE_IMAGE=IMAGE" in base
    # Docker 20.10's BuildKit, a base image missing from a reachable registry (recorded).
    missing = explain_failure(
        [
            "#3 [internal] load metadata for 127.0.0.1:5000/nosuch:1",
            "#3 sha256:5eb00b984f65456710fc809371e1e76e060b21730c6023ba45f57f4270d834a6",
            "#3 ERROR: 127.0.0.1:5000/nosuch:1: not found",
            "failed to solve with frontend dockerfile.v0: failed to create LLB definition: "
            "127.0.0.1:5000/nosuch:1: not found",
        ],
        step="build",
        options=options(target="cpu", build_args={"CPU_BASE_IMAGE": "127.0.0.1:5000/nosuch:1"}),
    )
    assert missing.startswith("base image 127.0.0.1:5000/nosuch:1 is not reachable")
    override = explain_failure(
        ["pull access denied for nosuch, repository does not exist"],
        step="build",
        options=options(target="npu", build_args={"NPU_BASE_IMAGE": "nosuch:1"}),
    )
    assert override.startswith("base image nosuch:1 is not reachable")
    denied = explain_failure(
        ["unauthorized: authentication required"],
        step="push",
        options=options(push="registry.example.com/team/bevdepth"),
    )
    assert denied.startswith("push to registry.example.com/team/bevdepth denied")
    assert "docker login registry.example.com" in denied
    # Docker 20.10 pushing to a registry that wants a login it does not have (recorded).
    no_login = explain_failure(
        ["The push refers to repository [127.0.0.1:5000/team/x]", "da2a: Preparing",
         "no basic auth credentials"],
        step="push",
        options=options(push="127.0.0.1:5000/team/x"),
    )  # fmt: skip
    assert no_login.startswith("push to 127.0.0.1:5000/team/x denied (no basic auth credentials)")
    daemon = explain_failure(
        ["Cannot connect to the Docker daemon at unix:///var/run/docker.sock."],
        step="build",
        options=options(),
    )
    assert daemon.startswith("the Docker daemon is not running")
    other = explain_failure(
        ["#9 12.3 ERROR: No matching distribution found for torch==9.9", "#9 ERROR: exit code 1"],
        step="build",
        options=options(target="cpu"),
    )
    assert other.startswith("building the cpu image failed: ")


def test_push_digest_is_parsed_from_docker_push_output() -> None:
    lines = ["The push refers to repository [127.0.0.1:5000/bevdepth]", "abc: Pushed"]
    assert parse_push_digest(lines) is None
    assert parse_push_digest([*lines, f"cpu-1: digest: {DIGEST} size: 3041"]) == DIGEST


def test_build_options_are_checked(tmp_path: Path) -> None:
    assert parse_build_args(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(ImageUsageError, match="--build-arg '1A=2': expected KEY=VALUE"):
        parse_build_args(["1A=2"])
    with pytest.raises(ImageUsageError, match=r"--push 'reg\.io/x:tag': expected REGISTRY/REPO"):
        check_options(options(push="reg.io/x:tag"))
    with pytest.raises(ImageUsageError, match="docker/Dockerfile not found"):
        check_options(BuildOptions(root=tmp_path))
    check_options(options(target="cpu", push="127.0.0.1:5000/team/bevdepth"))


def test_records_round_trip_and_pin(tmp_path: Path) -> None:
    path = tmp_path / ".bevlaunch" / "images.json"
    assert load_records(path) == {}
    local = ImageRecord("cpu", "cpu-1", "bevdepth:cpu-1")
    save_record(path, local)
    with pytest.raises(ImageError, match="built but not pushed"):
        pinned_image(path, "cpu")
    with pytest.raises(ImageError, match="no npu image recorded"):
        pinned_image(path, "npu")
    pushed = ImageRecord("cpu", "cpu-1", "bevdepth:cpu-1", "127.0.0.1:5000/b/d:cpu-1", DIGEST)
    save_record(path, pushed)
    save_record(path, ImageRecord("npu", "npu-2", "bevdepth:npu-2"))
    assert set(json.loads(path.read_text())["images"]) == {"cpu", "npu"}
    assert pinned_image(path, "cpu") == f"127.0.0.1:5000/b/d@{DIGEST}"
    assert list(path.parent.iterdir()) == [path]  # no temporary files left


def test_image_auto_resolves_to_the_pushed_digest(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    spec = {
        "name": "r",
        "image": "auto",
        "backend": "kubernetes",
        "data": {"pvc": {"claim": "nuscenes"}},
        "output": {"pvc": {"claim": "runs"}},
        "resources": {"accelerator": "gpu"},
    }
    job = spec_from_dict(spec)
    with pytest.raises(ImageError, match="image: auto: no cuda image recorded"):
        with_built_image(job, path)
    save_record(path, ImageRecord("cuda", "cuda-1", "bevdepth:cuda-1", "reg.io/b:cuda-1", DIGEST))
    resolved = with_built_image(job, path)
    assert resolved.image == f"reg.io/b@{DIGEST}"
    assert spec_from_dict({**spec, "image": resolved.image}).image == resolved.image
    fixed = spec_from_dict({**spec, "image": "reg.io/b:1"})
    assert with_built_image(fixed, path) is fixed


def test_image_auto_of_the_reference_workload_is_the_npu_reference_image(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    job = spec_from_dict(
        {
            "name": "r",
            "image": "auto",
            "workload": "reference",
            "backend": "kubernetes",
            "data": {"pvc": {"claim": "nuscenes"}},
            "output": {"pvc": {"claim": "runs"}},
        }
    )
    save_record(path, ImageRecord("npu", "npu-1", "bevdepth:npu-1", "reg.io/b:npu-1", DIGEST))
    with pytest.raises(ImageError, match="image: auto: no npu-reference image recorded"):
        with_built_image(job, path)
    other = "b" * 64
    save_record(
        path,
        ImageRecord(
            "npu-reference", "npu-reference-1", "bevdepth:npu-reference-1",
            "reg.io/b:npu-reference-1", f"sha256:{other}",
        ),
    )  # fmt: skip
    assert with_built_image(job, path).image == f"reg.io/b@sha256:{other}"
