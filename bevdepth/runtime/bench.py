"""The ``bench`` stage: training throughput after warm-up, computed as the reference does.

FPS = batch_per_device / mean step time x world size (the DrivingSDK BEVDepth scripts' formula);
images/s = FPS x frames x cameras (2 x 6 = 12 for the 2key configuration). A step's time is the
wall time between the ends of two consecutive optimizer steps (device synchronised), so data
loading that the workers do not hide counts, as it does in the reference's step timer.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L

from bevdepth import device
from bevdepth.data.constants import CAMERAS
from bevdepth.model import build_model, preset
from bevdepth.runtime.checkpoints import load_model_weights
from bevdepth.runtime.context import RankContext
from bevdepth.runtime.datamodule import BEVDataModule, bev_dataset, steps_per_epoch
from bevdepth.runtime.lightning_module import BEVDepthModule, OptimSettings
from bevdepth.runtime.results import update_results
from bevdepth.runtime.trainer import ProgressReporter, build_trainer

METHOD = "samples_per_s = batch_per_device / mean step time (after warm-up) x world size"


class StepTimer(L.Callback):
    """Seconds between the ends of consecutive optimizer steps (the first from the fit start)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._last = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        device.synchronize(trainer.strategy.root_device)
        now = time.perf_counter()
        self.seconds.append(now - self._last)
        self._last = now


def bench(ctx: RankContext) -> dict[str, Any] | None:
    """Run ``bench.warmup_steps + bench.steps`` training steps (no checkpoints) and report FPS."""
    config, settings = ctx.config, ctx.config.bench
    model_config = preset(config.model.preset)
    train_set = bev_dataset(config, model_config, "train", train=True)
    batch = config.training.batch_per_device
    per_epoch = steps_per_epoch(len(train_set), ctx.world_size, batch)
    total = settings.warmup_steps + settings.steps
    L.seed_everything(config.training.seed, workers=True)
    model = build_model(model_config)
    if config.model.checkpoint is not None:
        load_model_weights(model, config.model.checkpoint)
    global_batch = batch * ctx.world_size
    lr = config.training.lr_per_image * global_batch
    module = BEVDepthModule(
        model,
        OptimSettings(
            lr,
            config.training.weight_decay,
            config.training.lr_milestones,
            config.resources.accelerator,
        ),
    )
    timer = StepTimer()
    trainer, precision = build_trainer(
        ctx,
        callbacks=[timer, ProgressReporter(ctx, "bench", global_batch, total)],
        max_epochs=math.ceil(total / max(per_epoch, 1)),
        max_steps=total,
        gradient_clip=config.training.gradient_clip,
    )
    ctx.emit(
        "start",
        **ctx.start_fields("bench"),
        precision=precision,
        epochs=trainer.max_epochs,
        steps_per_epoch=per_epoch,
        global_batch=global_batch,
        lr=lr,
    )
    datamodule = BEVDataModule(
        train_set,
        None,
        train_batch=batch,
        predict_batch=config.eval.batch_per_device,
        num_workers=config.data.num_workers,
        seed=config.training.seed,
    )
    trainer.fit(module, datamodule=datamodule)
    if not ctx.is_zero:
        return None
    measured = timer.seconds[settings.warmup_steps :]
    step_time = sum(measured) / len(measured)
    samples_per_s = batch / step_time * ctx.world_size
    payload = {
        "step_time_s": step_time,
        "samples_per_s": samples_per_s,
        "images_per_s": samples_per_s * model_config.num_frames * len(CAMERAS),
        "steps": len(measured),
        "warmup_steps": settings.warmup_steps,
        "world_size": ctx.world_size,
        "batch_per_device": batch,
        "precision": precision,
        "method": METHOD,
    }
    update_results(config, "bench", payload)
    ctx.emit("metrics", stage="bench", **payload)
    return payload
