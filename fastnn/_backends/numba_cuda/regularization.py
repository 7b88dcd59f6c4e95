"""Dropout, its backward and the fused residual add on the GPU: one launch each
(kernels/numba_cuda/dropout_add.py), the same random stream as every other backend."""

from __future__ import annotations

import numpy as np

from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import device_arrays, empty, launch
from fastnn._dispatch import register
from fastnn.kernels.numba_cuda.dropout_add import ADD_CODES, THREADS, dropout_add_kernels


def _copy(x):
    out = empty(x.shape, x.dtype)
    if x.size:
        out.copy_to_device(x)
    return out


def _run(kernel, n: int, *args) -> None:
    blocks, threads = _launch.elementwise(n, THREADS)
    launch(kernel, blocks, threads, *args)


@register("dropout", "numba-cuda")
@device_arrays
def _dropout(x, p: float, threshold: int, seed: int | None):
    if seed is None:
        return _copy(x), None
    n = x.size
    y = empty(x.shape, x.dtype)
    mask = empty(x.shape, np.uint8)
    scale = np.dtype(x.dtype).type(1.0 / (1.0 - p))
    _run(
        dropout_add_kernels(x.dtype).dropout, n, x.reshape(n), y.reshape(n), mask.reshape(n),
        np.uint64(seed), np.uint64(threshold), scale,
    )  # fmt: skip
    return y, mask


@register("dropout_backward", "numba-cuda")
@device_arrays
def _dropout_backward(gy, mask, p: float):
    if mask is None:
        return _copy(gy)
    n = gy.size
    gx = empty(gy.shape, gy.dtype)
    scale = np.dtype(gy.dtype).type(1.0 / (1.0 - p))
    kernel = dropout_add_kernels(gy.dtype).dropout_backward
    _run(kernel, n, gy.reshape(n), mask.reshape(n), gx.reshape(n), scale)
    return gx


@register("add", "numba-cuda")
@device_arrays
def _add(a, b, activation: str | None):
    n = a.size
    y = empty(a.shape, a.dtype)
    kernel = dropout_add_kernels(a.dtype).add
    _run(kernel, n, ADD_CODES[activation], a.reshape(n), b.reshape(n), y.reshape(n))
    return y
