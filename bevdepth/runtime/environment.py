"""Where this process sits in the job: rank, world size, node, rendezvous (pure, no I/O).

Two ways a process can be started (docs/RUN_CONTRACT.md section 3):

* ``process`` mode, one process per device (torchrun, our local backend, or our node agent):
  ``RANK``, ``WORLD_SIZE`` and a single-integer ``LOCAL_RANK`` are set.
* ``node`` mode, one process per node (Kubernetes Indexed Job, Volcano, Kubeflow PyTorchJob,
  Ascend operator): the node rank comes from the first of ``JOB_COMPLETION_INDEX``,
  ``VC_TASK_INDEX``, ``PET_NODE_RANK``, ``NODE_RANK``, ``GROUP_RANK`` and, when ``LOCAL_RANK``
  is not a single integer, the operator's pod ``RANK``; node count and devices per node from
  ``BEVLAUNCH_NNODES`` / ``BEVLAUNCH_DEVICES_PER_NODE`` (else ``PET_NNODES`` /
  ``PET_NPROC_PER_NODE``, else the config). The node agent (``agent.py``) then starts one
  ``process``-mode child per device.

Why not let Lightning detect this: it picks KubeflowEnvironment whenever ``KUBERNETES_PORT``,
``MASTER_*``, ``WORLD_SIZE`` and ``RANK`` are set (one process per pod, wrong world size), and
the Ascend operator's ``LOCAL_RANK="0,1,...,7"`` makes its LightningEnvironment crash on
``int()``. So the runtime always hands Lightning a ``LightningEnvironment`` in the
externally-launched form, with the variables of :meth:`Topology.process_env` and nothing stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# Variables a scheduler may leave behind that would contradict the resolved topology.
DISTRIBUTED_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)
_NODE_INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "VC_TASK_INDEX", "PET_NODE_RANK", "NODE_RANK")
LOCALHOST = "127.0.0.1"


class TopologyError(ValueError):
    """The distributed environment variables contradict each other or the config."""


@dataclass(frozen=True)
class Topology:
    """The job's shape as seen from one process.

    Attributes:
        mode: ``process`` (this process is one rank) or ``node`` (this process starts
            ``devices_per_node`` ranks).
        num_nodes: nodes in the job.
        devices_per_node: ranks per node.
        node_rank: this node's index.
        master_addr: rank 0's address (``127.0.0.1`` on a single node).
        master_port: rendezvous port; None = pick a free one (single node only).
        local_rank: this process's rank on its node (``process`` mode), else None.
    """

    mode: Literal["process", "node"]
    num_nodes: int
    devices_per_node: int
    node_rank: int
    master_addr: str
    master_port: int | None
    local_rank: int | None = None

    @property
    def world_size(self) -> int:
        return self.num_nodes * self.devices_per_node

    @property
    def rank(self) -> int | None:
        """Global rank (``process`` mode), computed as Lightning does."""
        if self.local_rank is None:
            return None
        return self.node_rank * self.devices_per_node + self.local_rank

    def child(self, local_rank: int, master_port: int) -> Topology:
        """The ``process``-mode topology of local rank ``local_rank`` on this node."""
        return Topology(
            "process",
            self.num_nodes,
            self.devices_per_node,
            self.node_rank,
            self.master_addr,
            master_port,
            local_rank,
        )

    def process_env(self) -> dict[str, str]:
        """Torchrun-style variables of a ``process``-mode topology (what Lightning reads)."""
        if self.local_rank is None or self.master_port is None:
            raise TopologyError("process_env needs a process-mode topology with a port")
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.devices_per_node),
            "NODE_RANK": str(self.node_rank),
            "GROUP_RANK": str(self.node_rank),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
        }


def _int(env: Mapping[str, str], name: str) -> int | None:
    """``env[name]`` as an int; None when unset or not a single integer (e.g. ``"0,1,2"``)."""
    value = env.get(name, "").strip()
    return int(value) if value.lstrip("-").isdigit() else None


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = _int(env, name)
        if value is not None:
            return value
    return None


def resolve_topology(env: Mapping[str, str], nodes: int, devices_per_node: int) -> Topology:
    """Resolve the topology from environment variables, with the config as the fallback.

    Args:
        env: the process environment.
        nodes: ``resources.nodes`` of the run config.
        devices_per_node: ``resources.devices_per_node`` of the run config.

    Raises:
        TopologyError: inconsistent variables, or a multi-node job without ``MASTER_ADDR``.
    """
    rank, world, local_rank = _int(env, "RANK"), _int(env, "WORLD_SIZE"), _int(env, "LOCAL_RANK")
    if rank is not None and world is not None and local_rank is not None:
        return _process_topology(env, rank, world, local_rank, devices_per_node)
    # Without a single-integer LOCAL_RANK, RANK is a pod's rank: the Kubeflow operator's pod
    # index (LOCAL_RANK unset) or the Ascend operator's (LOCAL_RANK="0,1,...,7").
    node_rank = _first(env, (*_NODE_INDEX_VARIABLES, "GROUP_RANK", "RANK")) or 0
    num_nodes = _first(env, ("BEVLAUNCH_NNODES", "PET_NNODES")) or nodes
    per_node = (
        _first(env, ("BEVLAUNCH_DEVICES_PER_NODE", "PET_NPROC_PER_NODE", "LOCAL_WORLD_SIZE"))
        or devices_per_node
    )
    if not 0 <= node_rank < num_nodes:
        raise TopologyError(f"node rank {node_rank} is outside 0..{num_nodes - 1}")
    addr, port = _rendezvous(env, num_nodes)
    return Topology("node", num_nodes, per_node, node_rank, addr, port)


def _process_topology(
    env: Mapping[str, str], rank: int, world: int, local_rank: int, devices_per_node: int
) -> Topology:
    per_node = _int(env, "LOCAL_WORLD_SIZE") or min(devices_per_node, world)
    if world % per_node:
        raise TopologyError(f"WORLD_SIZE={world} is not a multiple of LOCAL_WORLD_SIZE={per_node}")
    num_nodes = world // per_node
    node_rank = _first(env, ("NODE_RANK", "GROUP_RANK"))
    if node_rank is None:
        node_rank = rank // per_node
    # Lightning derives the global rank as node_rank * devices + local_rank; it must agree.
    if not (0 <= local_rank < per_node and rank == node_rank * per_node + local_rank < world):
        raise TopologyError(
            f"RANK={rank} does not match NODE_RANK={node_rank} x LOCAL_WORLD_SIZE={per_node} + "
            f"LOCAL_RANK={local_rank} (WORLD_SIZE={world})"
        )
    addr, port = _rendezvous(env, num_nodes)
    if port is None and world > 1:
        raise TopologyError("MASTER_PORT is not set for a job of several processes")
    return Topology("process", num_nodes, per_node, node_rank, addr, port, local_rank)


def _rendezvous(env: Mapping[str, str], num_nodes: int) -> tuple[str, int | None]:
    port = _int(env, "MASTER_PORT")
    if num_nodes == 1:
        # A single node never needs the cluster address (a Service name that may not resolve
        # for a pod that is not ready yet); loopback always works.
        return LOCALHOST, port
    addr = env.get("MASTER_ADDR", "").strip()
    if not addr or port is None:
        raise TopologyError(
            f"MASTER_ADDR and MASTER_PORT must name rank 0 for a {num_nodes}-node job "
            f"(got {addr or 'unset'}:{env.get('MASTER_PORT', 'unset')})"
        )
    return addr, port
