"""The environment of the upstream script: what pytorch-lightning 1.6.5 needs, nothing more.

Lightning 1.6.5 picks its cluster environment from variables (ascend-k8s-facts D+): with
``RANK`` + ``WORLD_SIZE`` + ``MASTER_*`` in a pod it picks Kubeflow's (one process per pod), with
``RANK``/``GROUP_RANK``/``LOCAL_RANK``/``LOCAL_WORLD_SIZE`` TorchElastic's, and with any
``LOCAL_RANK`` it assumes an outside launcher and does not spawn (the Ascend operator's
``LOCAL_RANK="0,...,7"`` even crashes it). So every scheduler's rank variables are removed and
only ``LightningEnvironment``'s inputs are set, for several nodes only: ``MASTER_ADDR``,
``MASTER_PORT`` and ``NODE_RANK``. Lightning then starts ``--gpus`` processes per pod
(``--num_nodes`` from the recipe's argv) and joins the nodes. On one node nothing is set: it
rendezvouses on 127.0.0.1 at a free port.

The node rank and rendezvous come from :func:`bevdepth.runtime.environment.resolve_topology`,
the one place that knows each scheduler's variables (Indexed Job ``JOB_COMPLETION_INDEX``,
Volcano ``VC_TASK_INDEX``, PyTorchJob / Ascend operator ``RANK``).

Upstream's Python package is also named ``bevdepth``: the child's ``PYTHONPATH`` is the
upstream checkout alone, so ours (the agent's) is never on its import path.
"""

from __future__ import annotations

from collections.abc import Mapping

from bevdepth.reference.recipe import npu_env
from bevdepth.runtime.environment import DISTRIBUTED_VARIABLES, Topology, resolve_topology

# Variables that would make Lightning 1.6.5 choose another cluster environment or not spawn.
REMOVED = (
    *DISTRIBUTED_VARIABLES,
    "JOB_COMPLETION_INDEX",
    "VC_TASK_INDEX",
    "PET_NODE_RANK",
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "TORCHELASTIC_RUN_ID",
    "SLURM_NTASKS",
    "SLURM_JOB_NAME",
    "LSB_JOBID",
    "BEVLAUNCH_NNODES",
    "BEVLAUNCH_DEVICES_PER_NODE",
    "PYTHONPATH",
)


def topology_of(scheduler_env: Mapping[str, str], nodes: int, devices_per_node: int) -> Topology:
    """This pod's place in the job (node rank, node count, rendezvous) from its scheduler."""
    return resolve_topology(scheduler_env, nodes, devices_per_node)


def env_for(
    scheduler_env: Mapping[str, str],
    *,
    nodes: int,
    devices_per_node: int,
    upstream_dir: str,
    accelerator: str = "npu",
) -> dict[str, str]:
    """The upstream script's environment, from the pod's (or process's) environment.

    Args:
        scheduler_env: the environment the agent got (scheduler variables included).
        nodes: ``resources.nodes`` of the run config.
        devices_per_node: ``resources.devices_per_node``.
        upstream_dir: the upstream BEVDepth checkout (the child's whole ``PYTHONPATH``).
        accelerator: ``npu`` adds the published env_npu.sh variables the user did not set.

    Raises:
        TopologyError: a multi-node job without a rendezvous address, or a node rank out of range.
    """
    topology = topology_of(scheduler_env, nodes, devices_per_node)
    env = {k: v for k, v in scheduler_env.items() if k not in REMOVED}
    env["PYTHONPATH"] = upstream_dir
    env["PYTHONUNBUFFERED"] = "1"
    if topology.num_nodes > 1:
        env["MASTER_ADDR"] = topology.master_addr
        env["MASTER_PORT"] = str(topology.master_port)
        env["NODE_RANK"] = str(topology.node_rank)
    if accelerator == "npu":
        env.update(npu_env(env))
    return env
