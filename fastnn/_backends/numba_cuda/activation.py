"""Activations and their backward on the GPU: one launch each
(kernels/numba_cuda/activation.py; softmax is in softmax.py).  relu, relu6, hardtanh and leaky_relu
write into ``out`` when the caller gives one (checked by fastnn.ops; it may be x)."""

from __future__ import annotations

from typing import Any

from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import device_arrays, empty, launch
from fastnn._dispatch import register
from fastnn.kernels.numba_cuda import activation as _extra
from fastnn.kernels.numba_cuda.activation import THREADS, activation_kernels, extra_kernels
from fastnn.kernels.numba_cuda.pointwise import CODES, RELU, SIGMOID, TANH


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


@register("relu", "numba-cuda")
@device_arrays
def _relu(x, out=None):
    return _forward(RELU, x, out)


@register("hardtanh", "numba-cuda")
@device_arrays
def _hardtanh(x, out, min_val: float, max_val: float):
    return _extra_forward(_extra.HARDTANH, x, out, min_val, max_val)


@register("relu6", "numba-cuda")
@device_arrays
def _relu6(x, out=None):
    return _extra_forward(_extra.HARDTANH, x, out, 0.0, 6.0)


@register("leaky_relu", "numba-cuda")
@device_arrays
def _leaky_relu(x, out, negative_slope: float):
    return _extra_forward(_extra.LEAKY_RELU, x, out, negative_slope)


@register("silu", "numba-cuda")
@device_arrays
def _silu(x):
    return _extra_forward(_extra.SILU, x)


@register("gelu", "numba-cuda")
@device_arrays
def _gelu(x, approximate: str):
    return _extra_forward(_GELU[approximate], x)


@register("silu_backward", "numba-cuda")
@device_arrays
def _silu_backward(gy, x):
    return _extra_backward(_extra.SILU, gy, x)


@register("gelu_backward", "numba-cuda")
@device_arrays
def _gelu_backward(gy, x, approximate: str):
    return _extra_backward(_GELU[approximate], gy, x)


@register("sigmoid", "numba-cuda")
@device_arrays
def _sigmoid(x):
    return _forward(SIGMOID, x)


@register("tanh", "numba-cuda")
@device_arrays
def _tanh(x):
    return _forward(TANH, x)


_EXTRA_BACKWARD = {"hardtanh": _extra.HARDTANH, "leaky_relu": _extra.LEAKY_RELU}


@register("activation_backward", "numba-cuda")
@device_arrays
def _activation_backward(name: str, gy, y, p0: float = 0.0, p1: float = 0.0):
    if name in _EXTRA_BACKWARD:  # p0, p1: min_val, max_val / negative_slope
        return _extra_backward(_EXTRA_BACKWARD[name], gy, y, p0, p1)
    out = empty(gy.shape, gy.dtype)
    n = gy.size
    blocks, threads = _launch.elementwise(n, THREADS)
    kernel = activation_kernels(gy.dtype).backward
    launch(kernel, blocks, threads, CODES[name], gy.reshape(n), y.reshape(n), out.reshape(n))
    return out
