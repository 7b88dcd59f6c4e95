"""Losses and their gradients on the GPU.

A reduced loss is a two-pass sum: per-block partial sums (one launch), then one block adds
the partials and scales them (a second launch); the order of the additions depends only on
the size, so the result is reproducible.  Cross-entropy computes each row's loss with one
team of threads per row first.  Gradients are one launch each.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import device_arrays, empty, launch
from fastnn._backends.numba_cuda._reduce import flat_reduction, total
from fastnn._dispatch import register
from fastnn.kernels.numba_cuda.activation import THREADS
from fastnn.kernels.numba_cuda.loss import BCE, MSE, VALUE, loss_kernels
from fastnn.kernels.numba_cuda.reduce import BLOCK
from fastnn.kernels.numba_cuda.softmax import cross_entropy_kernels

#: PyTorch's floor of the BCE gradient's denominator: the float32 1e-12 for every dtype.
BCE_EPS = float(np.float32(1e-12))


def mean_scale(reduction: str, count: int) -> float:
    """d(reduction)/d(element): 1/count for "mean" (NaN over nothing, as in PyTorch)."""
    if reduction == "mean":
        return 1.0 / count if count else math.nan
    return 1.0


def reduce_terms(loss: int, x: Any, t: Any, reduction: str, count: int) -> Any:
    """The loss terms of the flat x, t: per element for "none", else their sum scaled by
    ``mean_scale(reduction, count)`` as a 0-d array."""
    kernels = loss_kernels(x.dtype)
    n = x.shape[0]
    if reduction == "none":
        out = empty(n, x.dtype)
        blocks, threads = _launch.elementwise(n, THREADS)
        launch(kernels.terms, blocks, threads, loss, x, t, out)
        return out
    blocks, threads = flat_reduction(n)
    partial = empty(blocks, x.dtype)
    launch(kernels.partial_sums, blocks, threads, loss, x, t, partial)
    out = empty(1, x.dtype)
    total(partial, out, mean_scale(reduction, count))
    return out.reshape(())


def _pointwise(loss: int, x: Any, t: Any, reduction: str) -> Any:
    n = x.size
    out = reduce_terms(loss, x.reshape(n), t.reshape(n), reduction, n)
    return out.reshape(x.shape) if reduction == "none" else out


def _pointwise_grad(loss: int, x: Any, t: Any, reduction: str) -> Any:
    n = x.size
    out = empty(x.shape, x.dtype)
    scalar = x.dtype.type
    blocks, threads = _launch.elementwise(n, THREADS)
    launch(
        loss_kernels(x.dtype).grad, blocks, threads, loss, x.reshape(n), t.reshape(n),
        out.reshape(n), scalar(mean_scale(reduction, n)), scalar(BCE_EPS),
    )  # fmt: skip
    return out


# mse_loss, binary_cross_entropy and their backward: one kernel each, told the loss by code.
for _op, _code in (("mse_loss", MSE), ("binary_cross_entropy", BCE)):
    register(_op, "numba-cuda")(device_arrays(functools.partial(_pointwise, _code)))
    register(f"{_op}_backward", "numba-cuda")(
        device_arrays(functools.partial(_pointwise_grad, _code))
    )


def rows_launch(rows: int, length: int) -> tuple[int, int, int]:
    """(blocks, threads, team) for one team per row of an (rows, length) array."""
    if length == 0:
        return 0, 0, 1
    return _launch.teams(rows, length, BLOCK)


@register("cross_entropy", "numba-cuda")
@device_arrays
def _cross_entropy(x, target, reduction: str):
    rows = x.shape[0]
    nll = empty(rows, x.dtype)
    blocks, threads, team = rows_launch(rows, x.shape[1])
    launch(cross_entropy_kernels(x.dtype).loss, blocks, threads, x, target, nll, team)
    return reduce_terms(VALUE, nll, nll, reduction, rows)


def cross_entropy_grad(x: Any, target: Any, scale: float, probabilities: bool) -> Any:
    """``scale * (softmax(x) - onehot(target))`` per row (x used as it is when it already
    holds probabilities)."""
    out = empty(x.shape, x.dtype)
    blocks, threads, team = rows_launch(x.shape[0], x.shape[1])
    kernel = cross_entropy_kernels(x.dtype).grad
    scalar = x.dtype.type
    launch(kernel, blocks, threads, x, target, out, team, scalar(scale), probabilities)
    return out


@register("cross_entropy_backward", "numba-cuda")
@device_arrays
def _cross_entropy_backward(x, target, reduction: str):
    return cross_entropy_grad(x, target, mean_scale(reduction, x.shape[0]), False)
