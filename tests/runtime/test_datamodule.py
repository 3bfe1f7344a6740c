"""Samplers: resumable training epochs and unpadded evaluation shards."""

from __future__ import annotations

from types import SimpleNamespace

from bevdepth.runtime.datamodule import BEVDataModule, EpochSampler, ShardSampler, steps_per_epoch


class Numbers:
    def __init__(self, n: int) -> None:
        self.n = n
        self.epoch = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def _trainer(epoch: int, batches_done: int, world: int = 1, rank: int = 0):
    progress = SimpleNamespace(current=SimpleNamespace(processed=epoch))
    batches = SimpleNamespace(current=SimpleNamespace(ready=batches_done))
    loop = SimpleNamespace(
        epoch_progress=progress, epoch_loop=SimpleNamespace(batch_progress=batches)
    )
    return SimpleNamespace(fit_loop=loop, world_size=world, global_rank=rank)


def _module(dataset, trainer, batch=2) -> BEVDataModule:
    module = BEVDataModule(dataset, None, train_batch=batch, predict_batch=1, num_workers=0, seed=3)
    module.trainer = trainer
    return module


def test_resumed_epoch_continues_where_the_checkpoint_was_taken():
    full = list(_module(Numbers(10), _trainer(epoch=2, batches_done=0)).train_dataloader().sampler)
    dataset = Numbers(10)
    loader = _module(dataset, _trainer(epoch=2, batches_done=3)).train_dataloader()
    assert dataset.epoch == 2
    assert list(loader.sampler) == full[6:]  # 3 batches of 2 were trained on before the kill
    assert list(loader.sampler) == full  # the next epoch is whole again


def test_epoch_end_checkpoint_skips_nothing():
    loader = _module(Numbers(10), _trainer(epoch=1, batches_done=5)).train_dataloader()
    assert len(list(loader.sampler)) == 10


def test_epochs_are_shuffled_differently_and_reach_the_dataset():
    dataset = Numbers(10)
    sampler = EpochSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=0)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and dataset.epoch == 1


def test_shards_cover_every_sample_once():
    shards = [list(ShardSampler(7, 3, rank)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(7))


def test_steps_per_epoch_counts_padding_and_drop_last():
    assert steps_per_epoch(8, 2, 1) == 4
    assert steps_per_epoch(9, 2, 2) == 2  # 5 per rank after padding, the partial batch dropped
    assert steps_per_epoch(3, 2, 4) == 0
