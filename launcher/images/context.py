"""What goes into an image, and its content hash (the image tag). Pure apart from reading files.

The build context is staged from ``INPUTS`` alone (plus the wheelhouse), so the tag covers
exactly what the builder sees: the Dockerfile, entrypoint and lock files, ``patches/``, our
source and ``pyproject.toml``, the target and the build arguments. Caches and local clutter
(``__pycache__``, ``*.pyc``, virtual environments, ``data/``, ``runs/``) are never inputs.
The repository's ``.dockerignore`` mirrors ``INPUTS`` for builds by hand (a test keeps them equal).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# Paths relative to the repository root: files, or folders taken whole (minus IGNORED).
INPUTS = (
    "README.md",
    "pyproject.toml",
    "docker",
    "launcher",
    "bevdepth",
    "patches",
)
DOCKERFILE = "docker/Dockerfile"
WHEELHOUSE = "docker/wheelhouse"
# Folder and file names that are never inputs, wherever they are.
IGNORED_DIRS = frozenset({"__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache"})
IGNORED_SUFFIXES = (".pyc", ".pyo")
WHEEL_SUFFIXES = (".whl", ".tar.gz", ".zip")
# Bump when the hashing scheme changes, so old tags are not mistaken for new ones.
HASH_SCHEME = "bevlaunch-image-v1"


@dataclass(frozen=True)
class ImageInputs:
    """Everything an image is built from; ``digest()`` is its content hash."""

    root: Path
    target: str
    files: tuple[str, ...]  # repository-relative posix paths, sorted
    build_args: Mapping[str, str] = field(default_factory=dict)
    wheels: tuple[Path, ...] = ()  # files of the wheelhouse, sorted by name

    def digest(self) -> str:
        """sha256 (hex) over the scheme, target, build arguments and every file's content."""
        h = hashlib.sha256()
        _feed(h, "scheme", HASH_SCHEME)
        _feed(h, "target", self.target)
        for key in sorted(self.build_args):
            _feed(h, "arg", f"{key}={self.build_args[key]}")
        for rel in self.files:
            path = self.root / rel
            mode = "x" if os.access(path, os.X_OK) else "-"
            _feed(h, "file", f"{rel}\0{mode}\0{_file_digest(path)}")
        for wheel in self.wheels:
            _feed(h, "wheel", f"{wheel.name}\0{_file_digest(wheel)}")
        return h.hexdigest()

    def tag(self, length: int = 16) -> str:
        """The image tag: ``<target>-<first hex digits of the digest>``."""
        return f"{self.target}-{self.digest()[:length]}"


def collect_inputs(
    root: Path,
    target: str,
    build_args: Mapping[str, str] | None = None,
    wheelhouse: Path | None = None,
) -> ImageInputs:
    """The inputs of ``target`` under ``root``; ``wheelhouse`` defaults to docker/wheelhouse."""
    files = sorted(_walk(root))
    house = root / WHEELHOUSE if wheelhouse is None else wheelhouse
    return ImageInputs(
        root=root,
        target=target,
        files=tuple(files),
        build_args=dict(build_args or {}),
        wheels=tuple(sorted(wheel_files(house), key=lambda p: p.name)),
    )


def wheel_files(folder: Path) -> list[Path]:
    """Package files (wheels, sdists) directly in ``folder``; none when it does not exist."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and p.name.endswith(WHEEL_SUFFIXES)]


def stage_context(inputs: ImageInputs, dest: Path) -> Path:
    """Copy the inputs into ``dest`` (same layout) and link the wheels into its wheelhouse.

    Returns ``dest``. Wheels are hard-linked where the file system allows (they can be large).
    """
    for rel in inputs.files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(inputs.root / rel, target)
    house = dest / WHEELHOUSE
    house.mkdir(parents=True, exist_ok=True)
    for wheel in inputs.wheels:
        try:
            os.link(wheel, house / wheel.name)
        except OSError:
            shutil.copy2(wheel, house / wheel.name)
    return dest


def dockerignore_entries(text: str) -> list[str]:
    """The re-included paths (``!path``) of a ``.dockerignore``, without trailing slashes."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("!"):
            out.append(line[1:].rstrip("/"))
    return out


def _walk(root: Path) -> Iterable[str]:
    for entry in INPUTS:
        path = root / entry
        if path.is_file():
            yield entry
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                here = Path(dirpath)
                rel_dir = here.relative_to(root)
                dirnames[:] = sorted(d for d in dirnames if not _ignored_dir(rel_dir / d, d))
                for name in filenames:
                    rel = PurePosixPath(*(rel_dir / name).parts)
                    if not name.endswith(IGNORED_SUFFIXES):
                        yield str(rel)


def _ignored_dir(rel: Path, name: str) -> bool:
    # The wheelhouse counts by its package files (ImageInputs.wheels), staged separately.
    wheelhouse = PurePosixPath(*rel.parts) == PurePosixPath(WHEELHOUSE)
    return name in IGNORED_DIRS or name.endswith(".egg-info") or wheelhouse


def _feed(h: hashlib._Hash, kind: str, text: str) -> None:
    data = text.encode()
    h.update(f"{kind}:{len(data)}:".encode())
    h.update(data)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
