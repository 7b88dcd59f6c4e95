"""MSE, binary cross-entropy and cross-entropy with their gradients (kernels/cuda/loss.cu).

Reduced losses are summed deterministically: per-chunk double sums (loss_partial), then
reduce.cu's sum_finish, which also applies 1/count for "mean"."""

from __future__ import annotations

import functools
from typing import Any

import cupy
import numpy as np

from fastnn._backends.cupy._epilogue import mean_scale
from fastnn._backends.cupy._reduce import PER_THREAD, channel_sums, chunking, finish
from fastnn._backends.cupy._runtime import (
    contiguous,
    cupy_arrays,
    i64,
    kernel,
    launch_1d,
    run_rows,
    scalar,
)
from fastnn._backends.cupy._sources import LOSSES, THREADS
from fastnn._dispatch import register


def _pointwise(loss: str, x: Any, t: Any, reduction: str) -> Any:
    code = LOSSES[loss]
    n = x.size
    xc, tc = contiguous(x), contiguous(t)
    if reduction == "none":
        out = cupy.empty(x.shape, dtype=x.dtype)
        launch_1d(kernel("loss.cu", "loss_none", x.dtype, code), n, (xc, tc, out, i64(n)))
        return out
    out = cupy.empty((), dtype=x.dtype)
    scale = mean_scale(reduction, n)
    if n == 0:
        out.fill(0.0 * scale)  # sum of nothing: 0; mean of nothing: NaN
        return out
    chunks, chunk_len = chunking(n, PER_THREAD * THREADS)
    partial = cupy.empty((chunks,), dtype=np.float64)
    kern = kernel("loss.cu", "loss_partial", x.dtype, code)
    kern((chunks,), (THREADS,), (xc, tc, i64(n), i64(chunk_len), partial))
    return finish(partial, chunks, 1, scale, out)


def _pointwise_backward(loss: str, x: Any, t: Any, reduction: str) -> Any:
    gx = cupy.empty(x.shape, dtype=x.dtype)
    n = gx.size
    kern = kernel("loss.cu", "loss_backward", x.dtype, LOSSES[loss])
    scale = scalar(x.dtype, mean_scale(reduction, n))
    launch_1d(kern, n, (contiguous(x), contiguous(t), gx, i64(n), scale))
    return gx


# mse_loss: (x - t)^2, gradient 2 (x - t); binary_cross_entropy: -(t log p + (1 - t)
# log(1 - p)), each log clamped at -100, gradient (p - t) / max(p (1 - p), 1e-12).  The
# gradients are divided by the count for "mean".
for _op, _loss in (("mse_loss", "mse"), ("binary_cross_entropy", "binary_cross_entropy")):
    register(_op, "cupy")(cupy_arrays(functools.partial(_pointwise, _loss)))
    register(f"{_op}_backward", "cupy")(cupy_arrays(functools.partial(_pointwise_backward, _loss)))


@register("cross_entropy", "cupy")
@cupy_arrays
def cross_entropy(x: Any, target: Any, reduction: str) -> Any:
    """logsumexp(x[n]) - x[n, target[n]] per row, reduced over the rows."""
    rows, classes = x.shape
    nll = cupy.empty((rows,), dtype=x.dtype)
    if rows and classes:
        labels = contiguous(target, dtype=np.int64)
        args = (contiguous(x), labels, nll, i64(rows), i64(classes))
        run_rows("loss.cu", "cross_entropy_rows", x.dtype, (), rows, classes, args)
    if reduction == "none":
        return nll
    total = channel_sums(nll, 1, 1, rows, mean_scale(reduction, rows))  # one line of rows
    return total.reshape(())


@register("cross_entropy_backward", "cupy")
@cupy_arrays
def cross_entropy_backward(x: Any, target: Any, reduction: str) -> Any:
    """(softmax(x) - onehot(target)) / rows for "mean"."""
    gx = cupy.empty(x.shape, dtype=x.dtype)
    if gx.size:
        cross_entropy_grad(x, target, gx, reduction, from_logits=True)
    return gx


def cross_entropy_grad(x: Any, target: Any, out: Any, reduction: str, from_logits: bool) -> Any:
    """out = (softmax(x) - onehot(target)) per row (x itself taken as the probabilities
    unless ``from_logits``), scaled by 1 / rows for "mean"; returns out (non-empty,
    x's shape and dtype)."""
    rows, classes = x.shape
    scale = scalar(x.dtype, mean_scale(reduction, rows))
    labels = contiguous(target, dtype=np.int64)
    args = (contiguous(x), labels, out, i64(rows), i64(classes), scale)
    run_rows("loss.cu", "cross_entropy_grad_rows", x.dtype, (from_logits,), rows, classes, args)
    return out
