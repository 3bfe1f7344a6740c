"""``bevlaunch build-image``: hash the inputs, build unless that tag exists, push, record.

The subprocesses (builder probes, build, tag, push) live here; what they mean is decided by pure
functions (:func:`explain_failure`, :func:`parse_push_digest`) that the tests call directly.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bevlaunch.images import ImageError, ImageUsageError
from bevlaunch.images.builders import Builder, BuilderKind, BuildRequest, detect_builder
from bevlaunch.images.context import DOCKERFILE, collect_inputs, stage_context
from bevlaunch.images.records import RECORDS_PATH, ImageRecord, save_record

TARGETS = ("npu", "npu-reference", "cuda", "cpu")
LOCAL_REPOSITORY = "bevdepth"
# The build argument naming each target's base image (docker/Dockerfile's ARG block).
BASE_IMAGE_ARGS = {
    "npu": "NPU_BASE_IMAGE",
    "npu-reference": "NPU_BASE_IMAGE",
    "cuda": "CUDA_BASE_IMAGE",
    "cpu": "CPU_BASE_IMAGE",
}
_BUILD_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_REPOSITORY = re.compile(r"^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$")
_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
# BuildKit resolves each FROM image in a step of its own: `#3 [internal] load metadata for IMAGE`;
# that step failing (`#3 ERROR: ...`) means the base image could not be found or pulled.
_METADATA_STEP = re.compile(r"^#(\d+) \[internal\] load metadata for (\S+)")
# The builder's last lines kept for error messages.
TAIL_LINES = 40


@dataclass(frozen=True)
class BuildOptions:
    """What ``bevlaunch build-image`` was asked to do."""

    root: Path
    target: str = "npu"
    build_args: Mapping[str, str] = field(default_factory=dict)
    push: str | None = None  # REGISTRY/REPO
    builder: BuilderKind | None = None
    network: str | None = None
    wheelhouse: Path | None = None
    records_path: Path = RECORDS_PATH  # relative: to the current directory, like `image: auto`


@dataclass(frozen=True)
class BuildResult:
    """The outcome: the local image, whether it was already there, and the pushed image."""

    record: ImageRecord
    cache_hit: bool
    seconds: float


def parse_build_args(items: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings → dict; a malformed one is a usage error naming it."""
    out: dict[str, str] = {}
    for item in items:
        if not _BUILD_ARG.match(item):
            raise ImageUsageError(f"--build-arg {item!r}: expected KEY=VALUE (KEY a shell name)")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def check_options(options: BuildOptions) -> None:
    """Usage errors before anything runs."""
    if options.target not in TARGETS:
        raise ImageUsageError(f"--target {options.target!r}: expected one of {', '.join(TARGETS)}")
    if not (options.root / DOCKERFILE).is_file():
        raise ImageUsageError(
            f"{options.root / DOCKERFILE} not found: run build-image from a bevlaunch checkout "
            "or pass --source CHECKOUT"
        )
    if options.push is not None and not _REPOSITORY.match(options.push):
        raise ImageUsageError(
            f"--push {options.push!r}: expected REGISTRY/REPO without a tag, "
            "e.g. registry.example.com/bevdepth"
        )
    if options.wheelhouse is not None and not options.wheelhouse.is_dir():
        raise ImageUsageError(f"--wheelhouse {options.wheelhouse}: not a folder")


def explain_failure(output: Iterable[str], *, step: str, options: BuildOptions) -> str:
    """One line saying why ``step`` (build, push) failed, from the builder's output."""
    text = "\n".join(output)
    low = text.lower()
    last = _last_error_line(text)
    if "cannot connect to the docker daemon" in low or "is the docker daemon running" in low:
        return "the Docker daemon is not running or not reachable; start it or set DOCKER_HOST"
    if step == "push":
        denied = ("denied", "unauthorized", "authentication required", "no basic auth", "403")
        if any(s in low for s in denied):
            registry = (options.push or "").split("/", 1)[0]
            return (
                f"push to {options.push} denied ({last}); log in first "
                f"(`docker login {registry}`) or check the repository's permissions"
            )
        return f"push to {options.push} failed: {last}"
    base_markers = (
        "pull access denied",
        "manifest unknown",
        "failed to resolve source metadata",
        "repository does not exist",
        "no such host",
        "failed to do request",
        "error pulling image",
        "initializing source",
        "did not resolve to an alias",
        "not found: manifest",
        "failed to authorize",
    )
    unresolved = _unresolved_base(text)
    if unresolved is not None or any(m in low for m in base_markers):
        arg = BASE_IMAGE_ARGS[options.target]
        base = unresolved or options.build_args.get(arg, f"the default {arg}")
        return (
            f"base image {base} is not reachable ({last}); check the registry and network, "
            f"or pass --build-arg {arg}=IMAGE"
        )
    return f"building the {options.target} image failed: {last} (full log: see above)"


