"""Activations, softmax / log_softmax and their backward on the GPU: one launch each
(kernels/numba_cuda/activation.py and softmax.py).  relu, relu6, hardtanh and leaky_relu
write into ``out`` when the caller gives one (checked by fastnn.ops; it may be x)."""

from __future__ import annotations

import math
from typing import Any

from fastnn.backends.numba_cuda import _launch
from fastnn.backends.numba_cuda._device import empty, launch, op
from fastnn.kernels.numba_cuda import activation as _extra
from fastnn.kernels.numba_cuda.activation import THREADS, activation_kernels, extra_kernels
from fastnn.kernels.numba_cuda.pointwise import CODES, RELU, SIGMOID, TANH
from fastnn.kernels.numba_cuda.reduce import BLOCK
from fastnn.kernels.numba_cuda.softmax import softmax_kernels


def _forward(code: int, x: Any, out: Any = None) -> Any:
    if out is None:
        out = empty(x.shape, x.dtype)
    blocks, threads = _launch.elementwise(x.size, THREADS)
    kernel = activation_kernels(x.dtype).forward
    launch(kernel, blocks, threads, code, x.reshape(x.size), out.reshape(x.size))
    return out


def _extra_forward(code: int, x: Any, out: Any = None, p0: float = 0.0, p1: float = 0.0):
    """hardtanh / leaky_relu / silu / gelu (codes of extra_kernels) into out or a new
    array; out (checked by fastnn.ops) may be x itself."""
    if out is None:
        out = empty(x.shape, x.dtype)
    n = x.size
    blocks, threads = _launch.elementwise(n, THREADS)
    t = x.dtype.type
    kernel = extra_kernels(x.dtype).forward
    launch(kernel, blocks, threads, code, x.reshape(n), out.reshape(n), t(p0), t(p1))
    return out


def _extra_backward(code: int, gy: Any, v: Any, p0: float = 0.0, p1: float = 0.0) -> Any:
    out = empty(gy.shape, gy.dtype)
    n = gy.size
    blocks, threads = _launch.elementwise(n, THREADS)
    t = gy.dtype.type
    kernel = extra_kernels(gy.dtype).backward
    launch(kernel, blocks, threads, code, gy.reshape(n), v.reshape(n), out.reshape(n),
           t(p0), t(p1))  # fmt: skip
    return out


_GELU = {"none": _extra.GELU, "tanh": _extra.GELU_TANH}


@op("relu")
def _relu(x, out=None):
    return _forward(RELU, x, out)


@op("hardtanh")
def _hardtanh(x, out, min_val: float, max_val: float):
    return _extra_forward(_extra.HARDTANH, x, out, min_val, max_val)


@op("relu6")
def _relu6(x, out=None):
    return _extra_forward(_extra.HARDTANH, x, out, 0.0, 6.0)


@op("leaky_relu")
def _leaky_relu(x, out, negative_slope: float):
    return _extra_forward(_extra.LEAKY_RELU, x, out, negative_slope)


@op("silu")
def _silu(x):
    return _extra_forward(_extra.SILU, x)


@op("gelu")
def _gelu(x, approximate: str):
    return _extra_forward(_GELU[approximate], x)


@op("silu_backward")
def _silu_backward(gy, x):
    return _extra_backward(_extra.SILU, gy, x)


@op("gelu_backward")
def _gelu_backward(gy, x, approximate: str):
    return _extra_backward(_GELU[approximate], gy, x)


@op("sigmoid")
def _sigmoid(x):
    return _forward(SIGMOID, x)


@op("tanh")
def _tanh(x):
    return _forward(TANH, x)


_EXTRA_BACKWARD = {"hardtanh": _extra.HARDTANH, "leaky_relu": _extra.LEAKY_RELU}


@op("activation_backward")
def _activation_backward(name: str, gy, y, p0: float = 0.0, p1: float = 0.0):
    if name in _EXTRA_BACKWARD:  # p0, p1: min_val, max_val / negative_slope
        return _extra_backward(_EXTRA_BACKWARD[name], gy, y, p0, p1)
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
