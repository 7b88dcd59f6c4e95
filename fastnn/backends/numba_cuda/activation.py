"""Activations, softmax / log_softmax and their backward on the GPU: one launch each
(kernels/numba_cuda/activation.py and softmax.py)."""

from __future__ import annotations

import math
from typing import Any

from fastnn.backends.numba_cuda import _launch
from fastnn.backends.numba_cuda._device import empty, launch, op
from fastnn.kernels.numba_cuda.activation import THREADS, activation_kernels
from fastnn.kernels.numba_cuda.pointwise import CODES, RELU, SIGMOID, TANH
from fastnn.kernels.numba_cuda.reduce import BLOCK
from fastnn.kernels.numba_cuda.softmax import softmax_kernels


def _forward(code: int, x: Any) -> Any:
    out = empty(x.shape, x.dtype)
    blocks, threads = _launch.elementwise(x.size, THREADS)
    kernel = activation_kernels(x.dtype).forward
    launch(kernel, blocks, threads, code, x.reshape(x.size), out.reshape(x.size))
    return out


@op("relu")
def _relu(x):
    return _forward(RELU, x)


@op("sigmoid")
def _sigmoid(x):
    return _forward(SIGMOID, x)


@op("tanh")
def _tanh(x):
    return _forward(TANH, x)


@op("activation_backward")
def _activation_backward(name: str, gy, y):
    out = empty(gy.shape, gy.dtype)
    n = gy.size
    blocks, threads = _launch.elementwise(n, THREADS)
    kernel = activation_kernels(gy.dtype).backward
    launch(kernel, blocks, threads, CODES[name], gy.reshape(n), y.reshape(n), out.reshape(n))
    return out


def rows_view(x: Any, dim: int) -> Any:
    """The C-contiguous ``x`` as 3-d (outer, length, inner) around axis ``dim``."""
    shape = tuple(x.shape)
    return x.reshape(math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1 :]))


def softmax_launch(x3: Any) -> tuple[int, int, int]:
    """(blocks, threads, team) for the row kernels on a 3-d (outer, length, inner) view."""
    outer, length, inner = x3.shape
    if length == 0:  # nothing to compute (and row kernels read each row's first element)
        return 0, 0, 1
    return _launch.teams(outer * inner, length, BLOCK)


def _softmax_forward(x: Any, dim: int, log: bool) -> Any:
    out = empty(x.shape, x.dtype)
    x3, out3 = rows_view(x, dim), rows_view(out, dim)
    blocks, threads, team = softmax_launch(x3)
    launch(softmax_kernels(x.dtype).forward, blocks, threads, x3, out3, team, log)
    return out


def _softmax_backward(gy: Any, y: Any, dim: int, log: bool) -> Any:
    out = empty(gy.shape, gy.dtype)
    g3, y3, out3 = rows_view(gy, dim), rows_view(y, dim), rows_view(out, dim)
    blocks, threads, team = softmax_launch(g3)
    launch(softmax_kernels(gy.dtype).backward, blocks, threads, g3, y3, out3, team, log)
    return out


@op("softmax")
def _softmax(x, dim: int):
    return _softmax_forward(x, dim, False)


@op("log_softmax")
def _log_softmax(x, dim: int):
    return _softmax_forward(x, dim, True)


@op("softmax_backward")
def _softmax_bw(gy, y, dim: int):
    return _softmax_backward(gy, y, dim, False)


@op("log_softmax_backward")
def _log_softmax_bw(gy, y, dim: int):
    return _softmax_backward(gy, y, dim, True)