def _unresolved_base(text: str) -> str | None:
    """The image of a BuildKit ``load metadata for IMAGE`` step that failed, if any."""
    steps: dict[str, str] = {}
    for line in text.splitlines():
        match = _METADATA_STEP.match(line)
        if match:
            steps[match.group(1)] = match.group(2)
        elif line.startswith("#") and " ERROR" in line:
            failed = steps.get(line[1:].split(" ", 1)[0])
            if failed is not None:
                return failed
    return None


def parse_push_digest(output: Iterable[str]) -> str | None:
    """The manifest digest ``docker push`` printed (``... digest: sha256:... size: N``)."""
    found = None
    for line in output:
        match = _DIGEST.search(line)
        if match:
            found = match.group(1)
    return found


Show = Callable[[str], None]


def build_image(options: BuildOptions, *, show: Show, status: Callable[[str], None]) -> BuildResult:
    """Build ``options.target`` unless its content-hash tag exists, push it, record it.

    Args:
        show: receives each line of the builder's output (the CLI prints it dimmed).
        status: receives a short line whenever the build moves to a new step.
    """
    check_options(options)
    started = time.monotonic()
    builder = detect_builder(options.builder)
    inputs = collect_inputs(options.root, options.target, options.build_args, options.wheelhouse)
    with tempfile.TemporaryDirectory(prefix="bevlaunch-context-") as tmp:
        # The tag is the hash of the staged copy, the bytes the builder sees: a file edited
        # in the checkout meanwhile cannot end up under a tag that does not describe it.
        context = stage_context(inputs, Path(tmp))
        tag = collect_inputs(context, options.target, options.build_args).tag()
        image = f"{LOCAL_REPOSITORY}:{tag}"
        cache_hit = _run(builder, builder.exists_argv(image)).returncode == 0
        if not cache_hit:
            request = BuildRequest(
                context=context,
                dockerfile=DOCKERFILE,
                target=options.target,
                image=image,
                build_args=options.build_args,
                network=options.network,
            )
            code, tail = _stream(builder, builder.build_argv(request), show, status)
            if code != 0:
                raise ImageError(explain_failure(tail, step="build", options=options))
    record = ImageRecord(target=options.target, tag=tag, image=image)
    if options.push is not None:
        record = _push(builder, record, options, show, status)
    save_record(options.records_path, record)
    return BuildResult(record=record, cache_hit=cache_hit, seconds=time.monotonic() - started)


def _push(
    builder: Builder, record: ImageRecord, options: BuildOptions, show: Show, status: Show
) -> ImageRecord:
    remote = f"{options.push}:{record.tag}"
    tagged = _run(builder, builder.tag_argv(record.image, remote))
    if tagged.returncode != 0:
        raise ImageError(
            f"tagging {record.image} as {remote} failed: {_last_error_line(tagged.stderr)}"
        )
    status(f"pushing {remote}")
    with tempfile.TemporaryDirectory(prefix="bevlaunch-push-") as tmp:
        digest_file = Path(tmp) / "digest"
        code, tail = _stream(builder, builder.push_argv(remote, digest_file), show, status)
        if code != 0:
            raise ImageError(explain_failure(tail, step="push", options=options))
        digest = parse_push_digest(tail)
        if digest is None and digest_file.exists():
            digest = digest_file.read_text().strip() or None
    if digest is None:
        raise ImageError(f"pushed {remote} but the builder reported no digest; push again")
    return ImageRecord(record.target, record.tag, record.image, pushed=remote, digest=digest)


def _env(builder: Builder) -> dict[str, str]:
    return {**os.environ, **builder.env()}


def _run(builder: Builder, argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, env=_env(builder), check=False, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(argv, 127, "", str(e))


_STEP = re.compile(r"^(#\d+ \[[^\]]+\].*|STEP \d+/\d+:.*|Step \d+/\d+ :.*)$")


def _stream(builder: Builder, argv: list[str], show: Show, status: Show) -> tuple[int, list[str]]:
    """Run ``argv``, passing each output line on; return the exit code and the last lines."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    digest_lines: list[str] = []
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(builder),
            bufsize=1,
        )
    except OSError as e:
        raise ImageError(f"could not start {argv[0]}: {e}") from e
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            if _DIGEST.search(line):
                digest_lines.append(line)
            if _STEP.match(line):
                status(line[:120])
            show(line)
        code = proc.wait()
    except BaseException:
        # Ctrl-C: stop the builder rather than leave it running behind us.
        proc.terminate()
        proc.wait()
        raise
    return code, [*tail, *digest_lines]


def _last_error_line(text: str) -> str:
    """The builder's most telling line: the last one that mentions an error, else the last."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"error|denied|unauthorized|failed|not found", line, re.IGNORECASE):
            return line[:300]
    return lines[-1][:300] if lines else "no output"
