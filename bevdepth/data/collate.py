"""Batching samples: ``collate`` for the DataLoader and the reference tuple layout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import torch

from bevdepth.data.batch import Batch, CameraMats, Sample


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples into a batch (use as ``DataLoader(collate_fn=collate)``).

    Tensors gain a leading batch axis B; boxes, labels and img_metas stay per-sample lists.

    Args:
        samples: B samples with the same frame count, cameras and image size.

    Returns:
        Batch with imgs (B, F, N, 3, H, W), matrices (B, F, N, 4, 4), bda (B, 4, 4),
        timestamps (B, F, N) and depth_labels (B, 1, N, H, W) when the samples carry them.

    Raises:
        ValueError: no samples, or only some of them carry depth labels.
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    with_depth = [s.depth_labels is not None for s in samples]
    if any(with_depth) and not all(with_depth):
        raise ValueError("either all samples or none must carry depth_labels")
    mats = CameraMats(
        **{
            f.name: torch.stack([getattr(s.mats, f.name) for s in samples])
            for f in fields(CameraMats)
        }
    )
    return Batch(
        imgs=torch.stack([s.imgs for s in samples]),
        mats=mats,
        timestamps=torch.stack([s.timestamps for s in samples]),
        img_metas=[s.img_metas for s in samples],
        gt_boxes=[s.gt_boxes for s in samples],
        gt_labels=[s.gt_labels for s in samples],
        depth_labels=torch.stack([s.depth_labels for s in samples]) if all(with_depth) else None,
    )


def to_reference_tuple(batch: Batch) -> tuple[Any, ...]:
    """The reference ``collate_fn`` output order (fact sheet section 4.5).

    Returns:
        ``(imgs, mats_dict, timestamps, img_metas, gt_boxes, gt_labels)`` plus ``depth_labels``
        when the batch has them (the training layout, 7 items; evaluation has 6).
    """
    items: tuple[Any, ...] = (
        batch.imgs,
        batch.mats.as_dict(),
        batch.timestamps,
        batch.img_metas,
        batch.gt_boxes,
        batch.gt_labels,
    )
    return (*items, batch.depth_labels) if batch.depth_labels is not None else items
