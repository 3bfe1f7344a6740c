"""The resolved run config (``config.json``, schema 1; docs/RUN_CONTRACT.md) as frozen dataclasses.

Parsing is strict: every section and field of the contract must be present (the launcher
resolves everything), unknown fields are refused with a "did you mean" suggestion, and every
error is one line naming the dotted field path.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bevdepth.data.synthetic import SyntheticConfig

SCHEMA = 1
Stage = Literal["prepare", "train", "eval", "bench"]
STAGES: tuple[str, ...] = typing.get_args(Stage)


class ConfigError(ValueError):
    """The run config is missing, unreadable or invalid; the message names the field."""


@dataclass(frozen=True)
class RunSection:
    name: str
    dir: str


@dataclass(frozen=True)
class DataSection:
    root: str
    prepared_root: str | None
    synthetic: SyntheticConfig | None
    image_mode: Literal["exact", "fast"]
    num_workers: int


@dataclass(frozen=True)
class ModelSection:
    preset: Literal["reference", "small"]
    checkpoint: str | None
    imagenet_backbone: str | None


@dataclass(frozen=True)
class TrainingSection:
    epochs: int
    batch_per_device: int
    lr_per_image: float
    weight_decay: float
    lr_milestones: tuple[int, ...]
    gradient_clip: float
    precision: Literal["16-mixed", "bf16-mixed", "32-true"]
    seed: int
    checkpoint_every_steps: int
    keep_checkpoints: int
    max_steps: int | None
    resume_from: str | None


@dataclass(frozen=True)
class EvalSection:
    batch_per_device: int
    checkpoint: str | None
    split: Literal["train", "val"]


@dataclass(frozen=True)
class BenchSection:
    warmup_steps: int
    steps: int


@dataclass(frozen=True)
class ResourcesSection:
    accelerator: Literal["npu", "gpu", "cpu"]
    nodes: int
    devices_per_node: int


@dataclass(frozen=True)
class RunConfig:
    """The whole resolved config; field meanings are in docs/RUN_CONTRACT.md section 1."""

    schema: int
    run: RunSection
    stages: tuple[Stage, ...]
    data: DataSection
    model: ModelSection
    training: TrainingSection
    eval: EvalSection
    bench: BenchSection
    resources: ResourcesSection

    @property
    def run_dir(self) -> Path:
        return Path(self.run.dir)

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def prepared_root(self) -> Path:
        return Path(self.data.prepared_root or self.data.root)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (tuples as lists), as stored in results.json."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


# Positive-integer fields (path -> minimum); the type parser only checks types.
_MINIMUM = {
    "data.num_workers": 0,
    "training.epochs": 1,
    "training.batch_per_device": 1,
    "training.checkpoint_every_steps": 1,
    "training.keep_checkpoints": 1,
    "training.max_steps": 1,
    "eval.batch_per_device": 1,
    "bench.warmup_steps": 0,
    "bench.steps": 1,
    "resources.nodes": 1,
    "resources.devices_per_node": 1,
}


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read and validate ``config.json``.

    Raises:
        ConfigError: missing file, invalid JSON or any invalid field.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the run config ({e.strerror})") from e
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e
    return parse_config(raw)


def parse_config(raw: Any) -> RunConfig:
    """Validate a decoded ``config.json``; see :func:`load_config`."""
    config = _parse(RunConfig, raw, "")
    if config.schema != SCHEMA:
        raise ConfigError(f"schema: {config.schema} is not supported; this workload reads {SCHEMA}")
    for path, minimum in _MINIMUM.items():
        section, name = path.split(".")
        value = getattr(getattr(config, section), name)
        if value is not None and value < minimum:
            raise ConfigError(f"{path}: {value} must be at least {minimum}")
    if not config.stages or len(set(config.stages)) != len(config.stages):
        raise ConfigError(f"stages: {list(config.stages)} must be a non-empty list without repeats")
    if list(config.training.lr_milestones) != sorted(config.training.lr_milestones):
        raise ConfigError(f"training.lr_milestones: {list(config.training.lr_milestones)} unsorted")
    if config.data.synthetic is not None:
        try:
            config.data.synthetic.validate()
        except ValueError as e:
            raise ConfigError(f"data.synthetic.{e}") from e
    return config


def _parse(kind: Any, value: Any, path: str) -> Any:
    """``value`` checked against the type annotation ``kind``; ``path`` names it in errors."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _parse(inner, value, path)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(json.dumps(arg) for arg in args)
            raise ConfigError(f"{path}: {json.dumps(value)} is not one of {allowed}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {json.dumps(value)}")
        return tuple(_parse(args[0], item, f"{path}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(kind):
        return _parse_dataclass(kind, value, path)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str) and isinstance(value, kind) and not isinstance(value, bool):
        return value
    expected = {int: "an integer", float: "a number", str: "a string"}[kind]
    raise ConfigError(f"{path}: expected {expected}, got {json.dumps(value)}")


def _parse_dataclass(kind: type, value: Any, path: str) -> Any:
    where = path or "config"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object, got {json.dumps(value)}")
    hints = typing.get_type_hints(kind)
    fields = {f.name: f for f in dataclasses.fields(kind)}
    for key in value:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{_join(path, key)}: unknown field{suggestion}")
    parsed = {}
    for name, f in fields.items():
        if name in value:
            parsed[name] = _parse(hints[name], value[name], _join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_join(path, name)}: missing")
    return kind(**parsed)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
