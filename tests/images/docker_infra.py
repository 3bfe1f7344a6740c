"""Test infrastructure for the image build test: a Docker daemon and a registry on loopback, a
local Debian base image, and a wheelhouse for offline `pip install`.

Everything started here is stopped here by PID, and its folders removed. What is slow to make
and never changes for a given input (the debootstrap rootfs, the downloaded wheels) is cached in
``$BEVLAUNCH_TEST_CACHE`` (default ``~/.cache/bevlaunch-tests``), keyed by its inputs.
Missing programs are installed with apt-get (docker.io, debootstrap, docker-registry).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

APT_PACKAGES = {
    "dockerd": "docker.io",
    "debootstrap": "debootstrap",
    "docker-registry": "docker-registry",
}
# Docker 20.10's own client: its built-in BuildKit works without the buildx plugin.
DOCKER = "/usr/bin/docker"
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv")
BASE_IMAGE = "localdebian:bookworm-python3"
# torch's +cpu wheel is not on PyPI: pip finds it through its own configuration (a find-links
# folder or the PyTorch CPU index), or in the folder $TORCH_CPU_WHEELS names.
TORCH_CPU_WHEELS_VARIABLE = "TORCH_CPU_WHEELS"


def cache_dir() -> Path:
    path = Path(os.environ.get("BEVLAUNCH_TEST_CACHE", Path.home() / ".cache" / "bevlaunch-tests"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_programs() -> None:
    """apt-get install what is missing (root and Debian's archive needed)."""
    missing = [pkg for prog, pkg in APT_PACKAGES.items() if shutil.which(prog) is None]
    if not missing and Path(DOCKER).exists():
        return
    missing = sorted(set(missing) | ({"docker.io"} if not Path(DOCKER).exists() else set()))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def _stop(pid: int, timeout: float = 30) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


@contextmanager
def docker_daemon() -> Iterator[dict[str, str]]:
    """dockerd on a unix socket in a fresh folder; yields its env.

    No bridge, no iptables rules and no ip_forward (dockerd turns it on by default even without
    a bridge): the host's network settings stay as they were.
    """
    # A short path: unix socket paths are limited to about 100 characters.
    home = Path(tempfile.mkdtemp(prefix="bevdd-", dir="/tmp"))
    sock = home / "docker.sock"
    log = (home / "dockerd.log").open("w")
    proc = subprocess.Popen(
        [
            "dockerd", "--iptables=false", "--ip-forward=false", "--bridge=none",
            "--data-root", str(home / "root"), "--exec-root", str(home / "exec"),
            "--pidfile", str(home / "dockerd.pid"), "-H", f"unix://{sock}",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([DOCKER, "version"], env=env, capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start: {(home / 'dockerd.log').read_text()}")
            time.sleep(0.5)
        yield env
    finally:
        _stop(proc.pid)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_registry(*, login_required: bool = False) -> Iterator[str]:
    """docker-registry on 127.0.0.1:<free port>; yields ``127.0.0.1:<port>``.

    ``login_required``: the registry wants a user and password (basic auth) that nobody has,
    so every push is refused.
    """
    home = Path(tempfile.mkdtemp(prefix="bevreg-"))
    port = free_port()
    config = home / "config.yml"
    text = (
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {home / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    if login_required:
        # A well-formed bcrypt entry that matches no password.
        (home / "htpasswd").write_text("nobody:$2y$05$" + "a" * 53 + "\n")
        text += f"auth:\n  htpasswd:\n    realm: test\n    path: {home / 'htpasswd'}\n"
    config.write_text(text)
    log = (home / "registry.log").open("w")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((home / "registry.log").read_text()) from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc.pid)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def debian_rootfs_tar() -> Path:
    """A minimal Debian with Python 3 as a tar (debootstrap once, then cached)."""
    key = hashlib.sha256(f"{DEBIAN_SUITE} {DEBIAN_PACKAGES}".encode()).hexdigest()[:12]
    tar = cache_dir() / f"debian-{DEBIAN_SUITE}-{key}.tar"
    if tar.exists():
        return tar
    with tempfile.TemporaryDirectory(prefix="bevroot-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE, str(rootfs), "http://deb.debian.org/debian",
            ],
            check=True, capture_output=True,
        )  # fmt: skip
        partial = tar.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tar)
    return tar


def import_base_image(env: dict[str, str]) -> str:
    with debian_rootfs_tar().open("rb") as f:
        subprocess.run([DOCKER, "import", "-", BASE_IMAGE], stdin=f, env=env, check=True,
                       capture_output=True)  # fmt: skip
    return BASE_IMAGE


def wheelhouse(lock: Path) -> Path:
    """Every wheel of ``lock`` for CPython 3.11 on Linux x86_64, downloaded once."""
    key = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
    folder = cache_dir() / f"wheelhouse-cpu-{key}"
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(exist_ok=True)
    platforms = [
        f"{tag}_x86_64"
        for tag in ("manylinux_2_36", "manylinux_2_34", "manylinux_2_28", "manylinux_2_17",
                    "manylinux2014", "manylinux2010", "manylinux1", "linux")
    ]  # fmt: skip
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.11", "-d", str(folder), "-r", str(lock),
    ]  # fmt: skip
    if os.environ.get(TORCH_CPU_WHEELS_VARIABLE):
        argv += ["--find-links", os.environ[TORCH_CPU_WHEELS_VARIABLE]]
    for platform in platforms:
        argv += ["--platform", platform]
    subprocess.run(argv, check=True)
    done.write_text("")
    return folder
