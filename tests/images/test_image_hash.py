"""The image tag is a content hash of exactly what goes into the image."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bevlaunch.images.context import (
    INPUTS,
    collect_inputs,
    dockerignore_entries,
    stage_context,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A small tree shaped like the repository."""
    root = tmp_path / "repo"
    files = {
        "README.md": "readme\n",
        "pyproject.toml": "[project]\nname = 'x'\n",
        "docker/Dockerfile": "FROM scratch\n",
        "docker/entrypoint.sh": '#!/bin/bash\nexec "$@"\n',
        "docker/lock/cpu.txt": "torch==2.13.0\n",
        "docker/wheelhouse/README.md": "wheels go here\n",
        "launcher/__init__.py": "",
        "launcher/cli.py": "print('cli')\n",
        "bevdepth/__init__.py": "",
        "bevdepth/data/__init__.py": "",
        "patches/x.patch": "--- a\n+++ b\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "docker/entrypoint.sh").chmod(0o755)
    return root


def tag(root: Path, target: str = "cpu", **kwargs) -> str:
    return collect_inputs(root, target, **kwargs).tag()


def test_stable_when_nothing_changes(checkout: Path) -> None:
    assert tag(checkout) == tag(checkout)
    assert tag(checkout).startswith("cpu-") and len(tag(checkout)) == len("cpu-") + 16


@pytest.mark.parametrize(
    "rel",
    [
        "docker/Dockerfile",
        "docker/entrypoint.sh",
        "docker/lock/cpu.txt",
        "launcher/cli.py",
        "bevdepth/data/__init__.py",
        "pyproject.toml",
        "README.md",
        "patches/x.patch",
    ],
)
def test_changes_when_an_input_file_changes(checkout: Path, rel: str) -> None:
    before = tag(checkout)
    with (checkout / rel).open("a") as f:
        f.write("# changed\n")
    assert tag(checkout) != before


def test_changes_when_a_file_is_added_removed_or_made_executable(checkout: Path) -> None:
    before = tag(checkout)
    (checkout / "bevdepth/new.py").write_text("")
    added = tag(checkout)
    assert added != before
    (checkout / "bevdepth/new.py").unlink()
    assert tag(checkout) == before
    (checkout / "launcher/cli.py").chmod(0o755)
    assert tag(checkout) != before


def test_changes_with_target_build_args_and_wheels(checkout: Path, tmp_path: Path) -> None:
    base = tag(checkout)
    assert tag(checkout, "npu") != base
    assert tag(checkout, build_args={"PIP_NO_INDEX": "1"}) != base
    assert tag(checkout, build_args={"PIP_NO_INDEX": "0"}) != tag(
        checkout, build_args={"PIP_NO_INDEX": "1"}
    )
    house = tmp_path / "wheels"
    house.mkdir()
    assert tag(checkout, wheelhouse=house) == base  # an empty wheelhouse adds nothing
    (house / "a-1.0-py3-none-any.whl").write_bytes(b"one")
    one = tag(checkout, wheelhouse=house)
    assert one != base
    (house / "a-1.0-py3-none-any.whl").write_bytes(b"two")
    assert tag(checkout, wheelhouse=house) != one


def test_ignores_caches_venvs_data_and_runs(checkout: Path) -> None:
    before = tag(checkout)
    clutter = [
        "launcher/__pycache__/cli.cpython-311.pyc",
        "bevdepth/stale.pyc",
        "launcher/.venv/bin/python",
        "bevdepth/venv/lib/x.py",
        "bevlaunch.egg-info/PKG-INFO",
        "launcher/x.egg-info/PKG-INFO",
        "data/synthetic/samples/a.jpg",
        "runs/quickstart/config.json",
        ".bevlaunch/images.json",
        ".git/HEAD",
        "tests/test_x.py",
        "docker/wheelhouse/notes.txt",
    ]
    for rel in clutter:
        (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
        (checkout / rel).write_text("clutter")
    assert tag(checkout) == before


def test_staged_context_holds_exactly_the_inputs(checkout: Path, tmp_path: Path) -> None:
    (checkout / "launcher/__pycache__").mkdir()
    (checkout / "launcher/__pycache__/cli.pyc").write_text("x")
    house = tmp_path / "wheels"
    house.mkdir()
    (house / "a-1.0-py3-none-any.whl").write_bytes(b"wheel")
    inputs = collect_inputs(checkout, "cpu", wheelhouse=house)
    staged = stage_context(inputs, tmp_path / "ctx")
    got = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert got == sorted([*inputs.files, "docker/wheelhouse/a-1.0-py3-none-any.whl"])
    assert os.access(staged / "docker/entrypoint.sh", os.X_OK)
    # The staged copy hashes like the original (same content, same executable bits).
    shutil.rmtree(staged / "docker/wheelhouse")
    assert collect_inputs(staged, "cpu", wheelhouse=house).tag() == inputs.tag()


def test_dockerignore_lets_in_exactly_the_inputs() -> None:
    entries = dockerignore_entries((REPO / ".dockerignore").read_text())
    assert sorted(e for e in entries if "wheelhouse" not in e) == sorted(INPUTS)


def test_repository_inputs_include_the_dockerfile_and_both_packages() -> None:
    files = collect_inputs(REPO, "cpu").files
    assert "docker/Dockerfile" in files and "docker/entrypoint.sh" in files
    assert "launcher/images/context.py" in files and "bevdepth/cli.py" in files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
