"""The Lightning Trainer of every stage, and the callback that reports training progress."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.strategies import DDPStrategy

from bevdepth import device
from bevdepth.runtime.checkpoints import AtomicCheckpointIO
from bevdepth.runtime.context import RankContext, collective_timeout


def build_trainer(
    ctx: RankContext,
    *,
    callbacks: list[L.Callback],
    max_epochs: int = 1,
    max_steps: int | None = None,
    gradient_clip: float | None = None,
) -> tuple[L.Trainer, str]:
    """A Trainer for this rank's topology and accelerator.

    The processes always exist already (one per rank, see ``environment.py``), so the strategy
    gets an explicit ``LightningEnvironment``; it reads ``LOCAL_RANK``/``NODE_RANK``/``MASTER_*``
    and never spawns. Lightning's own checkpointing, logging and progress bar are off: the
    runtime's callbacks do those jobs.

    Returns:
        The trainer and the precision actually used.
    """
    resources = ctx.config.resources
    precision, precision_plugin, note = device.lightning_precision(
        resources.accelerator, ctx.config.training.precision
    )
    if note:
        ctx.info(note)
    if ctx.world_size > 1:
        strategy: Any = DDPStrategy(
            cluster_environment=LightningEnvironment(),
            process_group_backend=device.process_group_backend(resources.accelerator),
            timeout=collective_timeout(),
        )
    else:
        strategy = "auto"
    plugins: list[Any] = [AtomicCheckpointIO()]
    if precision_plugin is not None:
        plugins.append(precision_plugin)
    trainer = L.Trainer(
        accelerator=device.lightning_accelerator(resources.accelerator),
        devices=ctx.topology.devices_per_node,
        num_nodes=ctx.topology.num_nodes,
        strategy=strategy,
        precision=None if precision_plugin is not None else precision,
        plugins=plugins,
        max_epochs=max_epochs,
        max_steps=-1 if max_steps is None else max_steps,
        gradient_clip_val=gradient_clip,
        gradient_clip_algorithm="norm" if gradient_clip else None,
        callbacks=callbacks,
        default_root_dir=ctx.config.run_dir,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    return trainer, precision


class ProgressReporter(L.Callback):
    """Emits a ``progress`` event from global rank 0 after every optimizer step.

    Args:
        ctx: the rank context (events).
        stage: ``train`` or ``bench``.
        global_batch: samples per step over all ranks.
        max_steps: the step the run stops at.
    """

    def __init__(self, ctx: RankContext, stage: str, global_batch: int, max_steps: int) -> None:
        self.ctx = ctx
        self.stage = stage
        self.global_batch = global_batch
        self.max_steps = max_steps
        self._last = time.perf_counter()
        self._lr = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        # Read before the step: an epoch-interval scheduler may step before the batch-end hook.
        self._lr = trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any
    ) -> None:
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        self.ctx.emit(
            "progress",
            stage=self.stage,
            epoch=trainer.current_epoch,
            step=trainer.global_step,
            steps_per_epoch=trainer.num_training_batches,
            max_steps=self.max_steps,
            loss=float(outputs["loss"]),
            losses={name: float(outputs[name]) for name in ("detection", "depth")},
            lr=self._lr,
            samples_per_s=self.global_batch / seconds if seconds > 0 else None,
        )
