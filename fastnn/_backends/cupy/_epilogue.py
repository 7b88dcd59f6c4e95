"""In-place epilogues over a fresh cuBLAS result (kernels/cuda/epilogue.cu)."""

from __future__ import annotations

from typing import Any

from fastnn._backends.cupy._runtime import contiguous, i32, i64, kernel, launch_1d
from fastnn._backends.cupy._sources import ACTIVATIONS


def bias_activation(y: Any, bias: Any, activation: str | None, inner: int, channels: int) -> Any:
    """y = activation(y + bias[channel]) in place, for a C-contiguous y viewed as
    (outer, channels, inner); nothing to do without bias and activation."""
    if bias is None and activation is None:
        return y
    has_bias = bias is not None
    kern = kernel("epilogue.cu", "bias_activation", y.dtype, ACTIVATIONS[activation], has_bias)
    b = contiguous(bias) if has_bias else y  # not read without a bias
    launch_1d(kern, y.size, (y, b, i64(y.size), i64(inner), i32(channels)))
    return y


def derivative_multiply(v: Any, u: Any, activation: str | None) -> Any:
    """v *= f'(u) in place (nothing for the identity)."""
    if activation is not None:
        kern = kernel("epilogue.cu", "derivative_multiply", v.dtype, ACTIVATIONS[activation])
        launch_1d(kern, v.size, (v, contiguous(u), i64(v.size)))
    return v


def mean_scale(reduction: str, count: int) -> float:
    """d(reduction)/d(element): 1/count for "mean" (NaN for no elements), else 1."""
    if reduction == "mean":
        return 1.0 / count if count else float("nan")
    return 1.0
