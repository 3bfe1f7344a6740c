"""The upstream script's environment under each scheduler: what Lightning 1.6.5 needs only."""

from __future__ import annotations

import pytest

from bevdepth.reference.env import env_for
from bevdepth.reference.recipe import NPU_ENV
from bevdepth.runtime.environment import TopologyError

UPSTREAM = "/opt/bevdepth-upstream"
POD = {"KUBERNETES_PORT": "tcp://10.0.0.1:443", "HOME": "/root", "PYTHONPATH": "/opt/bevdepth"}
# Variables that make Lightning 1.6.5 pick Kubeflow/TorchElastic or skip spawning.
FORBIDDEN = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK")

SCHEDULERS = {
    # bevlaunch's Indexed Job (render.py): completion index + our node count + rendezvous.
    "indexed-job": {
        "JOB_COMPLETION_INDEX": "1",
        "BEVLAUNCH_NNODES": "2",
        "BEVLAUNCH_DEVICES_PER_NODE": "8",
        "MASTER_ADDR": "run-0.run",
        "MASTER_PORT": "29500",
    },
    # Volcano with the env + svc plugins (bevlaunch's Volcano Job).
    "volcano": {
        "VC_TASK_INDEX": "1",
        "BEVLAUNCH_NNODES": "2",
        "MASTER_ADDR": "run-worker-0.run",
        "MASTER_PORT": "29500",
    },
    # Kubeflow PyTorchJob: pod RANK and a WORLD_SIZE of replicas x nprocPerNode.
    "pytorchjob": {
        "RANK": "1",
        "WORLD_SIZE": "16",
        "MASTER_ADDR": "run-master-0",
        "MASTER_PORT": "23456",
        "PET_NNODES": "2",
        "PET_NODE_RANK": "1",
        "PET_NPROC_PER_NODE": "8",
    },
    # Ascend operator (AscendJob): pod RANK and a list-valued LOCAL_RANK.
    "ascendjob": {
        "RANK": "1",
        "WORLD_SIZE": "16",
        "LOCAL_RANK": "0,1,2,3,4,5,6,7",
        "LOCAL_WORLD_SIZE": "8",
        "MASTER_ADDR": "10.1.2.3",
        "MASTER_PORT": "29500",
    },
}


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_multi_node_env_is_lightning_environment_with_this_pods_node_rank(scheduler):
    given = {**POD, **SCHEDULERS[scheduler]}
    env = env_for(given, nodes=2, devices_per_node=8, upstream_dir=UPSTREAM)
    assert env["NODE_RANK"] == "1"
    assert env["MASTER_ADDR"] == SCHEDULERS[scheduler]["MASTER_ADDR"]
    assert env["MASTER_PORT"] == SCHEDULERS[scheduler]["MASTER_PORT"]
    assert not [name for name in FORBIDDEN if name in env]
    assert not [name for name in env if name.startswith(("PET_", "VC_", "BEVLAUNCH_"))]
    assert "JOB_COMPLETION_INDEX" not in env
    # Upstream alone on the child's import path (its package is also named bevdepth).
    assert env["PYTHONPATH"] == UPSTREAM
    assert env["KUBERNETES_PORT"] == POD["KUBERNETES_PORT"] and env["HOME"] == "/root"
    assert {k: env[k] for k, _ in NPU_ENV} == dict(NPU_ENV)


def test_node_zero_of_an_indexed_job():
    given = {**POD, **SCHEDULERS["indexed-job"], "JOB_COMPLETION_INDEX": "0"}
    env = env_for(given, nodes=2, devices_per_node=8, upstream_dir=UPSTREAM)
    assert env["NODE_RANK"] == "0"


@pytest.mark.parametrize(
    "scheduler_env",
    [
        {},
        {"JOB_COMPLETION_INDEX": "0", "MASTER_ADDR": "run-0.run", "MASTER_PORT": "29500"},
        # The local backend's single rank (torchrun style).
        {
            "RANK": "0",
            "WORLD_SIZE": "1",
            "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1",
            "NODE_RANK": "0",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "40000",
        },
    ],
)
def test_single_node_env_sets_no_rendezvous(scheduler_env):
    # Lightning then rendezvouses on 127.0.0.1 at a free port; a stale MASTER_* would not do.
    env = env_for({**POD, **scheduler_env}, nodes=1, devices_per_node=8, upstream_dir=UPSTREAM)
    for name in (*FORBIDDEN, "MASTER_ADDR", "MASTER_PORT", "NODE_RANK"):
        assert name not in env


def test_user_values_of_the_npu_variables_win_and_cpu_gets_none():
    given = {**POD, "HCCL_CONNECT_TIMEOUT": "3600"}
    env = env_for(given, nodes=1, devices_per_node=8, upstream_dir=UPSTREAM)
    assert env["HCCL_CONNECT_TIMEOUT"] == "3600"
    cpu = env_for(POD, nodes=1, devices_per_node=1, upstream_dir=UPSTREAM, accelerator="cpu")
    assert "TASK_QUEUE_ENABLE" not in cpu


def test_multi_node_without_rendezvous_is_an_error():
    with pytest.raises(TopologyError, match="MASTER_ADDR"):
        env_for({"JOB_COMPLETION_INDEX": "1"}, nodes=2, devices_per_node=8, upstream_dir=UPSTREAM)
    with pytest.raises(TopologyError, match="outside"):
        env_for(
            {**SCHEDULERS["indexed-job"], "JOB_COMPLETION_INDEX": "5"},
            nodes=2,
            devices_per_node=8,
            upstream_dir=UPSTREAM,
        )
