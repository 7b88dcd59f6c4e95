"""relu, sigmoid, tanh and their gradient on the GPU (kernels/cuda/activation.cu)."""

from __future__ import annotations

from typing import Any

import cupy

from fastnn.backends.cupy._runtime import contiguous, cupy_op, i64, kernel, launch_1d
from fastnn.backends.cupy._sources import ACTIVATIONS


def _forward(name: str, x: Any) -> Any:
    y = cupy.empty(x.shape, dtype=x.dtype)  # shape first: contiguous() makes 0-d 1-d
    kern = kernel("activation.cu", "activation_forward", x.dtype, ACTIVATIONS[name])
    launch_1d(kern, y.size, (contiguous(x), y, i64(y.size)))
    return y


@cupy_op("relu")
def relu(x: Any) -> Any:
    """max(x, 0), NaN kept."""
    return _forward("relu", x)


@cupy_op("sigmoid")
def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), computed without overflow."""
    return _forward("sigmoid", x)


@cupy_op("tanh")
def tanh(x: Any) -> Any:
    """tanh(x)."""
    return _forward("tanh", x)


@cupy_op("activation_backward")
def activation_backward(name: str, gy: Any, y: Any) -> Any:
    """gy * f'(u), written with the forward output y = f(u)."""
    gx = cupy.empty(gy.shape, dtype=gy.dtype)
    kern = kernel("activation.cu", "activation_backward", gy.dtype, ACTIVATIONS[name])
    launch_1d(kern, gx.size, (contiguous(gy), contiguous(y), gx, i64(gx.size)))
    return gx
