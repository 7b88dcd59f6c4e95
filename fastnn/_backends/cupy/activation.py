"""Elementwise activations and their gradients on the GPU (kernels/cuda/activation.cu):
relu, sigmoid, tanh through common.cuh's activation codes; hardtanh (relu6), leaky_relu,
silu and gelu through activation.cu's extra_forward / extra_backward.  relu, relu6,
hardtanh and leaky_relu write into ``out`` when the caller gives one (checked by
fastnn.ops: C-contiguous, the input's shape and dtype; it may be the input itself)."""

from __future__ import annotations

from typing import Any

import cupy

from fastnn._backends.cupy._runtime import contiguous, cupy_arrays, f64, i64, kernel, launch_1d
from fastnn._backends.cupy._sources import ACTIVATIONS, EXTRA_ACTIVATIONS
from fastnn._dispatch import register

_GELU = {"none": "gelu", "tanh": "gelu_tanh"}


def _forward(name: str, x: Any, out: Any = None) -> Any:
    y = cupy.empty(x.shape, dtype=x.dtype) if out is None else out  # shape first: 0-d
    kern = kernel("activation.cu", "activation_forward", x.dtype, ACTIVATIONS[name])
    launch_1d(kern, y.size, (contiguous(x), y, i64(y.size)))
    return y


def _extra(name: str, x: Any, out: Any = None, p0: float = 0.0, p1: float = 0.0) -> Any:
    y = cupy.empty(x.shape, dtype=x.dtype) if out is None else out
    kern = kernel("activation.cu", "extra_forward", x.dtype, EXTRA_ACTIVATIONS[name])
    launch_1d(kern, y.size, (contiguous(x), y, i64(y.size), f64(p0), f64(p1)))
    return y


def _extra_backward(name: str, gy: Any, v: Any, p0: float = 0.0, p1: float = 0.0) -> Any:
    gx = cupy.empty(gy.shape, dtype=gy.dtype)
    kern = kernel("activation.cu", "extra_backward", gy.dtype, EXTRA_ACTIVATIONS[name])
    args = (contiguous(gy), contiguous(v), gx, i64(gx.size), f64(p0), f64(p1))
    launch_1d(kern, gx.size, args)
    return gx


@register("relu", "cupy")
@cupy_arrays
def relu(x: Any, out: Any = None) -> Any:
    """max(x, 0), NaN kept."""
    return _forward("relu", x, out)


@register("sigmoid", "cupy")
@cupy_arrays
def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), computed without overflow."""
    return _forward("sigmoid", x)


@register("tanh", "cupy")
@cupy_arrays
def tanh(x: Any) -> Any:
    """tanh(x)."""
    return _forward("tanh", x)


@register("hardtanh", "cupy")
@cupy_arrays
def hardtanh(x: Any, out: Any, min_val: float, max_val: float) -> Any:
    """x clamped to [min_val, max_val], NaN kept."""
    return _extra("hardtanh", x, out, min_val, max_val)


@register("relu6", "cupy")
@cupy_arrays
def relu6(x: Any, out: Any = None) -> Any:
    """x clamped to [0, 6], NaN kept."""
    return _extra("hardtanh", x, out, 0.0, 6.0)


@register("leaky_relu", "cupy")
@cupy_arrays
def leaky_relu(x: Any, out: Any, negative_slope: float) -> Any:
    """x where x > 0, else negative_slope * x."""
    return _extra("leaky_relu", x, out, negative_slope)


@register("silu", "cupy")
@cupy_arrays
def silu(x: Any) -> Any:
    """x sigmoid(x)."""
    return _extra("silu", x)


@register("gelu", "cupy")
@cupy_arrays
def gelu(x: Any, approximate: str) -> Any:
    """x Phi(x) (erf), or its tanh approximation."""
    return _extra(_GELU[approximate], x)


@register("silu_backward", "cupy")
@cupy_arrays
def silu_backward(gy: Any, x: Any) -> Any:
    """gy * silu'(x), from the forward input."""
    return _extra_backward("silu", gy, x)


@register("gelu_backward", "cupy")
@cupy_arrays
def gelu_backward(gy: Any, x: Any, approximate: str) -> Any:
    """gy * gelu'(x), from the forward input."""
    return _extra_backward(_GELU[approximate], gy, x)


@register("activation_backward", "cupy")
@cupy_arrays
def activation_backward(name: str, gy: Any, y: Any, p0: float = 0.0, p1: float = 0.0) -> Any:
    """gy * f'(u), written with the forward output y = f(u); p0, p1: hardtanh's min_val
    and max_val, leaky_relu's negative_slope."""
    if name in EXTRA_ACTIVATIONS:
        return _extra_backward(name, gy, y, p0, p1)
    gx = cupy.empty(gy.shape, dtype=gy.dtype)
    kern = kernel("activation.cu", "activation_backward", gy.dtype, ACTIVATIONS[name])
    launch_1d(kern, gx.size, (contiguous(gy), contiguous(y), gx, i64(gx.size)))
    return gx
