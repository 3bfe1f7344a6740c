"""The job spec users write (``train.yaml``): pydantic v2 models and their validation. No I/O.

:func:`spec_from_dict` turns a mapping into a :class:`JobSpec` (``bevlaunch.loader`` reads files
and YAML). Every problem is reported as one line naming the dotted field path and what is
allowed; unknown keys get a "did you mean" suggestion.

Defaults reproduce the reference recipe: 8 devices x batch 8 per device, 24 epochs, fp16 mixed
precision, lr 3.125e-6 per image (2e-4 / 64), seed 0, weight decay 1e-7, the reference model.
"""

from __future__ import annotations

import difflib
import re
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bevlaunch.errors import SpecError

# Reference recipe (BEVDepth train_full_8p: 8 devices x batch 8, lr 2e-4 / 64 per image).
REFERENCE_DEVICES_PER_NODE = 8
REFERENCE_BATCH_PER_DEVICE = 8
REFERENCE_EPOCHS = 24
REFERENCE_LR_PER_IMAGE = 2e-4 / 64  # = 3.125e-6
REFERENCE_WEIGHT_DECAY = 1e-7
REFERENCE_LR_MILESTONES = (19, 23)
REFERENCE_GRADIENT_CLIP = 5.0

# A run name becomes a Job, a Service and pod host names `<name>-<index>` (at most 63
# characters), so it is a DNS-1123 label with room for the suffixes.
MAX_NAME_LENGTH = 52
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# registry[:port]/path[:tag][@digest] (OCI distribution reference grammar, simplified).
_IMAGE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@sha256:[0-9a-f]{64})?$"
)
PRECISION_ALIASES = {"fp16": "16-mixed", "bf16": "bf16-mixed", "fp32": "32-true"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes resource quantity, e.g. 64Gi, 500m, 1.5, 2e3.
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?([eE][0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")

# Set by bevlaunch itself (run contract §3); a user's env may not override them.
RESERVED_ENV = frozenset(
    {
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "NODE_RANK",
        "GROUP_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "JOB_COMPLETION_INDEX",
        "BEVLAUNCH_NNODES",
        "BEVLAUNCH_DEVICES_PER_NODE",
        "BEVLAUNCH_RUN",
    }
)


class Backend(str, Enum):
    """Where a run executes: processes on this machine, or a Kubernetes cluster."""

    LOCAL = "local"
    KUBERNETES = "kubernetes"


class Accelerator(str, Enum):
    """The device of every rank: Ascend NPU (HCCL), NVIDIA GPU (NCCL) or CPU (gloo)."""

    NPU = "npu"
    GPU = "gpu"
    CPU = "cpu"


class Workload(str, Enum):
    """What runs in the pods: our BEVDepth, or the published Ascend recipe (docs/REFERENCE.md)."""

    NATIVE = "native"
    REFERENCE = "reference"


# Spec fields the reference workload cannot honour: its experiment script fixes them.
REFERENCE_FIXED_FIELDS = (
    (
        "training",
        (
            "weight_decay",
            "lr_milestones",
            "gradient_clip",
            "checkpoint_every_steps",
            "keep_checkpoints",
        ),
    ),
    ("data", ("image_mode", "num_workers", "prepared_root")),
    ("model", ("imagenet_backbone",)),
)


class Scheduler(str, Enum):
    """Kubernetes scheduler: the default one (Indexed Job) or Volcano (gang-scheduled Job)."""

    DEFAULT = "default"
    VOLCANO = "volcano"


class _Model(BaseModel):
    """Frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Stages(_Model):
    """Which stages run, in the order prepare → train → eval → bench.

    ``eval`` left unset follows ``train``: training is evaluated unless ``eval: false``.
    """

    prepare: bool = True
    train: bool = True
    eval: bool | None = None
    bench: bool = False

    def ordered(self) -> list[str]:
        """The stages that run, in order (the contract's ``stages`` list)."""
        run_eval = self.train if self.eval is None else self.eval
        flags = {"prepare": self.prepare, "train": self.train, "eval": run_eval}
        flags["bench"] = self.bench
        return [stage for stage, on in flags.items() if on]


class ModelSpec(_Model):
    """The model: a preset, and optionally weights to start from or to evaluate."""

    preset: Literal["reference", "small"] = "reference"
    checkpoint: str | None = None
    imagenet_backbone: str | None = None


class PvcSource(_Model):
    """A PersistentVolumeClaim (and a folder inside it) to mount."""

    claim: str
    sub_path: str | None = None

    @field_validator("claim")
    @classmethod
    def _claim_name(cls, value: str) -> str:
        return _check_subdomain(value)


class NfsSource(_Model):
    """An NFS export mounted directly into the pods."""

    server: str
    path: str

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _check_absolute(value)


class SyntheticSpec(_Model):
    """Sizes of a generated dataset (the keys of ``bevdepth.data.synthetic.SyntheticConfig``)."""

    flavour: Literal["mini", "trainval"] = "mini"
    train_scenes: int = Field(2, ge=1)
    val_scenes: int = Field(1, ge=1)
    test_scenes: int = Field(0, ge=0)
    samples_per_scene: int = Field(6, ge=1)
    sweeps_per_sample: int = Field(0, ge=0)
    seed: int = 0


DATA_SOURCES = ("pvc", "host_path", "nfs", "path", "synthetic")


class DataSpec(_Model):
    """Where the nuScenes dataroot comes from: exactly one of the sources in ``DATA_SOURCES``."""

    pvc: PvcSource | None = None
    host_path: str | None = None
    nfs: NfsSource | None = None
    path: str | None = None
    synthetic: SyntheticSpec | None = None
    prepared_root: str | None = None
    image_mode: Literal["exact", "fast"] = "exact"
    num_workers: int = Field(4, ge=0)

    @field_validator("host_path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else _check_absolute(value)


class ResourcesSpec(_Model):
    """Nodes, devices per node and the per-node (pod) cpu, memory and shared memory."""

    nodes: int = Field(1, ge=1, le=1024)
    accelerator: Accelerator = Accelerator.NPU
    devices_per_node: int = Field(REFERENCE_DEVICES_PER_NODE, ge=1, le=64)
    cpu: str | None = None
    memory: str | None = None
    shm: str = "32Gi"

    @field_validator("cpu", "memory", "shm", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("expected a Kubernetes quantity such as 16, 500m or 64Gi")
        text = str(value)
        if not _QUANTITY.match(text):
            raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 16, 500m, 64Gi)")
        return text


class TrainingSpec(_Model):
    """Training hyper-parameters; the defaults are the reference recipe."""

    epochs: int = Field(REFERENCE_EPOCHS, ge=1)
    batch_per_device: int = Field(REFERENCE_BATCH_PER_DEVICE, ge=1)
    lr_per_image: float = Field(REFERENCE_LR_PER_IMAGE, gt=0)
    weight_decay: float = Field(REFERENCE_WEIGHT_DECAY, ge=0)
    lr_milestones: tuple[int, ...] = REFERENCE_LR_MILESTONES
    gradient_clip: float = Field(REFERENCE_GRADIENT_CLIP, gt=0)
    precision: Literal["16-mixed", "bf16-mixed", "32-true"] = "16-mixed"
    seed: int = 0
    checkpoint_every_steps: int = Field(500, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    max_steps: int | None = Field(None, ge=1)
    resume_from: str | None = None

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_alias(cls, value: Any) -> Any:
        # Lightning's strings are canonical; the short names are what people type.
        return PRECISION_ALIASES.get(value, value) if isinstance(value, str) else value


class EvaluationSpec(_Model):
    """Evaluation: split, batch (default: the training batch) and checkpoint."""

    split: Literal["val", "train"] = "val"  # train: check memorisation
    batch_per_device: int | None = Field(None, ge=1)  # None: training.batch_per_device
    checkpoint: str | None = None


class BenchSpec(_Model):
    """The throughput benchmark stage: warm-up steps, then measured steps."""

    warmup_steps: int = Field(5, ge=0)
    steps: int = Field(20, ge=1)


class OutputSpec(_Model):
    """Where the run directory lives: a PVC (Kubernetes) or a local path (local backend)."""

    pvc: PvcSource | None = None
    path: str | None = None


class Toleration(_Model):
    """A pod toleration (Kubernetes field names in snake_case)."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class KubernetesSpec(_Model):
    """Cluster placement: namespace, node selection, priority, identity, scheduler and queue."""

    namespace: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    priority_class: str | None = None
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    scheduler: Scheduler = Scheduler.DEFAULT
    queue: str | None = None  # Kueue LocalQueue (default scheduler) or Volcano queue

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 63 or not _DNS1123_LABEL.match(value)):
            raise ValueError(f"{value!r} is not a DNS-1123 label (lowercase a-z, 0-9, '-')")
        return value

    @field_validator("priority_class", "service_account", "queue")
    @classmethod
    def _object_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_subdomain(value)

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_subdomain(v) for v in value)


class JobSpec(_Model):
    """One training/evaluation run: what to run, on what, with which data."""

    name: str
    image: str | None = None
    backend: Backend = Backend.LOCAL
    workload: Workload = Workload.NATIVE
    stages: Stages = Field(default_factory=Stages)
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataSpec
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    bench: BenchSpec = Field(default_factory=BenchSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > MAX_NAME_LENGTH or not _DNS1123_LABEL.match(value):
            raise ValueError(
                f"{value!r} is not a DNS-1123 label of at most {MAX_NAME_LENGTH} characters "
                "(lowercase a-z, 0-9 and '-', starting and ending with a letter or digit)"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE.match(value):
            raise ValueError(
                f"{value!r} is not an image reference (registry/repo[:tag][@sha256:digest])"
            )
        return value

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_list(cls, value: Any) -> Any:
        # Shorthand `stages: [train]`: listed stages on, the rest off; eval still follows train.
        if isinstance(value, list | tuple):
            unknown = [s for s in value if s not in Stages.model_fields]
            if unknown:
                raise ValueError(
                    f"unknown stage {unknown[0]!r}; expected some of {list(Stages.model_fields)}"
                )
            return {
                "prepare": "prepare" in value,
                "train": "train" in value,
                "eval": True if "eval" in value else None,
                "bench": "bench" in value,
            }
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{key!r} is not an environment variable name")
            if isinstance(item, bool) or item is None or isinstance(item, dict | list):
                raise ValueError(f"{key}: value must be a string or a number, got {item!r}")
            out[key] = str(item)
        return out


# --------------------------------------------------------------------------------------------
# Cross-field rules: (dotted path, message) pairs, checked after the models parsed.


def _cross_checks(spec: JobSpec) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    local = spec.backend is Backend.LOCAL
    chosen = [name for name in DATA_SOURCES if getattr(spec.data, name) is not None]
    if len(chosen) != 1:
        given = ", ".join(chosen) if chosen else "none"
        problems.append(("data", f"set exactly one of {', '.join(DATA_SOURCES)} (given: {given})"))
    elif local and chosen[0] in ("pvc", "host_path", "nfs"):
        problems.append(
            (f"data.{chosen[0]}", "needs backend: kubernetes; the local backend takes data.path")
        )
    elif not local and chosen[0] == "path":
        problems.append(
            ("data.path", "is for the local backend; on Kubernetes use pvc, host_path or nfs")
        )
    if spec.output.pvc is not None and spec.output.path is not None:
        problems.append(("output", "set one of pvc or path, not both"))
    if local:
        if spec.output.pvc is not None:
            problems.append(("output.pvc", "needs backend: kubernetes; use output.path"))
        if spec.resources.nodes != 1:
            problems.append(
                (
                    "resources.nodes",
                    f"the local backend runs on 1 node (given {spec.resources.nodes})",
                )
            )
    else:
        if spec.image is None:
            problems.append(
                ("image", "required for backend: kubernetes (e.g. registry/bevdepth:tag)")
            )
        if spec.output.pvc is None:
            problems.append(
                (
                    "output.pvc",
                    "required for backend: kubernetes (a PVC that holds the run directory)",
                )
            )
        if spec.resources.accelerator is Accelerator.NPU and spec.resources.devices_per_node > 16:
            problems.append(("resources.devices_per_node", "at most 16 NPUs per node"))
    for key in spec.env:
        if not _ENV_NAME.match(key):
            problems.append(
                (f"env.{key}", "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
            )
        elif key in RESERVED_ENV:
            problems.append((f"env.{key}", "is set by bevlaunch (run contract); remove it"))
    if not spec.stages.ordered():
        problems.append(
            ("stages", "no stage selected; turn on at least one of prepare, train, eval")
        )
    if spec.workload is Workload.REFERENCE:
        problems += _reference_checks(spec)
    milestones = list(spec.training.lr_milestones)
    if milestones != sorted(milestones):
        problems.append(("training.lr_milestones", f"must be increasing (given {milestones})"))
    return problems


def _reference_checks(spec: JobSpec) -> list[tuple[str, str]]:
    """The published recipe runs on Ascend NPUs, reads a real dataroot and fixes some fields."""
    problems: list[tuple[str, str]] = []
    if spec.resources.accelerator is not Accelerator.NPU:
        problems.append(
            ("resources.accelerator", "workload: reference runs on npu only (the Ascend stack)")
        )
    if spec.data.synthetic is not None:
        problems.append(
            ("data.synthetic", "workload: reference reads a real nuScenes dataroot (v1.0-trainval)")
        )
    if spec.training.precision == "bf16-mixed":
        problems.append(("training.precision", "workload: reference takes fp16 or fp32"))
    for section, names in REFERENCE_FIXED_FIELDS:
        chosen = getattr(spec, section).model_fields_set
        for name in names:
            if name in chosen:
                problems.append(
                    (
                        f"{section}.{name}",
                        "is fixed by the published recipe under workload: reference; remove it "
                        "(or use workload: native)",
                    )
                )
    return problems


# --------------------------------------------------------------------------------------------
# Mapping → JobSpec.


def spec_from_dict(data: dict[str, Any], *, source: str | None = None) -> JobSpec:
    """Mapping → :class:`JobSpec`, with every problem as one line naming its field path."""
    if not isinstance(data, dict):
        raise SpecError(
            f"the spec must be a mapping (key: value), got {type(data).__name__}", source=source
        )
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError([_describe(err) for err in e.errors()], source=source) from e
    problems = _cross_checks(spec)
    if problems:
        raise SpecError([f"{path}: {message}" for path, message in problems], source=source)
    return spec


def dotted(loc: tuple[Any, ...]) -> str:
    """``('kubernetes', 'tolerations', 0, 'key')`` → ``kubernetes.tolerations[0].key``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at ``loc`` (for suggestions); [] when it is not a model."""
    model: Any = JobSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    path = dotted(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        choices = _fields_at(loc[:-1])
        close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = f" (known: {', '.join(choices)})" if choices and not close else ""
        return f"{path}: unknown field{hint}{known}"
    if kind == "missing":
        return f"{path}: required field is missing"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        return f"{path}: {message}"
    given = err.get("input")
    shown = repr(given)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{path}: {message} (given {shown})"


def _check_absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path")
    return value


def _check_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes object name (lowercase a-z, 0-9, '-', '.')"
        )
    return value
