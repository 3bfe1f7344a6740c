"""Generator behaviour: configuration errors, determinism, reruns and refusing foreign data."""

from __future__ import annotations

import pytest

from bevdepth.data.synthetic import MARKER_FILE, SyntheticConfig, generate_dataset

ONE_SCENE = SyntheticConfig(train_scenes=1, val_scenes=0, samples_per_scene=2, seed=3)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"train_scenes": 9}, "train_scenes"),
        ({"val_scenes": -1}, "val_scenes"),
        ({"train_scenes": 0, "val_scenes": 0}, "train_scenes/val_scenes/test_scenes"),
        ({"samples_per_scene": 1}, "samples_per_scene"),
        ({"sweeps_per_sample": 11}, "sweeps_per_sample"),
        ({"flavour": "full"}, "flavour"),
    ],
)
def test_bad_configuration_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        SyntheticConfig(**overrides).validate()


def test_trainval_flavour_allows_more_scenes():
    SyntheticConfig(flavour="trainval", train_scenes=20, val_scenes=5).validate()


@pytest.mark.slow
def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    first = generate_dataset(tmp_path / "a", ONE_SCENE, workers=1)
    second = generate_dataset(tmp_path / "b", ONE_SCENE, workers=2)
    other = generate_dataset(tmp_path / "c", SyntheticConfig(**{**ONE_SCENE.__dict__, "seed": 4}))
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative
    annotations = "v1.0-mini/sample_annotation.json"
    assert (first / annotations).read_bytes() != (other / annotations).read_bytes()


@pytest.mark.slow
def test_rerun_is_a_no_op_and_a_different_configuration_is_refused(tmp_path):
    root = generate_dataset(tmp_path, ONE_SCENE, workers=1)
    tables = root / "v1.0-mini" / "sample.json"
    stamp = tables.stat().st_mtime_ns
    generate_dataset(root, ONE_SCENE, workers=1)
    assert tables.stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match=MARKER_FILE):
        generate_dataset(root, SyntheticConfig(train_scenes=1, val_scenes=0, seed=4))


def test_foreign_nuscenes_tables_are_never_overwritten(tmp_path):
    (tmp_path / "v1.0-mini").mkdir()
    (tmp_path / "v1.0-mini" / "sample.json").write_text("[]")
    with pytest.raises(FileExistsError, match="not written by the synthetic generator"):
        generate_dataset(tmp_path, ONE_SCENE, workers=1)
    assert (tmp_path / "v1.0-mini" / "sample.json").read_text() == "[]"
    assert not (tmp_path / MARKER_FILE).exists()


def test_interrupted_generation_leaves_no_marker(tmp_path, monkeypatch):
    import bevdepth.data.synthetic as synthetic

    def fail(folder, _tables):
        (folder / "sample.json").parent.mkdir(parents=True)
        (folder / "sample.json").write_text("[]")  # as if stopped after the first table
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_write_tables", fail)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path, ONE_SCENE, workers=1)
    assert not (tmp_path / MARKER_FILE).exists()
    assert not list(tmp_path.rglob("*.tmp"))
    monkeypatch.undo()
    generate_dataset(tmp_path, ONE_SCENE, workers=1)  # a rerun completes the dataset
    assert (tmp_path / MARKER_FILE).exists()
