"""Batch normalisation on the GPU (kernels/numba_cuda/batch_norm.py): a team reduction
per channel for the statistics and the backward's sums, grid-stride elementwise passes.
Running statistics are updated in place by the statistics' finishing kernel."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import device_arrays, empty, launch
from fastnn._dispatch import register
from fastnn.kernels.numba_cuda.batch_norm import CODES, THREADS, batch_norm_kernels
from fastnn.kernels.numba_cuda.reduce import BLOCK


def _view(x: Any) -> Any:
    """The C-contiguous (N, C, *) x as (N, C, P)."""
    shape = tuple(x.shape)
    return x.reshape(shape[0], shape[1], math.prod(shape[2:]))


def _count(x: Any) -> int:
    return x.size // max(x.shape[1], 1)


def _moments(x: Any) -> tuple[Any, Any]:
    """float64 (C,) device arrays: per-channel mean and biased variance (N * P > 0)."""
    channels = x.shape[1]
    mean, var = empty(channels, np.float64), empty(channels, np.float64)
    blocks, threads, team = _launch.teams(channels, _count(x), BLOCK)
    launch(batch_norm_kernels(x.dtype).stats, blocks, threads, _view(x), mean, var, team)
    return mean, var


def _nan_stats(x: Any) -> tuple[Any, Any]:
    from numba import cuda

    nan = np.full(x.shape[1], np.nan)
    return cuda.to_device(nan), cuda.to_device(nan.copy())


def _finish(x, mean64, var64, eps, factor, running_mean, running_var) -> tuple[Any, Any]:
    channels = x.shape[1]
    mean, invstd = empty(channels, x.dtype), empty(channels, x.dtype)
    count = _count(x)
    update = running_mean is not None and count > 0
    unbias = count / (count - 1) if count > 1 else 1.0
    rm = running_mean if update else mean
    rv = running_var if update else invstd
    blocks, threads = _launch.elementwise(channels, THREADS)
    kern = batch_norm_kernels(x.dtype).finish
    launch(kern, blocks, threads, mean64, var64, eps, factor, unbias, update, rm, rv, mean, invstd)
    return mean, invstd


def _affine(x, mean, invstd, w, b, activation) -> Any:
    out = empty(x.shape, x.dtype)
    n = x.size
    inner = math.prod(tuple(x.shape)[2:])
    blocks, threads = _launch.elementwise(n, THREADS)
    kern = batch_norm_kernels(x.dtype).affine
    w_arg = w if w is not None else mean
    b_arg = b if b is not None else mean
    flat = x.reshape(n)
    args = (flat, mean, invstd, w_arg, b_arg, w is not None, b is not None)
    launch(kern, blocks, threads, *args, CODES[activation], inner, out.reshape(n))
    return out


@register("batch_norm_stats", "numba-cuda")
@device_arrays
def _batch_norm_stats(x, eps: float):
    mean64, var64 = _moments(x) if _count(x) > 0 else _nan_stats(x)
    return _finish(x, mean64, var64, eps, 0.0, None, None)


@register("batch_norm_elemt", "numba-cuda")
@device_arrays
def _batch_norm_elemt(x, mean, invstd, w, b, activation):
    return _affine(x, mean, invstd, w, b, activation)


@register("batch_norm", "numba-cuda")
@device_arrays
def _batch_norm(x, running_mean, running_var, w, b, training, factor, eps, activation):
    channels = x.shape[1]
    if training:
        mean64, var64 = _moments(x) if _count(x) > 0 else _nan_stats(x)
        mean, invstd = _finish(x, mean64, var64, eps, factor, running_mean, running_var)
    else:
        mean, invstd = empty(channels, x.dtype), empty(channels, x.dtype)
        blocks, threads = _launch.elementwise(channels, THREADS)
        kern = batch_norm_kernels(x.dtype).running
        launch(kern, blocks, threads, running_mean, running_var, eps, mean, invstd)
    return _affine(x, mean, invstd, w, b, activation), mean, invstd


@register("batch_norm_backward", "numba-cuda")
@device_arrays
def _batch_norm_backward(gy, x, w, mean, invstd, training, y, activation, mask):
    kernels = batch_norm_kernels(gy.dtype)
    code = CODES[activation]
    y_arg = y if y is not None else gy
    channels = x.shape[1]
    sums = empty((2, channels), np.float64)
    if training or mask[1] or mask[2]:
        blocks, threads, team = _launch.teams(channels, _count(x), BLOCK)
        args = (_view(gy), _view(x), _view(y_arg), code, mean, sums, team)
        launch(kernels.grad_sums, blocks, threads, *args)
    grad_input = None
    if mask[0]:
        grad_input = empty(gy.shape, gy.dtype)
        n = gy.size
        inner = math.prod(tuple(gy.shape)[2:])
        blocks, threads = _launch.elementwise(n, THREADS)
        w_arg = w if w is not None else invstd
        flat = (gy.reshape(n), x.reshape(n), y_arg.reshape(n))
        count = float(max(_count(x), 1))
        args = (*flat, code, training, count, mean, invstd, w_arg, w is not None, sums, inner)
        launch(kernels.grad_input, blocks, threads, *args, grad_input.reshape(n))
    grad_weight = grad_bias = None
    if mask[1] or mask[2]:
        blocks, threads = _launch.elementwise(channels, THREADS)
        grad_weight = empty(channels, gy.dtype) if mask[1] else None
        grad_bias = empty(channels, gy.dtype) if mask[2] else None
        gw_arg = grad_weight if grad_weight is not None else invstd
        gb_arg = grad_bias if grad_bias is not None else invstd
        flags = (mask[1], mask[2], _count(x) == 0)
        launch(kernels.param_grads, blocks, threads, sums, invstd, *flags, gw_arg, gb_arg)
    return grad_input, grad_weight, grad_bias
