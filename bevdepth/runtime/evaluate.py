"""The ``eval`` stage: distributed inference, gathered to rank 0, scored by the devkit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch.distributed as dist

from bevdepth.model import build_model, preset
from bevdepth.runtime.checkpoints import (
    CheckpointNotFoundError,
    load_model_weights,
    newest_checkpoint,
)
from bevdepth.runtime.config import RunConfig
from bevdepth.runtime.context import RankContext
from bevdepth.runtime.datamodule import BEVDataModule, bev_dataset
from bevdepth.runtime.lightning_module import BEVDepthModule
from bevdepth.runtime.plots import plot_per_class_ap
from bevdepth.runtime.results import update_results
from bevdepth.runtime.submission import (
    SubmissionBox,
    eval_set_of,
    score_submission,
    summary_metrics,
)
from bevdepth.runtime.trainer import build_trainer

FPS_METHOD = "evaluated samples / wall seconds of distributed inference (all ranks, with loading)"


def eval_checkpoint(config: RunConfig) -> Path:
    """``eval.checkpoint``, else the newest checkpoint of this run, else ``model.checkpoint``.

    Raises:
        CheckpointNotFoundError: none of them exists.
    """
    if config.eval.checkpoint is not None:
        return Path(config.eval.checkpoint)
    newest = newest_checkpoint(config.checkpoint_dir)
    if newest is not None:
        return newest
    if config.model.checkpoint is not None:
        return Path(config.model.checkpoint)
    raise CheckpointNotFoundError(
        f"nothing to evaluate: no checkpoint in {config.checkpoint_dir} and neither "
        "eval.checkpoint nor model.checkpoint is set"
    )


def gather_predictions(local: list[Any], world_size: int) -> list[Any]:
    """Every rank's items, concatenated (all ranks get all of them)."""
    if world_size == 1:
        return local
    parts: list[Any] = [None] * world_size
    dist.all_gather_object(parts, local)
    return [item for part in parts for item in part]


def evaluate(ctx: RankContext) -> dict[str, Any] | None:
    """Evaluate a checkpoint on ``eval.split``; rank 0 writes results.json and returns it.

    Raises:
        DatasetFileError: missing data root or infos, or no annotated version to score.
        CheckpointNotFoundError, CheckpointMismatchError: nothing loadable to evaluate.
    """
    config = ctx.config
    model_config = preset(config.model.preset)
    dataset = bev_dataset(config, model_config, config.eval.split, train=False)
    version, eval_set = eval_set_of(config.data.root, config.eval.split)
    checkpoint = eval_checkpoint(config)
    model = build_model(model_config)
    load_model_weights(model, checkpoint)
    trainer, _ = build_trainer(ctx, callbacks=[])
    ctx.emit(
        "start",
        **ctx.start_fields("eval"),
        checkpoint=str(checkpoint.resolve()),
        samples=len(dataset),
    )
    datamodule = BEVDataModule(
        None,
        dataset,
        train_batch=config.training.batch_per_device,
        predict_batch=config.eval.batch_per_device,
        num_workers=config.data.num_workers,
        seed=config.training.seed,
    )
    started = time.perf_counter()
    batches = trainer.predict(BEVDepthModule(model), datamodule=datamodule)
    pairs: list[tuple[str, list[SubmissionBox]]] = gather_predictions(
        [pair for batch in batches for pair in batch], ctx.world_size
    )
    seconds = time.perf_counter() - started
    if not ctx.is_zero:
        return None
    results = dict(pairs)
    if len(results) != len(dataset):
        raise RuntimeError(f"gathered {len(results)} of {len(dataset)} evaluated samples")
    out = config.run_dir / "eval"
    metrics = summary_metrics(score_submission(config.data.root, version, eval_set, results, out))
    headline = {k: metrics[k] for k in ("mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "NDS")}
    payload = {
        "checkpoint": str(checkpoint.resolve()),
        "version": version,
        "eval_set": eval_set,
        "samples": len(dataset),
        "samples_per_s": len(dataset) / seconds,
        "fps_method": FPS_METHOD,
        "metrics": headline,
        "per_class_ap": metrics["per_class_ap"],
        "per_class_ap_by_distance": metrics["per_class_ap_by_distance"],
        "per_class_tp_errors": metrics["per_class_tp_errors"],
        "submission": str((out / "results_nusc.json").resolve()),
    }
    path = update_results(config, "eval", payload)
    plot_per_class_ap(metrics["per_class_ap"], config.run_dir / "plots" / "per_class_ap.png")
    ctx.emit(
        "metrics",
        stage="eval",
        **headline,
        per_class_ap=metrics["per_class_ap"],
        samples_per_s=payload["samples_per_s"],
        samples=len(dataset),
        eval_set=eval_set,
        checkpoint=payload["checkpoint"],
        results=str(path.resolve()),
    )
    return payload
