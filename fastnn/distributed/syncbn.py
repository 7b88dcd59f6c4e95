"""SyncBatchNorm: batch normalisation with the statistics of the whole global batch.

Plain BatchNorm under data parallelism normalises each rank's share with that share's
statistics (so it differs from one process on the whole batch, by design).  SyncBatchNorm
in training computes each rank's statistics with ``fastnn.batch_norm_stats``, gathers
every rank's (count, mean, biased variance) with one Allgather, combines them the same
way on every rank (Chan et al.'s pairwise formula, in float64), and normalises with
``fastnn.batch_norm_elemt``.  The running statistics move towards the global ones (the
variance unbiased with the global count).  Backward allreduces the per-channel sums of
``g`` and ``g * (x - mean)``; the weight and bias gradients stay this rank's share, for
:func:`allreduce_gradients` to combine, as with ``torch.nn.SyncBatchNorm`` under DDP.
The statistics travel through host memory (2C + 1 values per rank), on CPU and GPU alike.
In eval mode, or in a single-process world, it is plain batch norm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import batch_norm_elemt, batch_norm_stats
from fastnn.distributed import _world
from fastnn.nn._array import namespace, to_like, to_numpy
from fastnn.nn.batchnorm import _BatchNorm
from fastnn.nn.container import Sequential
from fastnn.nn.module import Module

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation of (N, C, *) inputs over the global batch of all ranks."""

    ndims = (2, 3, 4, 5)
    layout = "(N, C, *)"

    @classmethod
    def from_batchnorm(cls, layer: _BatchNorm) -> SyncBatchNorm:
        """A SyncBatchNorm sharing ``layer``'s parameters and running statistics."""
        if not isinstance(layer, _BatchNorm):
            raise TypeError(f"from_batchnorm: expected a batch norm layer, got {layer!r}")
        sync = cls.__new__(cls)
        sync.__dict__.update(layer.__dict__)
        sync._buffer_names = list(layer._buffer_names)
        sync.__dict__.pop("backward", None)  # a hooked backward belongs to the old layer
        sync.__dict__.pop("_grad_ready_hooks", None)
        sync._cache = None
        return sync

    def forward(self, x: Any) -> Any:
        if not self.training or _world.world_size() == 1:
            self._sync = None
            return super().forward(x)
        self._check(x)
        channels = self.num_features
        stats = np.zeros(2 * channels + 1)
        stats[0] = x.size // channels if channels else 0
        if stats[0] > 0:
            mean, invstd = batch_norm_stats(x, self.eps)
            stats[1 : channels + 1] = to_numpy(mean)
            stats[channels + 1 :] = 1.0 / to_numpy(invstd).astype(np.float64) ** 2 - self.eps
        gathered = np.empty((_world.world_size(), stats.size))
        with _world.collective("Allgather of SyncBatchNorm statistics"):
            _world.comm().Allgather(stats, gathered)
        count, mean64, var64 = _combine(gathered, channels)
        if count <= 1:
            raise ValueError(
                f"SyncBatchNorm: expected more than 1 value per channel over all ranks when "
                f"training, got {count:g} (this rank's input {tuple(x.shape)})"
            )
        if self.track_running_stats:
            self.num_batches_tracked += 1
            factor = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked
            unbiased = var64 * count / (count - 1)
            for running, batch in ((self.running_mean, mean64), (self.running_var, unbiased)):
                moved = (1 - factor) * to_numpy(running).astype(np.float64) + factor * batch
                running[...] = to_like(moved.astype(running.dtype), running)
        dtype = x.dtype
        mean = to_like(mean64.astype(dtype), x)
        invstd = to_like((1.0 / np.sqrt(var64 + self.eps)).astype(dtype), x)
        weight = self._as_input_dtype(self.weight.data if self.affine else None, dtype)
        bias = self._as_input_dtype(self.bias.data if self.affine else None, dtype)
        self._cache = None
        self._sync = (x, weight, mean, invstd, count)
        if stats[0] == 0:
            return namespace(x).empty_like(x)
        return batch_norm_elemt(x, mean, invstd, weight, bias)

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        sync = self.__dict__.get("_sync")
        if sync is None:
            return super().backward(grad, need_input_grad=need_input_grad)
        x, weight, mean, invstd, count = sync
        xp = namespace(x)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        axes = (0, *range(2, x.ndim))
        xmu = x - mean.reshape(shape)
        sum_dy = xp.sum(grad, axis=axes, dtype=xp.float64)
        sum_dy_xmu = xp.sum(grad * xmu, axis=axes, dtype=xp.float64)
        if self.affine:
            self.weight.accumulate((sum_dy_xmu * invstd).astype(x.dtype))
            self.bias.accumulate(sum_dy.astype(x.dtype))
        sums = np.concatenate([to_numpy(sum_dy), to_numpy(sum_dy_xmu)])
        with _world.collective("Allreduce of SyncBatchNorm gradient sums"):
            _world.comm().Allreduce(_mpi_in_place(), sums)
        if not need_input_grad:
            return None
        channels = self.num_features
        mean_dy = to_like((sums[:channels] / count).astype(x.dtype), x).reshape(shape)
        mean_dy_xmu = to_like((sums[channels:] / count).astype(x.dtype), x).reshape(shape)
        scale = invstd.reshape(shape)
        if weight is not None:
            scale = scale * weight.reshape(shape)
        return (grad - mean_dy - xmu * (invstd.reshape(shape) ** 2) * mean_dy_xmu) * scale

    def _reset_cache(self) -> None:
        super()._reset_cache()
        self._sync = None


def _mpi_in_place() -> Any:
    from mpi4py import MPI

    return MPI.IN_PLACE


def _combine(gathered: np.ndarray, channels: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Global count, mean and biased variance from every rank's (count, mean, var)."""
    counts = gathered[:, 0]
    total = float(counts.sum())
    means = gathered[:, 1 : channels + 1]
    variances = gathered[:, channels + 1 :]
    if total == 0:
        return total, np.zeros(channels), np.zeros(channels)
    weights = (counts / total)[:, None]
    mean = (weights * means).sum(axis=0)
    var = (weights * (variances + (means - mean) ** 2)).sum(axis=0)
    return total, mean, var


def convert_sync_batchnorm(model: Module) -> Module:
    """Replace every BatchNorm1d/2d in ``model`` by a :class:`SyncBatchNorm` that shares
    its parameters and running statistics (optimizers keep working); returns the model
    (or the SyncBatchNorm, when ``model`` itself is a batch norm layer)."""
    if not isinstance(model, Module):
        raise TypeError(
            f"convert_sync_batchnorm: expected a fastnn.nn.Module, got {type(model).__name__}"
        )
    if isinstance(model, _BatchNorm) and not isinstance(model, SyncBatchNorm):
        return SyncBatchNorm.from_batchnorm(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, _BatchNorm) and not isinstance(child, SyncBatchNorm):
                sync = SyncBatchNorm.from_batchnorm(child)
                if isinstance(module, Sequential):
                    module._layers[int(name)] = sync
                else:
                    setattr(module, name, sync)
    return model
