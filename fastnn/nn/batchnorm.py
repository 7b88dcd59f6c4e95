"""BatchNorm1d and BatchNorm2d (the course notes' batch normalisation, PyTorch semantics).

In training mode each channel is normalised with the statistics of the batch (over N and
the spatial positions), ``xhat = (x - mean) / sqrt(var + eps)`` with the biased variance,
then scaled and shifted, ``y = gamma * xhat + beta``.  The running statistics move towards
the batch's: ``running = (1 - momentum) * running + momentum * batch``, where the running
variance takes the unbiased batch variance (``var * m / (m - 1)``, m values per channel);
``momentum=None`` gives the cumulative average ``1 / num_batches_tracked`` instead.  In eval
mode the running statistics normalise.  With ``track_running_stats=False`` batch
statistics are used in both modes.

The work runs on fastnn's batch normalisation ops (fastnn.ops.normalization): statistics
and the normalising pass forward, one reduction and one elementwise pass backward, on
numpy (CPU) or GPU arrays alike.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from fastnn.nn._array import namespace
from fastnn.nn._layer_args import check_features, check_float_dtype
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter
from fastnn.ops.normalization import batch_norm, batch_norm_backward

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

    def _as_input_dtype(self, value: Any, dtype: Any) -> Any:
        return value if value is None or value.dtype == dtype else value.astype(dtype)

    def forward(self, x: Any) -> Any:
        self._check(x)
        count = x.size // self.num_features
        use_batch = self.training or not self.track_running_stats
        if use_batch and count == 1:
            raise ValueError(
                f"{type(self).__name__}: expected more than 1 value per channel when "
                f"using batch statistics, got input shape {tuple(x.shape)}"
            )
        if use_batch and count == 0:  # an empty batch: nothing to normalise, stats unchanged
            self._cache = None
            return namespace(x).empty_like(x)
        dtype = x.dtype
        weight = self._as_input_dtype(self.weight.data if self.affine else None, dtype)
        bias = self._as_input_dtype(self.bias.data if self.affine else None, dtype)
        running_mean = running_var = None
        factor = 0.0
        if self.track_running_stats:
            running_mean = self._as_input_dtype(self.running_mean, dtype)
            running_var = self._as_input_dtype(self.running_var, dtype)
            if self.training:
                self.num_batches_tracked += 1
                momentum = self.momentum
                factor = momentum if momentum is not None else 1.0 / self.num_batches_tracked
        y, mean, invstd = batch_norm(
            x, running_mean, running_var, weight, bias, training=use_batch, momentum=factor,
            eps=self.eps, return_stats=True,
        )  # fmt: skip
        if running_mean is not None and running_mean is not self.running_mean:
            self.running_mean[...] = running_mean  # statistics kept in the layer's dtype
            self.running_var[...] = running_var
        self._cache = (x, weight, mean, invstd, use_batch)
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        if self._cache is None:
            if grad.size == 0:  # the empty batch of forward
                return grad.copy() if need_input_grad else None
            self._forward_ran(self._cache)
        x, weight, mean, invstd, use_batch = self._cache
        mask = (bool(need_input_grad), self.affine, self.affine)
        if not any(mask):
            return None
        grad_input, grad_weight, grad_bias = batch_norm_backward(
            grad, x, weight, mean, invstd, training=use_batch, output_mask=mask
        )
        if self.affine:
            self.weight.accumulate(grad_weight)
            self.bias.accumulate(grad_bias)
        return grad_input

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
