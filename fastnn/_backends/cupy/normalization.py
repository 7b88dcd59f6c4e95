"""Batch normalisation on the GPU (kernels/cuda/batch_norm.cu): deterministic per-channel
sums in double (block per (channel, chunk), then a finishing kernel that also moves the
running statistics in place), grid-stride elementwise passes."""

from __future__ import annotations

import math
from typing import Any

import cupy
import numpy as np

from fastnn._backends.cupy._reduce import PER_THREAD, chunking
from fastnn._backends.cupy._runtime import contiguous, cupy_arrays, f64, i32, i64, kernel, launch_1d
from fastnn._backends.cupy._sources import THREADS
from fastnn._dispatch import register

#: Activation codes of batch_norm.cu.
CODES = {None: 0, "relu": 1, "relu6": 2}

_FILE = "batch_norm.cu"


def _dims(x: Any) -> tuple[int, int, int]:
    """(outer, channels, inner) of the (N, C, *) x."""
    shape = tuple(x.shape)
    return shape[0], shape[1], math.prod(shape[2:])


def _partial_grid(x: Any) -> tuple[int, int]:
    """(chunks, chunk_len) of the per-channel reductions (at least one chunk)."""
    outer, _, inner = _dims(x)
    return chunking(max(outer * inner, 1), PER_THREAD * THREADS)


def _stats(x: Any, eps: float, factor: float, running_mean: Any, running_var: Any):
    """Batch mean and invstd (x's dtype); the running statistics updated when given."""
    outer, channels, inner = _dims(x)
    count = outer * inner
    xc = contiguous(x)
    mean = cupy.empty((channels,), dtype=x.dtype)
    invstd = cupy.empty((channels,), dtype=x.dtype)
    if channels == 0:
        return mean, invstd
    chunks, chunk_len = _partial_grid(x) if count > 0 else (0, 1)
    partial = cupy.empty((max(chunks, 1) * 2 * channels,), dtype=np.float64)
    if chunks > 0:
        kern = kernel(_FILE, "bn_stats_partial", x.dtype)
        args = (xc, i64(outer), i32(channels), i64(inner), i64(chunk_len), partial)
        kern((channels, chunks), (THREADS,), args)
    update = running_mean is not None and count > 0
    unbias = count / (count - 1) if count > 1 else 1.0
    rm = running_mean if update else mean
    rv = running_var if update else invstd
    args = (
        partial, i32(chunks), i64(channels), xc, i64(inner), f64(count), f64(eps),
        f64(factor), f64(unbias), i32(update), rm, rv, mean, invstd,
    )  # fmt: skip
    launch_1d(kernel(_FILE, "bn_stats_finish", x.dtype), channels, args)
    return mean, invstd


def _affine(x: Any, mean: Any, invstd: Any, w: Any, b: Any, activation: str | None) -> Any:
    outer, channels, inner = _dims(x)
    out = cupy.empty(x.shape, dtype=x.dtype)
    kern = kernel(_FILE, "bn_affine", x.dtype, CODES[activation])
    mc, ic = contiguous(mean), contiguous(invstd)
    wc = contiguous(w) if w is not None else ic
    bc = contiguous(b) if b is not None else ic
    args = (
        contiguous(x), mc, ic, wc, bc, i32(w is not None), i32(b is not None),
        i64(out.size), i64(channels), i64(max(inner, 1)), out,
    )  # fmt: skip
    launch_1d(kern, out.size, args)
    return out


@register("batch_norm_stats", "cupy")
@cupy_arrays
def batch_norm_stats(x: Any, eps: float) -> tuple[Any, Any]:
    """Per-channel batch mean and 1 / sqrt(biased var + eps)."""
    return _stats(x, eps, 0.0, None, None)


@register("batch_norm_elemt", "cupy")
@cupy_arrays
def batch_norm_elemt(x, mean, invstd, w, b, activation) -> Any:
    """act((x - mean) * invstd * w + b) in one pass."""
    return _affine(x, mean, invstd, w, b, activation)


@register("batch_norm", "cupy")
@cupy_arrays
def batch_norm(x, running_mean, running_var, w, b, training, factor, eps, activation):
    """The whole forward; running statistics moved in place in training."""
    if training:
        mean, invstd = _stats(x, eps, factor, running_mean, running_var)
    else:
        channels = x.shape[1]
        mean = cupy.empty((channels,), dtype=x.dtype)
        invstd = cupy.empty((channels,), dtype=x.dtype)
        kern = kernel(_FILE, "bn_running_stats", x.dtype)
        args = (contiguous(running_mean), contiguous(running_var), i64(channels), f64(eps))
        launch_1d(kern, channels, (*args, mean, invstd))
    return _affine(x, mean, invstd, w, b, activation), mean, invstd


@register("batch_norm_backward", "cupy")
@cupy_arrays
def batch_norm_backward(gy, x, w, mean, invstd, training, y, activation, mask):
    """(grad_input, grad_weight, grad_bias): one reduction pass, one elementwise pass."""
    outer, channels, inner = _dims(x)
    code = CODES[activation]
    gc, xc = contiguous(gy), contiguous(x)
    yc = contiguous(y) if y is not None else gc
    mc, ic = contiguous(mean), contiguous(invstd)
    sums = cupy.zeros((2 * channels,), dtype=np.float64)
    grad_weight = cupy.empty((channels,), dtype=gy.dtype) if mask[1] else None
    grad_bias = cupy.empty((channels,), dtype=gy.dtype) if mask[2] else None
    count = outer * inner
    if channels > 0 and (training or mask[1] or mask[2]):
        chunks, chunk_len = _partial_grid(x) if count > 0 else (0, 1)
        partial = cupy.empty((max(chunks, 1) * 2 * channels,), dtype=np.float64)
        if chunks > 0:
            kern = kernel(_FILE, "bn_grad_partial", gy.dtype, code)
            args = (gc, xc, yc, mc, i64(outer), i32(channels), i64(inner), i64(chunk_len))
            kern((channels, chunks), (THREADS,), (*args, partial))
        gw = grad_weight if grad_weight is not None else ic
        gb = grad_bias if grad_bias is not None else ic
        args = (partial, i32(chunks), i64(channels), ic, sums, i32(mask[1]), i32(mask[2]))
        launch_1d(kernel(_FILE, "bn_grad_finish", gy.dtype), channels, (*args, gw, gb))
    grad_input = None
    if mask[0]:
        grad_input = cupy.empty(gy.shape, dtype=gy.dtype)
        wc = contiguous(w) if w is not None else ic
        args = (
            gc, xc, yc, mc, ic, wc, i32(w is not None), sums, i32(training),
            f64(max(count, 1)), i64(grad_input.size), i64(channels), i64(max(inner, 1)),
            grad_input,
        )  # fmt: skip
        launch_1d(kernel(_FILE, "bn_grad_input", gy.dtype, code), grad_input.size, args)
    return grad_input, grad_weight, grad_bias
