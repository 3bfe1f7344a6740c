"""Resolved config → RunPlan, the workload's one command line, rank environments; labels."""

from __future__ import annotations

import pytest

from bevlaunch.labels import sanitize_k8s_name
from bevlaunch.plan import RunPlan, build_plan, rank_env, workload_argv
from bevlaunch.render import COMMAND
from bevlaunch.resolve import resolve_config
from bevlaunch.spec import spec_from_dict

QUICK = {
    "name": "quick",
    "model": {"preset": "small"},
    "data": {"synthetic": {}},
    "resources": {"accelerator": "cpu", "devices_per_node": 2},
}


def _plan(spec: dict, **kwargs) -> RunPlan:
    job = spec_from_dict(spec)
    config = resolve_config(job, base_dir="/srv/project")
    return build_plan(config, "/srv/project/runs/x/config.json", user_env=job.env, **kwargs)


def test_workload_argv_is_the_contract_command_line():
    assert workload_argv("/c.json") == ["python", "-m", "bevdepth", "run", "--config", "/c.json"]
    assert workload_argv("/c.json", ["train", "eval"], program=["/py", "w.py"]) == [
        "/py",
        "w.py",
        "run",
        "--config",
        "/c.json",
        "--stages",
        "train,eval",
    ]
    # The pods run the same command line, every stage at once.
    assert list(COMMAND) == workload_argv("/etc/bevlaunch/config.json")


def test_plan_runs_every_stage_with_one_process_per_rank_and_prepare_alone():
    plan = _plan(QUICK, program=("/venv/bin/python", "-m", "bevdepth"), cpu_count=2)
    assert plan.name == "quick" and plan.run_dir == "/srv/project/runs/quick"
    assert [(s.name, s.processes) for s in plan.stages] == [
        ("prepare", 1),
        ("train", 2),
        ("eval", 2),
    ]
    train = plan.stages[1]
    assert train.argv == (
        "/venv/bin/python",
        "-m",
        "bevdepth",
        "run",
        "--config",
        "/srv/project/runs/x/config.json",
        "--stages",
        "train",
    )
    assert train.env["OMP_NUM_THREADS"] == "1"  # 2 cores shared by 2 ranks
    assert plan.stages[0].env["OMP_NUM_THREADS"] == "2"
    assert train.env["BEVLAUNCH_RUN"] == "quick" and train.env["PYTHONUNBUFFERED"] == "1"


def test_user_env_reaches_every_stage_and_may_set_threads():
    plan = _plan({**QUICK, "env": {"OMP_NUM_THREADS": "4", "X": "$(rm -rf /)"}}, cpu_count=2)
    for stage in plan.stages:
        assert stage.env["OMP_NUM_THREADS"] == "4" and stage.env["X"] == "$(rm -rf /)"
        assert all("$(" not in part for part in stage.argv)


def test_plan_round_trips_through_json():
    plan = _plan(QUICK)
    assert RunPlan.from_dict(plan.to_dict()) == plan


def test_rank_env_is_torchrun_style():
    assert rank_env(2, 1, 29501) == {
        "RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "NODE_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29501",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My_Run.v2", "my-run-v2"),
        ("--x--", "x"),
        ("a" * 70, "a" * 63),
        ("ünïcode run", "n-code-run"),
    ],
)
def test_sanitize_k8s_name(text, expected):
    assert sanitize_k8s_name(text) == expected


def test_sanitize_k8s_name_refuses_nothing_usable():
    with pytest.raises(ValueError, match="no characters usable"):
        sanitize_k8s_name("__")
