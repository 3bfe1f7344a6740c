"""Datasets, samplers and loaders of training and evaluation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from bevdepth.data.augment import AugConfig, Mode
from bevdepth.data.collate import collate
from bevdepth.data.dataset import NuScenesBEVDataset
from bevdepth.data.depth_gt import depth_file
from bevdepth.data.hints import prepare_command
from bevdepth.data.infos import DatasetFileError
from bevdepth.model.config import BEVDepthConfig
from bevdepth.runtime.config import RunConfig


def bev_dataset(
    config: RunConfig, model: BEVDepthConfig, split: str, train: bool
) -> NuScenesBEVDataset:
    """The dataset of ``split``: augmented with depth labels (train) or the test transform.

    The augmentation is the reference one rescaled to the model's input size (the small
    preset's 128x352 halves the resize limits).

    Raises:
        DatasetFileError: the data root, its infos or (train) its depth files are missing.
    """
    root = Path(config.data.root)
    if not root.is_dir():
        raise DatasetFileError(f"data root {root} does not exist or is not a directory")
    dataset = NuScenesBEVDataset(
        root,
        split,
        prepared_root=config.prepared_root,
        aug=AugConfig.for_final_dim(model.grid.final_dim),
        mode=Mode.TRAIN if train else Mode.TEST,
        return_depth=train,
        image_mode=config.data.image_mode,
        seed=config.training.seed,
    )
    if len(dataset) == 0:
        raise DatasetFileError(f"{dataset.info_path} holds no samples")
    if train:
        _check_depth_files(dataset)
    return dataset


def _check_depth_files(dataset: NuScenesBEVDataset) -> None:
    """Fail before training starts, not in a DataLoader worker hours later."""
    missing = [
        path
        for info in dataset.infos
        for camera in dataset.cameras
        if not (
            path := depth_file(dataset.prepared_root, info["cam_infos"][camera]["filename"])
        ).is_file()
    ]
    if missing:
        command = prepare_command("depth", dataset.dataroot, dataset.prepared_root)
        raise DatasetFileError(
            f"depth file {missing[0]} is missing ({len(missing)} of "
            f"{len(dataset) * len(dataset.cameras)} for the train split); run `{command}`"
        )


def steps_per_epoch(samples: int, world_size: int, batch_per_device: int) -> int:
    """Optimizer steps per epoch: DistributedSampler pads to whole rounds, the loader drops the
    last partial batch."""
    return math.ceil(samples / world_size) // batch_per_device


class EpochSampler(DistributedSampler):
    """DistributedSampler (shuffled, padded) whose ``set_epoch`` also reaches the dataset, and
    that can skip the part of an epoch a resumed run already trained on.

    The dataset's epoch selects its augmentation draws; DataLoader workers copy the dataset
    when an epoch's iterator is created, so the epoch must be set before that.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def skip_once(self, samples: int) -> None:
        """Leave out the first ``samples`` indices of the next iteration only."""
        self._skip = samples

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self._skip :]
        self._skip = 0
        return iter(indices)


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: each sample on exactly one rank, no padding."""

    def __init__(self, length: int, world_size: int, rank: int) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class BEVDataModule(L.LightningDataModule):
    """Loaders over prebuilt datasets (built first so that data errors surface before the
    Trainer starts).

    Args:
        train_set: training dataset, or None when only predicting.
        predict_set: evaluation dataset, or None when only training.
        train_batch: samples per device and step.
        predict_batch: samples per device in evaluation.
        num_workers: DataLoader worker processes per rank.
        seed: shuffling seed (the same on every rank).
    """

    def __init__(
        self,
        train_set: Dataset | None,
        predict_set: Dataset | None,
        *,
        train_batch: int,
        predict_batch: int,
        num_workers: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.train_set = train_set
        self.predict_set = predict_set
        self.train_batch = train_batch
        self.predict_batch = predict_batch
        self.num_workers = num_workers
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSampler(
            self.train_set,
            num_replicas=self.trainer.world_size,
            rank=self.trainer.global_rank,
            shuffle=True,
            seed=self.seed,
        )
        # Lightning creates the first epoch's iterator (and with it the worker processes)
        # before it calls set_epoch, and after restoring a checkpoint's loop state; so the
        # epoch (the one Lightning passes to set_epoch) and the batches of it already trained
        # on are taken from the restored loop here.
        loop = self.trainer.fit_loop
        sampler.set_epoch(loop.epoch_progress.current.processed)
        done = loop.epoch_loop.batch_progress.current.ready
        if 0 < done < len(sampler) // self.train_batch:
            sampler.skip_once(done * self.train_batch)
        return self._loader(self.train_set, self.train_batch, sampler, drop_last=True)

    def predict_dataloader(self) -> DataLoader:
        sampler = ShardSampler(
            len(self.predict_set), self.trainer.world_size, self.trainer.global_rank
        )
        return self._loader(self.predict_set, self.predict_batch, sampler, drop_last=False)

    def _loader(self, dataset, batch: int, sampler: Sampler, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            collate_fn=collate,
        )
