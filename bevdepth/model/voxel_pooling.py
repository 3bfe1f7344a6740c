"""Sum-pooling of lifted frustum features into the BEV grid ("splat").

Every frustum point p = (b, n, d, y, x) carries the feature ``depth[p] * context[b, n, :, y, x]``
and is added into the BEV cell its voxel index falls in (sum, no mean; quirk 4). Points whose
index is outside the grid are dropped.

Two exact implementations:

* :func:`voxel_pooling_materialized` builds the (B, N, D, h, w, C) features and ``index_add``s
  them, like the reference CUDA op ``voxel_pooling_train``. Simple, but it writes and reads
  D * C values per pixel (151 MB per frame at the reference size) in both passes.
* :func:`voxel_pooling` never builds them. A point's cell is fixed by geometry, so the pooled map
  is a sparse-dense product ``out = S @ ctx``: ``ctx`` is the (columns, C) context of every
  (b, n, y, x) pixel column and ``S[cell, column]`` sums the depth probabilities of the column's
  points that land in ``cell``. Consecutive depth bins of one ray mostly share a cell, so S has
  fewer non-zeros than there are points, and each costs C multiply-adds. The backward pass is
  ``S^T @ grad`` for the context and, for the depth, one dot product per non-zero
  (``grad[cell] . ctx[column]``, a sampled dense-dense product) shared by the points of that
  (cell, column) pair.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bevdepth import device

VoxelNum = tuple[int, int, int]


def lift(depth: Tensor, context: Tensor, batch: int) -> Tensor:
    """Outer product of depth probabilities and context: the frustum features.

    Args:
        depth: (B*N, D, h, w).
        context: (B*N, C, h, w).
        batch: B.

    Returns:
        (B, N, D, h, w, C) (the reference ``img_feat_with_depth`` layout).
    """
    feats = depth.unsqueeze(1) * context.unsqueeze(2)
    cams = depth.shape[0] // batch
    feats = feats.view(batch, cams, *feats.shape[1:])
    return feats.permute(0, 1, 3, 4, 5, 2)


def _cell_ids(geom_xyz: Tensor, voxel_num: VoxelNum) -> tuple[Tensor, Tensor]:
    """Flat cell id ``(b * Y + y) * X + x`` of every point and its validity mask, both (B * P,)."""
    num_x, num_y, _ = voxel_num
    batch = geom_xyz.shape[0]
    xyz = geom_xyz.reshape(batch, -1, 3).long()
    limits = torch.tensor(voxel_num, device=xyz.device)
    valid = (xyz >= 0).all(-1) & (xyz < limits).all(-1)
    batch_index = torch.arange(batch, device=xyz.device).unsqueeze(1)
    cells = (batch_index * num_y + xyz[..., 1]) * num_x + xyz[..., 0]
    return cells.reshape(-1), valid.reshape(-1)


def voxel_pooling_materialized(geom_xyz: Tensor, feats: Tensor, voxel_num: VoxelNum) -> Tensor:
    """Straightforward pooling of materialized frustum features.

    Args:
        geom_xyz: (B, N, D, h, w, 3) integer (x, y, z) voxel indices.
        feats: (B, N, D, h, w, C) frustum features.
        voxel_num: cells along (x, y, z).

    Returns:
        (B, C, Y, X) BEV features (rows are y, quirk 5).
    """
    kernel = device.voxel_pooling_kernel(feats)
    batch, channels = geom_xyz.shape[0], feats.shape[-1]
    if kernel is not None:
        return kernel(
            geom_xyz.reshape(batch, -1, 3).int(), feats.reshape(batch, -1, channels), voxel_num
        )
    num_x, num_y, _ = voxel_num
    cells, valid = _cell_ids(geom_xyz, voxel_num)
    # Dropped points go to one spare row, which avoids copying the valid subset of the features.
    spare = batch * num_y * num_x
    cells = torch.where(valid, cells, torch.full_like(cells, spare))
    out = feats.new_zeros(spare + 1, channels)
    out = out.index_add(0, cells, feats.reshape(-1, channels))
    return out[:spare].view(batch, num_y, num_x, channels).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class SplatPlan:
    """Sparse structure of one pooling call (depends on geometry only).

    Attributes:
        pair_cell: (S,) BEV cell of each (cell, column) pair, sorted by cell then column.
        pair_column: (S,) pixel column ``(b * N + n) * h * w + y * w + x`` of each pair.
        point_pair: (V,) pair of each valid point.
        valid: (B * N * D * h * w,) mask of the points that land in the grid.
        num_cells: B * Y * X.
        num_columns: B * N * h * w.
    """

    pair_cell: Tensor
    pair_column: Tensor
    point_pair: Tensor
    valid: Tensor
    num_cells: int
    num_columns: int

    @classmethod
    def build(cls, geom_xyz: Tensor, voxel_num: VoxelNum) -> SplatPlan:
        """Group the points of ``geom_xyz`` (B, N, D, h, w, 3) into (cell, column) pairs."""
        batch, cams, depth_bins, height, width, _ = geom_xyz.shape
        num_x, num_y, _ = voxel_num
        num_cells = batch * num_y * num_x
        num_columns = batch * cams * height * width
        cells, valid = _cell_ids(geom_xyz, voxel_num)
        pixels = height * width
        point = torch.arange(cells.shape[0], device=cells.device)
        columns = point // (depth_bins * pixels) * pixels + point % pixels
        keys = cells[valid] * num_columns + columns[valid]
        pair_keys, point_pair = torch.unique(keys, sorted=True, return_inverse=True)
        return cls(
            pair_cell=pair_keys // num_columns,
            pair_column=pair_keys % num_columns,
            point_pair=point_pair,
            valid=valid,
            num_cells=num_cells,
            num_columns=num_columns,
        )

    def matrix(self, values: Tensor) -> Tensor:
        """CSR (num_cells, num_columns) with ``values`` (S,) at the pairs."""
        crow = _compressed_rows(self.pair_cell, self.num_cells)
        return _csr(crow, self.pair_column, values, (self.num_cells, self.num_columns))

    def transposed_matrix(self, values: Tensor) -> Tensor:
        """CSR (num_columns, num_cells) of the transpose, built explicitly (no CSC kernels)."""
        order = torch.sort(self.pair_column, stable=True).indices
        crow = _compressed_rows(self.pair_column, self.num_columns)
        return _csr(crow, self.pair_cell[order], values[order], (self.num_columns, self.num_cells))


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    # The indices are sorted, unique and in range by construction, so the invariant checks are
    # skipped; the one-time "CSR support is in beta" notice is silenced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


def _compressed_rows(rows: Tensor, num_rows: int) -> Tensor:
    crow = rows.new_zeros(num_rows + 1)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), dim=0)
    return crow


class _SparseSplat(torch.autograd.Function):
    """out = S(depth) @ ctx with S built from ``plan``; exact gradients for depth and context."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, depth: Tensor, context_columns: Tensor, plan: SplatPlan
    ) -> Tensor:
        pair_weight = depth.new_zeros(plan.pair_cell.shape[0])
        pair_weight.index_add_(0, plan.point_pair, depth.reshape(-1)[plan.valid])
        ctx.save_for_backward(pair_weight, context_columns)
        ctx.plan = plan
        ctx.depth_shape = depth.shape
        return plan.matrix(pair_weight) @ context_columns

    @staticmethod
    def backward(ctx: Any, grad_cells: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        pair_weight, context_columns = ctx.saved_tensors
        plan: SplatPlan = ctx.plan
        grad_cells = grad_cells.contiguous()
        grad_depth = grad_context = None
        if ctx.needs_input_grad[0]:
            # d out[cell] / d depth[p] = ctx[column(p)], so every point of a pair gets the same
            # grad[cell] . ctx[column]: a sampled dense-dense product on the pattern of S.
            pattern = plan.matrix(pair_weight)
            pair_grad = torch.sparse.sampled_addmm(
                pattern, grad_cells, context_columns.t().contiguous(), beta=0.0
            ).values()
            grad_depth = pair_grad.new_zeros(plan.valid.shape[0])
            grad_depth[plan.valid] = pair_grad[plan.point_pair]
            grad_depth = grad_depth.view(ctx.depth_shape)
        if ctx.needs_input_grad[1]:
            grad_context = plan.transposed_matrix(pair_weight) @ grad_cells
        return grad_depth, grad_context, None


def voxel_pooling(geom_xyz: Tensor, depth: Tensor, context: Tensor, voxel_num: VoxelNum) -> Tensor:
    """Pool ``depth ⊗ context`` into the BEV grid without materializing the frustum features.

    Equal to ``voxel_pooling_materialized(geom_xyz, lift(depth, context, B), voxel_num)`` up to
    float rounding, in value and in the gradients of ``depth`` and ``context``. On a device with a
    native pooling kernel (see :mod:`bevdepth.device`) that kernel is used instead.

    Args:
        geom_xyz: (B, N, D, h, w, 3) integer voxel indices.
        depth: (B*N, D, h, w) depth probabilities.
        context: (B*N, C, h, w) context features.
        voxel_num: cells along (x, y, z).

    Returns:
        (B, C, Y, X).
    """
    batch = geom_xyz.shape[0]
    if device.voxel_pooling_kernel(context) is not None:
        return voxel_pooling_materialized(geom_xyz, lift(depth, context, batch), voxel_num)
    num_x, num_y, _ = voxel_num
    channels = context.shape[1]
    with torch.no_grad():
        plan = SplatPlan.build(geom_xyz, voxel_num)
    # Sparse kernels run in float32 or wider, outside autocast (fp16 sums of up to D * N points
    # per cell would lose precision, and not every backend has half-precision sparse kernels).
    dtype = torch.promote_types(context.dtype, torch.float32)
    with torch.autocast(device_type=context.device.type, enabled=False):
        context_columns = context.to(dtype).permute(0, 2, 3, 1).reshape(-1, channels)
        cells = _SparseSplat.apply(depth.to(dtype), context_columns, plan)
    out = cells.view(batch, num_y, num_x, channels).permute(0, 3, 1, 2)
    return out.to(context.dtype).contiguous()
