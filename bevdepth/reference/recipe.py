"""The published Ascend recipe as data: script, arguments, schedule and paths. Pure functions.

The reference workload runs upstream BEVDepth's experiment script with DrivingSDK's adaptation
patches, as the published ``train_full_8p.sh`` / ``train_performance_8p.sh`` do, with the values
of the run config where the recipe takes them (see docs/REFERENCE.md for which do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

# Inside the upstream checkout (the image's /opt/bevdepth-upstream).
EXPERIMENT = "bev_depth_lss_r50_256x704_128x128_24e_2key"
EXPERIMENT_SCRIPT = f"bevdepth/exps/nuscenes/mv/{EXPERIMENT}.py"
GEN_INFO_SCRIPT = "scripts/gen_info.py"
GEN_DEPTH_SCRIPT = "scripts/gen_depth_gt.py"  # added by DrivingSDK's bevdepth.patch
# Upstream reads and writes these relative to its working directory.
DATA_LINK = "data/nuScenes"
OUTPUTS_DIR = f"outputs/{EXPERIMENT}"
# The experiment's MultiStepLR (gamma 0.1), fixed in the script.
LR_MILESTONES = (19, 23)
LR_GAMMA = 0.1

# test/env_npu.sh of the published recipe (device log level error, event log off, task queue
# on, HCCL trust list off, 20 min link-setup timeout).
NPU_ENV: tuple[tuple[str, str], ...] = (
    ("ASCEND_GLOBAL_LOG_LEVEL", "3"),
    ("ASCEND_GLOBAL_EVENT_ENABLE", "0"),
    ("ASCEND_SLOG_PRINT_TO_STDOUT", "0"),
    ("TASK_QUEUE_ENABLE", "2"),
    ("COMBINED_ENABLE", "1"),
    ("HCCL_WHITELIST_DISABLE", "1"),
    ("HCCL_CONNECT_TIMEOUT", "1200"),
)
# env_npu.sh also lowers the device log level with the driver's msnpureport; that needs the
# driver's tools and device access in the pod, and only quiets logs, so it is not done.

# train_full_8p.sh evaluates with `--gpus 1`, on the first node.
EVAL_DEVICES = 1

PRECISION_ARG = {"16-mixed": "16", "32-true": "32"}


@dataclass(frozen=True)
class RecipeArgs:
    """The run-config values the experiment script takes.

    Attributes:
        epochs: ``--max_epochs``.
        batch_per_device: ``--batch_size_per_device``.
        lr_per_image: ``--learning_rate`` (the script multiplies by batch x devices per node).
        seed: ``--seed``.
        precision: a Lightning precision string, ``16-mixed`` or ``32-true``.
        devices_per_node: ``--gpus`` (NPUs, through torch_npu's transfer_to_npu).
        nodes: ``--num_nodes``.
        max_steps: ``--max_steps`` when set.
    """

    epochs: int
    batch_per_device: int
    lr_per_image: float
    seed: int
    precision: str
    devices_per_node: int
    nodes: int
    max_steps: int | None = None

    @property
    def world_size(self) -> int:
        return self.devices_per_node * self.nodes

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch``: per-image lr x batch x devices of ONE node (the
        script's formula, which does not grow with nodes), stepped down at the milestones."""
        drops = sum(1 for milestone in LR_MILESTONES if epoch >= milestone)
        return self.lr_per_image * self.batch_per_device * self.devices_per_node * LR_GAMMA**drops


def _common(args: RecipeArgs) -> list[str]:
    return [
        "--seed",
        str(args.seed),
        "--learning_rate",
        repr(args.lr_per_image),
        "--amp_backend",
        "native",
        "--gpus",
        str(args.devices_per_node),
        "--num_nodes",
        str(args.nodes),
        "--precision",
        PRECISION_ARG[args.precision],
        "--batch_size_per_device",
        str(args.batch_per_device),
    ]


def train_argv(
    python: str, upstream: str, args: RecipeArgs, *, epochs: int, resume_from: str | None
) -> list[str]:
    """The training command (``train_full_8p.sh``; ``epochs=1`` is its performance variant).

    ``--max_epochs`` is always passed: the patched CLI has no default (Lightning's is 1000).
    """
    argv = [python, str(PurePosixPath(upstream) / EXPERIMENT_SCRIPT), *_common(args)]
    argv += ["--max_epochs", str(epochs)]
    if args.max_steps is not None:
        argv += ["--max_steps", str(args.max_steps)]
    if resume_from is not None:
        argv += ["--resume_from_checkpoint", resume_from]  # Lightning 1.6 Trainer argument
    return argv


def eval_argv(
    python: str, upstream: str, args: RecipeArgs, *, batch_per_device: int, checkpoint: str
) -> list[str]:
    """The evaluation command (``-e --ckpt_path``) on ONE device, as ``train_full_8p.sh`` runs
    it (``--gpus 1``): the published numbers come from a single-device pass over val."""
    eval_args = RecipeArgs(
        args.epochs,
        batch_per_device,
        args.lr_per_image,
        args.seed,
        args.precision,
        devices_per_node=EVAL_DEVICES,
        nodes=1,
    )
    return [
        python,
        str(PurePosixPath(upstream) / EXPERIMENT_SCRIPT),
        "-e",
        "--ckpt_path",
        checkpoint,
        *_common(eval_args),
        "--max_epochs",
        str(args.epochs),
    ]


def prepare_argvs(python: str, upstream: str) -> list[list[str]]:
    """Info files, then depth ground truth (train split), with upstream's scripts."""
    root = PurePosixPath(upstream)
    return [[python, str(root / GEN_INFO_SCRIPT)], [python, str(root / GEN_DEPTH_SCRIPT)]]


def npu_env(given: dict[str, str] | None = None) -> dict[str, str]:
    """env_npu.sh's variables, where ``given`` (the spec's env) does not set them."""
    given = given or {}
    return {key: value for key, value in NPU_ENV if key not in given}
