"""gemm, linear and linear_backward on the GPU: cuBLAS (cupy.matmul) for the products,
our epilogue kernels (kernels/cuda/epilogue.cu) for alpha/beta, bias and activation, and
deterministic column sums (reduce.cu) for the bias gradient."""

from __future__ import annotations

from typing import Any

import cupy

from fastnn._backends.cupy._epilogue import bias_activation
from fastnn._backends.cupy._reduce import channel_sums
from fastnn._backends.cupy._runtime import contiguous, cupy_arrays, i64, kernel, launch_1d, scalar
from fastnn._dispatch import register


def matmul(a: Any, b: Any) -> Any:
    """a @ b through cuBLAS, as a fresh C-contiguous array (any input strides)."""
    return contiguous(cupy.matmul(a, b))


@register("gemm", "cupy")
@cupy_arrays
def gemm(a: Any, b: Any, c: Any, alpha: float, beta: float, trans_a: bool, trans_b: bool) -> Any:
    """alpha * op(a) @ op(b) + beta * c, c broadcast to (M, N) and ignored when beta == 0."""
    y = matmul(a.T if trans_a else a, b.T if trans_b else b)
    rows, cols = y.shape
    use_c = c is not None and beta != 0.0
    if not use_c and alpha == 1.0:
        return y
    if use_c:
        c2 = contiguous(c).reshape((1,) * (2 - c.ndim) + tuple(c.shape))
        row_step = 0 if c2.shape[0] == 1 else c2.shape[1]
        col_step = 0 if c2.shape[1] == 1 else 1
    else:
        c2, row_step, col_step = y, 0, 0  # not read
    kern = kernel("epilogue.cu", "gemm_epilogue", y.dtype, use_c)
    args = (y, c2, i64(rows), i64(cols), i64(row_step), i64(col_step))
    launch_1d(kern, y.size, (*args, scalar(y.dtype, alpha), scalar(y.dtype, beta)))
    return y


@register("linear", "cupy")
@cupy_arrays
def linear(x: Any, w: Any, b: Any, activation: str | None) -> Any:
    """activation(x @ w.T + b): one cuBLAS call, then one fused epilogue pass."""
    y = matmul(x, w.T)
    return bias_activation(y, b, activation, 1, y.shape[1])


@register("linear_backward", "cupy")
@cupy_arrays
def linear_backward(gy: Any, x: Any, w: Any, mask: tuple[bool, bool, bool]) -> tuple:
    """(gy @ w, gy.T @ x, gy summed over rows), None where the mask is False."""
    gx = matmul(gy, w) if mask[0] else None
    gw = matmul(gy.T, x) if mask[1] else None
    gb = None
    if mask[2]:
        rows, out_features = gy.shape
        gb = channel_sums(contiguous(gy), rows, out_features, 1)
    return gx, gw, gb
