"""Circle NMS: greedy suppression by centre distance (mmdet3d ``circle_nms``)."""

from __future__ import annotations

import torch
from torch import Tensor


def circle_nms(centers: Tensor, scores: Tensor, threshold: float, max_keep: int) -> Tensor:
    """Keep the best box, drop every lower-scored box near a kept one, repeat.

    "Near" means a *squared* centre distance ``<= threshold`` (m^2): the reference thresholds
    are squared distances although they are named radii (quirk 13).

    Args:
        centers: (M, 2) box centres (x, y) in metres.
        scores: (M,) scores.
        threshold: squared-distance threshold in m^2.
        max_keep: at most this many boxes are returned (83 per task in the reference).

    Returns:
        (K,) int64 indices of kept boxes, best score first.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    # M <= 500 per task, so the (M, M) table is small; the greedy pass runs on CPU. Squares are
    # summed in float32 and compared in float64, as the reference (float32 boxes, numba) does.
    ordered = centers[order].float().cpu()
    delta = ordered[:, None, :] - ordered[None, :, :]
    close = (delta[..., 0] ** 2 + delta[..., 1] ** 2).double() <= threshold
    suppressed = torch.zeros(ordered.shape[0], dtype=torch.bool)
    keep = []
    for i in range(ordered.shape[0]):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == max_keep:
            break
        suppressed |= close[i]
    return order[torch.tensor(keep, dtype=torch.int64, device=order.device)]
