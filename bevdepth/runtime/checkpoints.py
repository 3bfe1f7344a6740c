"""Run checkpoints: atomic files, a rolling window of the newest K, and finding the newest.

Files are ``<run.dir>/checkpoints/epoch=<E>-step=<S>.ckpt`` (Lightning checkpoints: model,
optimizer, LR scheduler, loop state). Each is written to a hidden temporary file beside it and
renamed into place, so a listed file is always complete, whenever the process is killed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from bevdepth.atomic import atomic_path
from bevdepth.model import BEVDepth, load_reference_checkpoint

_NAME = re.compile(r"^epoch=(\d+)-step=(\d+)\.ckpt$")


def checkpoint_name(epoch: int, step: int) -> str:
    return f"epoch={epoch}-step={step}.ckpt"


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, int, Path]]:
    """Complete checkpoints in ``folder`` as (step, epoch, path), oldest first."""
    found = []
    if Path(folder).is_dir():
        for path in Path(folder).iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append((int(match[2]), int(match[1]), path))
    return sorted(found)


def newest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint with the most optimizer steps in ``folder``, or None."""
    found = list_checkpoints(folder)
    return found[-1][2] if found else None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that never leaves a half-written file under the final name."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        with atomic_path(path) as temporary:
            super().save_checkpoint(checkpoint, temporary, storage_options)


class RollingCheckpoints(L.Callback):
    """Save every ``every_steps`` optimizer steps and at each epoch end; keep the newest ``keep``.

    Args:
        folder: ``<run.dir>/checkpoints``.
        every_steps: step interval.
        keep: how many files to keep (older ones are deleted after a new one is complete).
        on_saved: called on global rank 0 with (path, epoch, step, reason) after each save.
    """

    def __init__(
        self,
        folder: Path,
        every_steps: int,
        keep: int,
        on_saved: Callable[[Path, int, int, str], None],
    ) -> None:
        self.folder = folder
        self.every_steps = every_steps
        self.keep = keep
        self.on_saved = on_saved

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        last_of_epoch = trainer.fit_loop.epoch_loop.batch_progress.current.ready >= (
            trainer.num_training_batches
        )
        # The epoch-end checkpoint follows at once for the last batch; the stop at max_steps
        # gets one here because no epoch end follows it.
        if (step % self.every_steps == 0 and not last_of_epoch) or step == trainer.max_steps:
            self._save(trainer, "steps")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != trainer.max_steps:
            self._save(trainer, "epoch_end")

    def _save(self, trainer: L.Trainer, reason: str) -> None:
        epoch, step = trainer.current_epoch, trainer.global_step
        path = self.folder / checkpoint_name(epoch, step)
        trainer.save_checkpoint(path, weights_only=False)  # collective; rank 0 writes
        if trainer.is_global_zero:
            for _, _, old in list_checkpoints(self.folder)[: -self.keep]:
                old.unlink(missing_ok=True)
            self.on_saved(path, epoch, step, reason)


class CheckpointNotFoundError(FileNotFoundError):
    """A configured checkpoint path does not exist."""


def checkpoint_step(path: str | os.PathLike) -> int:
    """Optimizer steps recorded in a run checkpoint's name (0 for other names)."""
    match = _NAME.match(Path(path).name)
    return int(match[2]) if match else 0


def load_model_weights(model: BEVDepth, path: str | os.PathLike) -> None:
    """Load a run checkpoint or a reference checkpoint into ``model``, strictly.

    Both are unpickled in full (``weights_only=False``): Lightning checkpoints hold optimizer
    and scheduler state besides tensors. Only point the config at files you trust.

    Raises:
        CheckpointNotFoundError: no such file.
        CheckpointMismatchError: its keys or shapes differ from the model's.
    """
    if not Path(path).is_file():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    load_reference_checkpoint(model, path, weights_only=False)
