"""The run config parser against the contract's golden file, and its one-line errors."""

from __future__ import annotations

import copy
import json

import pytest
from runtime_helpers import GOLDEN

from bevdepth.runtime.config import ConfigError, load_config, parse_config

RAW = json.loads(GOLDEN.read_text())


def test_golden_config_parses_completely():
    config = load_config(GOLDEN)
    assert config.run.name == "quickstart"
    assert config.stages == ("prepare", "train", "eval")
    assert config.data.synthetic.samples_per_scene == 6
    assert config.training.lr_milestones == (19, 23)
    assert config.resources.devices_per_node == 2
    assert config.to_dict() == {
        **RAW,
        "data": {**RAW["data"], "synthetic": {**RAW["data"]["synthetic"], "jpeg_quality": 90}},
    }


def _with(path: str, value):
    raw = copy.deepcopy(RAW)
    *parents, last = path.split(".")
    node = raw
    for name in parents:
        node = node[name]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "training.lr_milestone",
            3,
            "training.lr_milestone: unknown field; did you mean 'lr_milestones'?",
        ),
        ("training.epochs", "24", 'training.epochs: expected an integer, got "24"'),
        ("training.epochs", 0, "training.epochs: 0 must be at least 1"),
        ("training.lr_milestones", [1, "x"], "training.lr_milestones[1]: expected an integer"),
        ("training.precision", "16", 'training.precision: "16" is not one of'),
        ("resources.accelerator", "tpu", "resources.accelerator"),
        ("eval.checkpoint", KeyError, "eval.checkpoint: missing"),
        ("stages", ["train", "deploy"], 'stages[1]: "deploy" is not one of'),
        ("data.synthetic.train_scenes", 99, "data.synthetic.train_scenes: 99 is outside"),
        ("schema", 2, "schema: 2 is not supported"),
    ],
)
def test_errors_name_the_field(path, value, message):
    with pytest.raises(ConfigError) as error:
        parse_config(_with(path, value))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_unreadable_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
