"""The ``train`` stage: reference optimisation, rolling checkpoints, automatic resume."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from bevdepth.model import build_model, load_imagenet_backbone, preset
from bevdepth.runtime.checkpoints import (
    CheckpointNotFoundError,
    RollingCheckpoints,
    checkpoint_step,
    load_model_weights,
    newest_checkpoint,
)
from bevdepth.runtime.config import ConfigError, RunConfig
from bevdepth.runtime.context import RankContext
from bevdepth.runtime.datamodule import BEVDataModule, bev_dataset, steps_per_epoch
from bevdepth.runtime.lightning_module import BEVDepthModule, OptimSettings
from bevdepth.runtime.plots import plot_losses
from bevdepth.runtime.trainer import ProgressReporter, build_trainer


def resume_checkpoint(config: RunConfig) -> Path | None:
    """``training.resume_from``, else the newest complete checkpoint of this run, else None."""
    if config.training.resume_from is not None:
        path = Path(config.training.resume_from)
        if not path.is_file():
            raise CheckpointNotFoundError(f"training.resume_from: {path} does not exist")
        return path
    return newest_checkpoint(config.checkpoint_dir)


def train(ctx: RankContext) -> None:
    """Train (or resume training) the configured model; writes checkpoints and a loss plot.

    Raises:
        DatasetFileError: missing data root, infos or depth files.
        CheckpointMismatchError: a resume or start checkpoint that does not fit the model.
        NonFiniteLossError: the loss became NaN or infinite.
    """
    config, settings = ctx.config, ctx.config.training
    model_config = preset(config.model.preset)
    train_set = bev_dataset(config, model_config, "train", train=True)
    per_epoch = steps_per_epoch(len(train_set), ctx.world_size, settings.batch_per_device)
    if per_epoch == 0:
        raise ConfigError(
            f"training.batch_per_device: {settings.batch_per_device} x {ctx.world_size} ranks "
            f"exceeds the {len(train_set)} training samples"
        )
    L.seed_everything(settings.seed, workers=True)
    model = build_model(model_config)
    resume = resume_checkpoint(config)
    if resume is not None:
        # Lightning would fail on a mismatch too, but with a bare RuntimeError; this names it.
        load_model_weights(model, resume)
    elif config.model.checkpoint is not None:
        load_model_weights(model, config.model.checkpoint)
    elif config.model.imagenet_backbone is not None:
        load_imagenet_backbone(model, config.model.imagenet_backbone)

    global_batch = settings.batch_per_device * ctx.world_size
    lr = settings.lr_per_image * global_batch  # the reference's linear scaling rule
    module = BEVDepthModule(
        model,
        OptimSettings(
            lr, settings.weight_decay, settings.lr_milestones, config.resources.accelerator
        ),
    )
    max_steps = settings.epochs * per_epoch
    if settings.max_steps is not None:
        max_steps = min(max_steps, settings.max_steps)
    callbacks = [
        ProgressReporter(ctx, "train", global_batch, max_steps),
        RollingCheckpoints(
            config.checkpoint_dir,
            settings.checkpoint_every_steps,
            settings.keep_checkpoints,
            on_saved=lambda path, epoch, step, reason: ctx.emit(
                "checkpoint", path=str(path.resolve()), epoch=epoch, step=step, reason=reason
            ),
        ),
    ]
    trainer, precision = build_trainer(
        ctx,
        callbacks=callbacks,
        max_epochs=settings.epochs,
        max_steps=settings.max_steps,
        gradient_clip=settings.gradient_clip,
    )
    ctx.emit(
        "start",
        **ctx.start_fields("train"),
        precision=precision,
        epochs=settings.epochs,
        steps_per_epoch=per_epoch,
        global_batch=global_batch,
        lr=lr,
        resume_from=None if resume is None else str(resume.resolve()),
        resume_step=0 if resume is None else checkpoint_step(resume),
    )
    datamodule = BEVDataModule(
        train_set,
        None,
        train_batch=settings.batch_per_device,
        predict_batch=config.eval.batch_per_device,
        num_workers=config.data.num_workers,
        seed=settings.seed,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    if ctx.is_zero:
        plot_losses(config.run_dir / "events.jsonl", config.run_dir / "plots" / "losses.png")
