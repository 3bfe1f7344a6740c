"""Job spec loading: defaults, unknown keys, names, YAML shape, field paths in messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from bevlaunch.errors import BevlaunchError, SpecError
from bevlaunch.loader import load_spec, parse_spec_text
from bevlaunch.spec import Accelerator, Backend, JobSpec, spec_from_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MINIMAL = {"name": "demo", "data": {"synthetic": {}}}


def _problems(data, **kwargs) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data, **kwargs)
    return info.value.problems


def test_defaults_are_the_reference_recipe():
    spec = spec_from_dict(MINIMAL)
    assert spec.backend is Backend.LOCAL
    assert spec.model.preset == "reference"
    assert spec.resources.accelerator is Accelerator.NPU
    assert spec.resources.nodes == 1
    assert spec.resources.devices_per_node == 8
    t = spec.training
    assert (t.epochs, t.batch_per_device, t.precision, t.seed) == (24, 8, "16-mixed", 0)
    assert t.lr_per_image == pytest.approx(3.125e-6, rel=0, abs=1e-15)
    assert t.lr_per_image * 8 * 8 == pytest.approx(2e-4)
    assert t.weight_decay == 1e-7
    assert list(t.lr_milestones) == [19, 23]
    assert spec.stages.ordered() == ["prepare", "train", "eval"]


def test_spec_error_is_a_bevlaunch_error_with_exit_code_2():
    assert issubclass(SpecError, BevlaunchError)
    assert SpecError("x").exit_code == 2


def test_unknown_key_suggests_the_close_field_and_names_the_path():
    (line,) = _problems({**MINIMAL, "training": {"lr_per_imag": 1e-6}})
    assert line.startswith("training.lr_per_imag: unknown field")
    assert "did you mean 'lr_per_image'?" in line


def test_unknown_top_level_key_suggestion():
    (line,) = _problems({**MINIMAL, "resource": {"nodes": 1}})
    assert line == "resource: unknown field; did you mean 'resources'?"


def test_unknown_key_in_nested_list_item_lists_known_fields():
    data = {**MINIMAL, "kubernetes": {"tolerations": [{"zzz": 1}]}}
    (line,) = _problems(data)
    assert line.startswith("kubernetes.tolerations[0].zzz: unknown field (known: key,")


@pytest.mark.parametrize("name", ["Bad_Name", "-x", "x-", "a" * 53, "a.b", "", "ünï"])
def test_bad_names_are_rejected(name):
    (line,) = _problems({**MINIMAL, "name": name})
    assert line.startswith("name: ") and "DNS-1123" in line


def test_every_problem_is_one_line_with_its_path():
    data = {
        "name": "ok",
        "data": {"synthetic": {"train_scenes": 0}},
        "resources": {"accelerator": "tpu", "shm": "lots"},
        "training": {"epochs": "many"},
    }
    problems = _problems(data, source="train.yaml")
    assert len(problems) == 4
    assert all("\n" not in p for p in problems)
    paths = sorted(p.split(":")[0] for p in problems)
    assert paths == [
        "data.synthetic.train_scenes",
        "resources.accelerator",
        "resources.shm",
        "training.epochs",
    ]
    with pytest.raises(SpecError) as info:
        spec_from_dict(data, source="train.yaml")
    assert all(line.startswith("train.yaml: ") for line in info.value.lines)


def test_missing_name_and_data():
    problems = _problems({})
    assert sorted(problems) == [
        "data: required field is missing",
        "name: required field is missing",
    ]


def test_exactly_one_data_source():
    (line,) = _problems({"name": "x", "data": {"path": "/a", "synthetic": {}}})
    assert line.startswith("data: set exactly one of") and "path, synthetic" in line


def test_kubernetes_needs_image_output_pvc_and_no_local_path():
    problems = _problems({"name": "x", "backend": "kubernetes", "data": {"path": "/d"}})
    assert {p.split(":")[0] for p in problems} == {"data.path", "image", "output.pvc"}


def test_local_backend_runs_one_node_and_no_cluster_volumes():
    problems = _problems({"name": "x", "data": {"pvc": {"claim": "n"}}, "resources": {"nodes": 2}})
    assert {p.split(":")[0] for p in problems} == {"data.pvc", "resources.nodes"}


@pytest.mark.parametrize("key", ["RANK", "MASTER_ADDR", "JOB_COMPLETION_INDEX", "BEVLAUNCH_NNODES"])
def test_reserved_env_is_rejected(key):
    (line,) = _problems({**MINIMAL, "env": {key: "1"}})
    assert line == f"env.{key}: is set by bevlaunch (run contract); remove it"


def test_env_values_become_strings_and_bad_names_fail():
    spec = spec_from_dict({**MINIMAL, "env": {"A": 1, "B": 2.5, "C": "x"}})
    assert spec.env == {"A": "1", "B": "2.5", "C": "x"}
    (line,) = _problems({**MINIMAL, "env": {"BAD-NAME": "1"}})
    assert line.startswith("env.BAD-NAME: is not an environment variable name")


def test_train_implies_eval_unless_turned_off():
    assert spec_from_dict({**MINIMAL, "stages": ["train"]}).stages.ordered() == ["train", "eval"]
    off = {**MINIMAL, "stages": {"prepare": False, "eval": False}}
    assert spec_from_dict(off).stages.ordered() == ["train"]
    only_eval = {**MINIMAL, "stages": {"train": False, "eval": True}}
    assert spec_from_dict(only_eval).stages.ordered() == ["prepare", "eval"]
    none = {**MINIMAL, "stages": {"prepare": False, "train": False}}
    (line,) = _problems(none)
    assert line.startswith("stages: no stage selected")


@pytest.mark.parametrize(
    "image",
    ["bevdepth", "registry.example.com:5000/team/bevdepth:0.1.0", "repo/x@sha256:" + "a" * 64],
)
def test_image_references_accepted(image):
    assert spec_from_dict({**MINIMAL, "image": image}).image == image


@pytest.mark.parametrize("image", ["team/UPPER", "x:tag with space", "x;rm -rf /", "x@sha256:zz"])
def test_bad_image_references_rejected(image):
    (line,) = _problems({**MINIMAL, "image": image})
    assert line.startswith("image: ")


def test_duplicate_keys_are_rejected_with_line_numbers():
    text = "name: a\ndata:\n  synthetic: {}\nname: b\n"
    with pytest.raises(SpecError) as info:
        parse_spec_text(text, source="t.yaml")
    assert str(info.value) == "t.yaml: name: duplicate key (lines 1 and 4); keep one"


def test_nested_duplicate_keys_are_rejected():
    with pytest.raises(SpecError, match=r"^training\.epochs: duplicate key \(lines 2 and 3\)"):
        parse_spec_text("training:\n  epochs: 1\n  epochs: 2\n")
    text = "kubernetes:\n  tolerations:\n    - key: a\n      key: b\n"
    with pytest.raises(SpecError, match=r"^kubernetes\.tolerations\[0\]\.key: duplicate key"):
        parse_spec_text(text)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "7\n", "a: 1\n---\nb: 2\n"])
def test_non_mapping_or_multi_document_yaml_is_rejected(text):
    with pytest.raises(SpecError):
        parse_spec_text(text)


def test_invalid_yaml_names_the_line():
    with pytest.raises(SpecError, match=r"line 2, column \d+: invalid YAML"):
        parse_spec_text("a: [1\nb: 2\n")


def test_load_spec_reads_a_file_and_reports_missing_files(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("name: demo\ndata:\n  synthetic: {}\ntraining:\n  lr_per_image: 1e-6\n")
    spec = load_spec(path)
    assert isinstance(spec, JobSpec) and spec.training.lr_per_image == 1e-6
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_load(example):
    assert load_spec(EXAMPLES / example).name


def test_the_five_examples_exist():
    names = {p.stem for p in EXAMPLES.glob("*.yaml")}
    assert names >= {"quickstart", "ascend-8npu", "ascend-2x8npu", "gpu-8", "eval-only"}


def test_empty_spec_text_is_an_empty_mapping():
    assert parse_spec_text("") == {}
    assert parse_spec_text("# only a comment\n") == {}


@pytest.mark.parametrize(
    ("given", "expected"),
    [("fp16", "16-mixed"), ("bf16", "bf16-mixed"), ("fp32", "32-true"), ("32-true", "32-true")],
)
def test_precision_aliases(given, expected):
    spec = spec_from_dict({**MINIMAL, "training": {"precision": given}})
    assert spec.training.precision == expected


def test_bad_precision_names_the_choices():
    (line,) = _problems({**MINIMAL, "training": {"precision": "fp8"}})
    assert line.startswith("training.precision: ") and "'16-mixed'" in line


def test_evaluation_split_is_val_or_train():
    assert spec_from_dict({**MINIMAL, "evaluation": {"split": "train"}}).evaluation.split == "train"
    (line,) = _problems({**MINIMAL, "evaluation": {"split": "test"}})
    assert line.startswith("evaluation.split: ")


def test_gradient_clip_must_be_a_positive_number():
    (line,) = _problems({**MINIMAL, "training": {"gradient_clip": None}})
    assert line.startswith("training.gradient_clip: ")


def test_a_spec_without_name_is_named_after_its_file(tmp_path):
    path = tmp_path / "My_Train.yaml"
    path.write_text("data:\n  synthetic: {}\n")
    assert load_spec(path).name == "my-train"
