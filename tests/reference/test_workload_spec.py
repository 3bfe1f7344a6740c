"""The spec's ``workload`` selector: validation, the resolved config and the plan."""

from __future__ import annotations

import pytest

from bevlaunch.errors import SpecError
from bevlaunch.plan import build_plan
from bevlaunch.resolve import resolve_config
from bevlaunch.spec import Workload, spec_from_dict

BASE = {"name": "ref", "data": {"path": "/data/nuscenes"}}


def test_native_is_the_default_and_leaves_the_config_unchanged():
    spec = spec_from_dict(BASE)
    assert spec.workload is Workload.NATIVE
    assert "workload" not in resolve_config(spec, base_dir="/w")


def test_reference_config_names_its_workload_and_runs_one_agent_per_node():
    spec = spec_from_dict({**BASE, "workload": "reference"})
    config = resolve_config(spec, base_dir="/w")
    assert config["workload"] == "reference"
    plan = build_plan(config, "/w/runs/ref/config.json", user_env={})
    assert [(s.name, s.processes) for s in plan.stages] == [
        ("prepare", 1),
        ("train", 1),
        ("eval", 1),
    ]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"resources": {"accelerator": "gpu"}}, "resources.accelerator"),
        ({"data": {"synthetic": {}}}, "data.synthetic"),
        ({"training": {"weight_decay": 1e-3}}, "training.weight_decay"),
        ({"training": {"precision": "bf16"}}, "training.precision"),
        ({"data": {"path": "/d", "num_workers": 2}}, "data.num_workers"),
    ],
)
def test_reference_rejects_what_the_recipe_cannot_honour(extra, field):
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        spec_from_dict({**BASE, "workload": "reference", **extra})


def test_unknown_workload_names_the_choices():
    with pytest.raises(SpecError, match="workload"):
        spec_from_dict({**BASE, "workload": "upstream"})
