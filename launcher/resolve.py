"""Job spec → resolved run config (``config.json``, run contract §1, schema 1). Pure functions.

Every value is resolved: no defaults are left for the workload to guess. Paths depend on where
the run happens, so they are injected: ``base_dir`` (an absolute directory, usually the
current directory) for the local backend; fixed mount points inside the pod for Kubernetes.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from bevlaunch.errors import SpecError
from bevlaunch.spec import Backend, JobSpec, Workload

SCHEMA = 1

# Mount points inside a pod (render.py mounts the volumes there).
CONFIG_DIR = "/etc/bevlaunch"
CONFIG_PATH = f"{CONFIG_DIR}/config.json"
DATA_MOUNT = "/mnt/data"
OUTPUT_MOUNT = "/mnt/output"

# Local backend layout under base_dir (matches the contract's golden file).
LOCAL_RUNS_DIR = "runs"
LOCAL_SYNTHETIC_DIR = "data/synthetic"
# Synthetic data on Kubernetes is generated into the (writable) output volume.
POD_SYNTHETIC_DIR = f"{OUTPUT_MOUNT}/data/synthetic"
# A mounted nuScenes dataroot is read-only: its infos and depth_gt/ go to the output volume.
POD_PREPARED_DIR = f"{OUTPUT_MOUNT}/prepared"


def run_dir(spec: JobSpec, *, base_dir: str | None = None) -> str:
    """The run directory: ``<output>/<name>`` (local) or ``<output mount>/runs/<name>`` (pod)."""
    if spec.backend is Backend.KUBERNETES:
        return f"{OUTPUT_MOUNT}/runs/{spec.name}"
    base = _base(base_dir)
    out = _under(base, spec.output.path or LOCAL_RUNS_DIR)
    return str(out / spec.name)


def data_roots(spec: JobSpec, *, base_dir: str | None = None) -> tuple[str, str | None]:
    """(``data.root``, ``data.prepared_root``) as the workload sees them."""
    data = spec.data
    if spec.backend is Backend.KUBERNETES:
        if data.synthetic is not None:
            return POD_SYNTHETIC_DIR, data.prepared_root
        return DATA_MOUNT, data.prepared_root or POD_PREPARED_DIR
    base = _base(base_dir)
    if data.synthetic is not None:
        return str(base / LOCAL_SYNTHETIC_DIR), _maybe_under(base, data.prepared_root)
    return str(_under(base, data.path or ".")), _maybe_under(base, data.prepared_root)


def resolve_config(spec: JobSpec, *, base_dir: str | None = None) -> dict[str, Any]:
    """The contract config for ``spec``. ``base_dir`` is required for the local backend."""
    root, prepared = data_roots(spec, base_dir=base_dir)
    training = spec.training
    synthetic = spec.data.synthetic
    # Optional (contract §1): absent means native, so native configs stay as they were.
    workload = {} if spec.workload is Workload.NATIVE else {"workload": spec.workload.value}
    return {
        "schema": SCHEMA,
        **workload,
        "run": {"name": spec.name, "dir": run_dir(spec, base_dir=base_dir)},
        "stages": spec.stages.ordered(),
        "data": {
            "root": root,
            "prepared_root": prepared,
            "synthetic": None if synthetic is None else synthetic.model_dump(mode="json"),
            "image_mode": spec.data.image_mode,
            "num_workers": spec.data.num_workers,
        },
        "model": {
            "preset": spec.model.preset,
            "checkpoint": spec.model.checkpoint,
            "imagenet_backbone": spec.model.imagenet_backbone,
        },
        "training": {
            "epochs": training.epochs,
            "batch_per_device": training.batch_per_device,
            "lr_per_image": training.lr_per_image,
            "weight_decay": training.weight_decay,
            "lr_milestones": list(training.lr_milestones),
            "gradient_clip": training.gradient_clip,
            "precision": training.precision,
            "seed": training.seed,
            "checkpoint_every_steps": training.checkpoint_every_steps,
            "keep_checkpoints": training.keep_checkpoints,
            "max_steps": training.max_steps,
            "resume_from": training.resume_from,
        },
        "eval": {
            "batch_per_device": spec.evaluation.batch_per_device or training.batch_per_device,
            "checkpoint": spec.evaluation.checkpoint,
            "split": spec.evaluation.split,
        },
        "bench": {"warmup_steps": spec.bench.warmup_steps, "steps": spec.bench.steps},
        "resources": {
            "accelerator": spec.resources.accelerator.value,
            "nodes": spec.resources.nodes,
            "devices_per_node": spec.resources.devices_per_node,
        },
    }


def _base(base_dir: str | None) -> PurePosixPath:
    if base_dir is None or not str(base_dir).startswith("/"):
        raise SpecError(
            "the local backend needs an absolute base directory to resolve paths "
            f"(given {base_dir!r})"
        )
    return PurePosixPath(base_dir)


def _under(base: PurePosixPath, path: str) -> PurePosixPath:
    # Lexical only (no file system access): "a/../b" stays as written apart from "." parts.
    return PurePosixPath(path) if path.startswith("/") else base / path


def _maybe_under(base: PurePosixPath, path: str | None) -> str | None:
    return None if path is None else str(_under(base, path))
