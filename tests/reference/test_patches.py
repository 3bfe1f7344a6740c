"""Each of our patches applies cleanly to the exact upstream release it names (PyPI sdists).

Downloads the archives once into pytest's cache (``.pytest_cache``, git-ignored) through the
PyPI simple API and checks their sha256: ``pip download`` cannot be used, it would build the
1.6.5 sdist's metadata, which needs an old setuptools. Cost: about 0.5 MB the first time.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest

PATCHES = Path(__file__).parents[2] / "patches"
# Release archives our patches may name: (distribution, version) -> (file name, sha256).
SDISTS = {
    ("pytorch-lightning", "1.6.5"): (
        "pytorch-lightning-1.6.5.tar.gz",
        "8d521f2619b9db2ada5bbaf9713330d01460e75a11e4bc0bc2ca25fd37c47c57",
    ),
    ("mmcv-full", "1.7.2"): (
        "mmcv-full-1.7.2.tar.gz",
        "aa276a2c68fa84db9bbcdcf6ae941e30f0cb4a7f175bd283516669e00bab3759",
    ),
}
_HEADER = re.compile(r"^Applies-to: (\S+)==(\S+)$\n^Package-dir: (\S+)$", re.M)


def _patch_files() -> list[Path]:
    return sorted(PATCHES.glob("*/*.patch"))


def _header(patch: Path) -> tuple[str, str, str]:
    match = _HEADER.search(patch.read_text(encoding="utf-8"))
    assert match, f"{patch}: needs 'Applies-to: name==version' and 'Package-dir: dir' lines"
    return match.group(1), match.group(2), match.group(3)


def _sdist(cache: Path, name: str, version: str) -> Path:
    filename, sha256 = SDISTS[(name, version)]
    path = cache / filename
    if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        request = urllib.request.Request(
            f"https://pypi.org/simple/{name}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response)["files"]
        (url,) = [f["url"] for f in files if f["filename"] == filename]
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
        assert hashlib.sha256(data).hexdigest() == sha256, f"{filename}: sha256 mismatch"
        path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def sdist_cache(request) -> Path:
    return Path(request.config.cache.mkdir("bevdepth-reference-sdists"))


def _package_dir(cache: Path, tmp: Path, name: str, version: str, package: str) -> Path:
    archive = _sdist(cache, name, version)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    (root,) = [p for p in tmp.iterdir() if p.is_dir()]
    return root / package


def test_every_patch_names_a_known_release_and_explains_itself():
    patches = _patch_files()
    assert patches, "patches/ holds at least the Lightning CPU pinning patch"
    for patch in patches:
        name, version, _ = _header(patch)
        assert (name, version) in SDISTS, f"{patch}: no archive known for {name}=={version}"
        assert patch.parent.name == f"{name}-{version}"
        why = patch.read_text(encoding="utf-8").split("\n--- ", 1)[0]
        assert "Why:" in why, f"{patch}: the header must say why"


@pytest.mark.slow
@pytest.mark.parametrize("patch", _patch_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_patch_applies_cleanly_to_the_release_it_names(patch, sdist_cache, tmp_path):
    name, version, package = _header(patch)
    target = _package_dir(sdist_cache, tmp_path, name, version, package)
    result = subprocess.run(
        ["patch", "--dry-run", "--force", "-p1", "-d", str(target), "-i", str(patch)],
        capture_output=True,
        text=True,
        check=False,
    )
    # No fuzz, no offsets: "cleanly" means the context matched where the diff says.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fuzz" not in result.stdout and "offset" not in result.stdout, result.stdout


@pytest.mark.slow
def test_patched_lightning_gives_each_rank_its_share_of_the_cpuset(sdist_cache, tmp_path):
    patch = PATCHES / "pytorch-lightning-1.6.5" / "0001-cpuset-aware-cpu-pinning.patch"
    target = _package_dir(sdist_cache, tmp_path, "pytorch-lightning", "1.6.5", "pytorch_lightning")
    subprocess.run(["patch", "-s", "-p1", "-d", str(target), "-i", str(patch)], check=True)
    source = (target / "strategies/launchers/subprocess_script.py").read_text()
    # The shipped function itself, without importing Lightning (it needs torch 1.x-era deps).
    (func,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name == "_cpuset_share"
    ]
    namespace: dict = {}
    exec(compile(ast.Module([func], []), "subprocess_script.py", "exec"), namespace)
    share = namespace["_cpuset_share"]
    cpuset = [*range(8, 16), *range(40, 48)]  # a pod's cpuset on a 96-core host
    shares = [share(cpuset, 8, rank) for rank in range(8)]
    assert shares[0] == [8, 9] and shares[7] == [46, 47]
    assert sorted(c for s in shares for c in s) == cpuset  # disjoint, every CPU used
    assert [len(s) for s in (share(range(10), 4, r) for r in range(4))] == [3, 3, 2, 2]
    assert share([3, 5], 8, 6) == [3, 5]  # fewer CPUs than ranks: all ranks share them
    assert shutil.which("patch")
