"""BatchNorm1d and BatchNorm2d (the course notes' batch normalisation, PyTorch semantics).

In training mode each channel is normalised with the statistics of the batch (over N and
the spatial positions), ``xhat = (x - mean) / sqrt(var + eps)`` with the biased variance,
then scaled and shifted, ``y = gamma * xhat + beta``.  The running statistics move towards
the batch's: ``running = (1 - momentum) * running + momentum * batch``, where the running
variance takes the unbiased batch variance (``var * m / (m - 1)``, m values per channel);
``momentum=None`` gives the cumulative average ``1 / num_batches_tracked`` instead.  In eval
mode the running statistics normalise.  With ``track_running_stats=False`` batch
statistics are used in both modes.

The array math is the array library's own (numpy or cupy): a handful of reductions and
elementwise operations per call, memory-bound like any kernel would be.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from fastnn.nn._array import namespace
from fastnn.nn._layer_args import check_features, check_float_dtype
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    ndims: tuple[int, ...] = ()
    layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        layer = type(self).__name__
        self.num_features = check_features(layer, "num_features", num_features)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"{layer}: eps must be a positive number, got {eps!r}")
        if momentum is not None and (
            isinstance(momentum, bool)
            or not isinstance(momentum, numbers.Real)
            or not 0.0 <= momentum <= 1.0
        ):
            raise ValueError(f"{layer}: momentum must be None or in [0, 1], got {momentum!r}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = check_float_dtype(layer, dtype)
        self.weight = Parameter(np.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dtype)) if affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", 0)
        else:
            self.running_mean = self.running_var = None
        self._cache: tuple | None = None

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked = 0

    def _check(self, x: Any) -> None:
        layer = type(self).__name__
        if len(x.shape) not in self.ndims or x.shape[1] != self.num_features:
            raise ValueError(
                f"{layer}: input must be {self.layout} with C = num_features = "
                f"{self.num_features}, got shape {tuple(x.shape)}"
            )
        if x.dtype.kind != "f":
            raise TypeError(f"{layer}: input must be a float array, got dtype {x.dtype}")

    def forward(self, x: Any) -> Any:
        self._check(x)
        xp = namespace(x)
        channels = self.num_features
        axes = (0, *range(2, x.ndim))
        shape = (1, channels) + (1,) * (x.ndim - 2)
        count = x.size // channels
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            if count == 1:
                raise ValueError(
                    f"{type(self).__name__}: expected more than 1 value per channel when "
                    f"using batch statistics, got input shape {tuple(x.shape)}"
                )
            if count == 0:  # an empty batch: nothing to normalise, statistics unchanged
                self._cache = None
                return xp.empty_like(x)
            mean = x.mean(axis=axes)
            centred = x - mean.reshape(shape)
            var = (centred * centred).mean(axis=axes)
            if self.training and self.track_running_stats:
                self._update_running(mean, var, count)
        else:
            mean, var = self.running_mean, self.running_var
            centred = x - mean.reshape(shape)
        invstd = 1.0 / xp.sqrt(var + x.dtype.type(self.eps))
        xhat = centred * invstd.reshape(shape)
        self._cache = (xhat, invstd, use_batch, shape, axes)
        if not self.affine:
            return xhat
        return xhat * self.weight.data.reshape(shape) + self.bias.data.reshape(shape)

    def _update_running(self, mean: Any, var: Any, count: int) -> None:
        self.num_batches_tracked += 1
        factor = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked
        unbiased = var * (count / (count - 1))
        self.running_mean *= 1.0 - factor
        self.running_mean += factor * mean
        self.running_var *= 1.0 - factor
        self.running_var += factor * unbiased

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        if self._cache is None:
            if grad.size == 0:  # the empty batch of forward
                return grad.copy() if need_input_grad else None
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        xhat, invstd, use_batch, shape, axes = self._cache
        grad_sum = grad.sum(axis=axes)
        grad_xhat_sum = (grad * xhat).sum(axis=axes)
        if self.affine:
            self.weight.accumulate(grad_xhat_sum)
            self.bias.accumulate(grad_sum)
        if not need_input_grad:
            return None
        scale = invstd if not self.affine else invstd * self.weight.data
        if not use_batch:
            return grad * scale.reshape(shape)
        count = grad.size // self.num_features
        mean_grad = (grad_sum / count).reshape(shape)
        mean_grad_xhat = (grad_xhat_sum / count).reshape(shape)
        return (grad - mean_grad - xhat * mean_grad_xhat) * scale.reshape(shape)

    def _reset_cache(self) -> None:
        self._cache = None

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel C."""

    ndims = (2, 3)
    layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, per channel C."""

    ndims = (4,)
    layout = "(N, C, H, W)"
