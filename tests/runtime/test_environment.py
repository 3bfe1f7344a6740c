"""Topology resolution over environment dicts: every launcher the workload may run under."""

from __future__ import annotations

import pytest

from bevdepth.runtime.environment import LOCALHOST, Topology, TopologyError, resolve_topology


def test_torchrun_one_process_per_device():
    env = {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",
        "GROUP_RANK": "1",
        "MASTER_ADDR": "job-0.svc",
        "MASTER_PORT": "29500",
    }
    topology = resolve_topology(env, nodes=1, devices_per_node=1)
    assert topology == Topology("process", 2, 4, 1, "job-0.svc", 29500, 1)
    assert topology.rank == 5 and topology.world_size == 8


def test_torchrun_without_node_rank_derives_it_and_uses_loopback_on_one_node():
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_PORT": "1234"}
    topology = resolve_topology(env, nodes=1, devices_per_node=2)
    assert (topology.node_rank, topology.devices_per_node, topology.rank) == (0, 2, 1)
    assert topology.master_addr == LOCALHOST


def test_torchrun_rank_that_contradicts_node_rank_is_refused():
    env = {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "2",
        "NODE_RANK": "0",
        "MASTER_ADDR": "a",
        "MASTER_PORT": "1",
    }
    with pytest.raises(TopologyError, match="RANK=3 does not match"):
        resolve_topology(env, nodes=2, devices_per_node=2)


def test_indexed_job_pod_starts_its_devices():
    env = {
        "JOB_COMPLETION_INDEX": "2",
        "BEVLAUNCH_NNODES": "4",
        "BEVLAUNCH_DEVICES_PER_NODE": "8",
        "MASTER_ADDR": "run-0.run",
        "MASTER_PORT": "29500",
        "KUBERNETES_PORT": "tcp://10.0.0.1:443",
    }
    topology = resolve_topology(env, nodes=1, devices_per_node=1)
    assert topology == Topology("node", 4, 8, 2, "run-0.run", 29500)
    child = topology.child(3, 29500)
    assert child.rank == 19
    assert child.process_env() == {
        "RANK": "19",
        "WORLD_SIZE": "32",
        "LOCAL_RANK": "3",
        "LOCAL_WORLD_SIZE": "8",
        "NODE_RANK": "2",
        "GROUP_RANK": "2",
        "MASTER_ADDR": "run-0.run",
        "MASTER_PORT": "29500",
    }


def test_volcano_task_index_is_the_node_rank():
    env = {"VC_TASK_INDEX": "1", "MASTER_ADDR": "m", "MASTER_PORT": "23456"}
    topology = resolve_topology(env, nodes=2, devices_per_node=8)
    assert (topology.mode, topology.node_rank, topology.num_nodes) == ("node", 1, 2)


def test_kubeflow_pytorchjob_pod_rank_is_not_taken_for_a_process_rank():
    # What the training operator injects into worker 2 of a 3-replica job (no torchrun).
    env = {
        "MASTER_ADDR": "job-master-0",
        "MASTER_PORT": "23456",
        "WORLD_SIZE": "3",
        "RANK": "2",
        "PET_NNODES": "3",
        "PET_NPROC_PER_NODE": "4",
        "KUBERNETES_PORT": "tcp://10.0.0.1:443",
    }
    topology = resolve_topology(env, nodes=1, devices_per_node=1)
    assert topology == Topology("node", 3, 4, 2, "job-master-0", 23456)


def test_ascend_operator_list_string_local_rank():
    # Ascend operator: LOCAL_RANK lists the pod's devices, RANK is the pod rank.
    env = {
        "LOCAL_RANK": "0,1,2,3,4,5,6,7",
        "LOCAL_WORLD_SIZE": "8",
        "WORLD_SIZE": "16",
        "RANK": "1",
        "MASTER_ADDR": "job-master-0",
        "MASTER_PORT": "29500",
    }
    topology = resolve_topology(env, nodes=2, devices_per_node=8)
    assert topology == Topology("node", 2, 8, 1, "job-master-0", 29500)
    assert topology.child(7, 29500).process_env()["LOCAL_RANK"] == "7"


def test_plain_single_node_run_needs_no_variables():
    topology = resolve_topology({}, nodes=1, devices_per_node=2)
    assert topology == Topology("node", 1, 2, 0, LOCALHOST, None)


def test_single_node_ignores_a_cluster_master_address():
    env = {"JOB_COMPLETION_INDEX": "0", "MASTER_ADDR": "run-0.run", "MASTER_PORT": "29500"}
    assert resolve_topology(env, 1, 8).master_addr == LOCALHOST


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOB_COMPLETION_INDEX": "1"}, "MASTER_ADDR and MASTER_PORT"),
        ({"JOB_COMPLETION_INDEX": "5", "MASTER_ADDR": "a", "MASTER_PORT": "1"}, "outside 0..1"),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "MASTER_PORT is not set"),
    ],
)
def test_unusable_environments_are_named(env, message):
    with pytest.raises(TopologyError, match=message):
        resolve_topology(env, nodes=2, devices_per_node=2)
