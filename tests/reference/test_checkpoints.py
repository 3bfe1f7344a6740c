"""Finding the newest checkpoint and reporting complete ones (Lightning 1.6 layout)."""

from __future__ import annotations

from pathlib import Path

from bevdepth.reference.checkpoints import (
    CheckpointWatch,
    list_checkpoints,
    newest,
    parse_checkpoint,
)


def _ckpt(outputs: Path, version: int, name: str, data: bytes = b"x") -> Path:
    path = outputs / f"lightning_logs/version_{version}/checkpoints/{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_names_are_parsed_and_others_ignored():
    parsed = parse_checkpoint("/o/lightning_logs/version_2/checkpoints/epoch=23-step=10536.ckpt")
    assert (parsed.epoch, parsed.step, parsed.version) == (23, 10536, 2)
    assert parse_checkpoint("/o/last.ckpt") is None
    assert parse_checkpoint("/o/epoch=1-step=2.ckpt.tmp") is None


def test_newest_is_by_steps_across_versions_not_by_version(tmp_path):
    _ckpt(tmp_path, 0, "epoch=5-step=2634.ckpt")
    _ckpt(tmp_path, 1, "epoch=3-step=1756.ckpt")  # a later start that got less far
    _ckpt(tmp_path, 1, "notes.txt")
    found = newest(list_checkpoints(tmp_path))
    assert found.path.endswith("version_0/checkpoints/epoch=5-step=2634.ckpt")
    assert newest(list_checkpoints(tmp_path / "missing")) is None


def test_a_checkpoint_is_reported_once_after_two_unchanged_looks(tmp_path):
    watch = CheckpointWatch()
    path = _ckpt(tmp_path, 0, "epoch=0-step=439.ckpt", b"half")
    assert watch.look(list_checkpoints(tmp_path)) == []  # first sight: may still be written
    with path.open("ab") as f:
        f.write(b" and the rest")
    assert watch.look(list_checkpoints(tmp_path)) == []  # it grew
    (done,) = watch.look(list_checkpoints(tmp_path))
    assert done.step == 439
    assert watch.look(list_checkpoints(tmp_path)) == []
    _ckpt(tmp_path, 0, "epoch=1-step=878.ckpt")
    (last,) = watch.settle(list_checkpoints(tmp_path))  # the writer has exited
    assert last.step == 878
    assert watch.settle(list_checkpoints(tmp_path)) == []
