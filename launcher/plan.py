"""Resolved run config → :class:`RunPlan`: what a backend runs, stage by stage. Pure functions.

A backend is told *what* to run, never how the workload works: each stage is an argv (always a
list; no shell ever parses it), an environment and a number of processes. The workload's command
line comes from :func:`workload_argv` alone, for the local backend and for the Kubernetes pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# `python -m bevdepth`: the interpreter inside the image. The local backend substitutes its own
# interpreter (the venv that has bevdepth installed).
WORKLOAD_PROGRAM: tuple[str, ...] = ("python", "-m", "bevdepth")

LOCALHOST = "127.0.0.1"
# Stages whose work runs on global rank 0 alone (the others would only wait at a barrier), so
# the local backend starts a single process for them.
SINGLE_PROCESS_STAGES = frozenset({"prepare"})


def workload_argv(
    config_path: str,
    stages: Sequence[str] | None = None,
    *,
    program: Sequence[str] = WORKLOAD_PROGRAM,
) -> list[str]:
    """The workload's command line (run contract §2).

    Args:
        config_path: the resolved ``config.json`` as the process sees it.
        stages: a subset of the config's stages to run (``--stages a,b``); None runs them all.
        program: how to start the workload, e.g. ``(sys.executable, "-m", "bevdepth")``.

    Returns:
        ``[*program, "run", "--config", config_path]`` plus ``--stages`` when given.
    """
    argv = [*program, "run", "--config", config_path]
    if stages is not None:
        argv += ["--stages", ",".join(stages)]
    return argv


@dataclass(frozen=True)
class StagePlan:
    """One stage: ``processes`` copies of ``argv`` (one per rank), each with ``env`` + its rank's.

    Attributes:
        name: ``prepare``, ``train``, ``eval`` or ``bench``.
        argv: the command of every rank.
        env: variables every rank gets (the user's ``env`` and bevlaunch's own), rank ones aside.
        processes: how many ranks run on this node.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    processes: int


@dataclass(frozen=True)
class RunPlan:
    """The stages of a run, in order, and where the run lives.

    Attributes:
        name: the run name.
        run_dir: the run directory (``config.json``, ``logs/``, ``results.json``, ...).
        config_path: the resolved config the stages read.
        accelerator: ``npu``, ``gpu`` or ``cpu``.
        stages: what to run, in order; a failed stage ends the run.
    """

    name: str
    run_dir: str
    config_path: str
    accelerator: str
    stages: tuple[StagePlan, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the local backend hands it to its supervisor process)."""
        return {
            "name": self.name,
            "run_dir": self.run_dir,
            "config_path": self.config_path,
            "accelerator": self.accelerator,
            "stages": [
                {"name": s.name, "argv": list(s.argv), "env": dict(s.env), "processes": s.processes}
                for s in self.stages
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            run_dir=data["run_dir"],
            config_path=data["config_path"],
            accelerator=data["accelerator"],
            stages=tuple(
                StagePlan(s["name"], tuple(s["argv"]), dict(s["env"]), int(s["processes"]))
                for s in data["stages"]
            ),
        )


def build_plan(
    config: Mapping[str, Any],
    config_path: str,
    *,
    user_env: Mapping[str, str],
    program: Sequence[str] = WORKLOAD_PROGRAM,
    cpu_count: int = 1,
) -> RunPlan:
    """The local plan of a resolved config: every stage of ``config["stages"]`` on this node.

    Args:
        config: the resolved run config (``bevlaunch.resolve.resolve_config``).
        config_path: where that config is written.
        user_env: the spec's ``env`` (already validated: no reserved names).
        program: how to start the workload (see :func:`workload_argv`).
        cpu_count: CPU cores of this machine, to share between CPU ranks.
    """
    resources = config["resources"]
    ranks = resources["nodes"] * resources["devices_per_node"]
    stages = []
    for stage in config["stages"]:
        # The reference workload's Lightning starts the ranks itself: one agent per node.
        single = stage in SINGLE_PROCESS_STAGES or config.get("workload") == "reference"
        processes = 1 if single else ranks
        env = {"PYTHONUNBUFFERED": "1", "BEVLAUNCH_RUN": config["run"]["name"]}
        if resources["accelerator"] == "cpu":
            # As torchrun does: without this every rank starts one thread per core and the
            # ranks fight over the cores.
            env["OMP_NUM_THREADS"] = str(max(1, cpu_count // processes))
        env.update(user_env)
        argv = workload_argv(config_path, [stage], program=program)
        stages.append(StagePlan(stage, tuple(argv), env, processes))
    return RunPlan(
        name=config["run"]["name"],
        run_dir=config["run"]["dir"],
        config_path=config_path,
        accelerator=resources["accelerator"],
        stages=tuple(stages),
    )


def rank_env(processes: int, rank: int, master_port: int) -> dict[str, str]:
    """Torchrun-style variables of one rank on a single node (run contract §3)."""
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(processes),
        "LOCAL_RANK": str(rank),
        "LOCAL_WORLD_SIZE": str(processes),
        "NODE_RANK": "0",
        "MASTER_ADDR": LOCALHOST,
        "MASTER_PORT": str(master_port),
    }
