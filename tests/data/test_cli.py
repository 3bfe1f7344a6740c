"""``python -m bevdepth``: the prepare commands end to end, and one-line errors with exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bevdepth", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_prepare_all_then_check_data(tmp_path):
    root = tmp_path / "nuscenes"
    prepared = tmp_path / "prepared"
    common = ["--root", str(root), "--prepared-root", str(prepared), "--workers", "2"]
    result = run_cli(
        "prepare", "all", "--synthetic", *common, "--train-scenes", "1", "--val-scenes", "1",
        "--samples-per-scene", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "infos train: 3 samples written" in result.stdout
    assert "depth_gt: 3 of 3 samples written" in result.stdout
    assert sorted(p.name for p in prepared.glob("*.pkl")) == [
        "nuscenes_infos_train.pkl", "nuscenes_infos_val.pkl",
    ]  # fmt: skip
    assert not list(root.glob("*.pkl"))  # the dataroot itself is left untouched

    again = run_cli("prepare", "all", *common)
    assert again.returncode == 0, again.stderr
    assert "infos train: already present, kept" in again.stdout
    assert "depth_gt: 0 of 3 samples written" in again.stdout

    check = run_cli("check-data", "--root", str(root), "--prepared-root", str(prepared))
    assert check.returncode == 0, check.stderr
    assert "lowest AP 1.000" in check.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prepare", "infos", "--root", "{tmp}/missing"], "no nuScenes tables found"),
        (["prepare", "depth", "--root", "{tmp}"], "nuscenes_infos_train.pkl not found"),
        (["prepare", "synthetic", "--root", "{tmp}", "--train-scenes", "9"], "train_scenes: 9"),
        (["check-data", "--root", "{tmp}"], "no nuScenes tables found"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    result = run_cli(*(arg.format(tmp=tmp_path) for arg in args))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")


def test_unknown_command_is_a_usage_error():
    result = run_cli("fly")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
