"""gemm, linear and linear_backward on the GPU: each one call of the tiled GEMM kernel with
its epilogue (plus one column-sum kernel for a bias gradient)."""

from __future__ import annotations

from typing import Any

from fastnn._backends.numba_cuda._device import device_arrays, empty
from fastnn._backends.numba_cuda._gemm import as3d, matmul
from fastnn._backends.numba_cuda._reduce import axis_sums
from fastnn._dispatch import register


def _broadcast3d(c: Any) -> Any:
    """``c`` (0-, 1- or 2-d, broadcastable to (M, N)) as a 3-d (1, M or 1, N or 1) array."""
    if c.ndim == 0:
        return c.reshape(1, 1, 1)
    if c.ndim == 1:
        return c.reshape(1, 1, c.shape[0])
    return as3d(c)


@register("gemm", "numba-cuda")
@device_arrays
def _gemm(a, b, c, alpha: float, beta: float, trans_a: bool, trans_b: bool):
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    out = empty((m, n), a.dtype)
    c3 = _broadcast3d(c) if c is not None and beta != 0.0 else None  # beta 0 ignores c
    matmul(
        as3d(a), as3d(b), as3d(out), trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta,
        c=c3,
    )  # fmt: skip
    return out


@register("linear", "numba-cuda")
@device_arrays
def _linear(x, w, b, activation):
    out = empty((x.shape[0], w.shape[0]), x.dtype)
    bias = b.reshape(1, b.shape[0]) if b is not None else None
    matmul(as3d(x), as3d(w), as3d(out), trans_b=True, bias=bias, activation=activation)
    return out


@register("linear_backward", "numba-cuda")
@device_arrays
def _linear_backward(gy, x, w, mask):
    return dense_backward(gy, x, w if mask[0] else None, mask[1], mask[2])


def dense_backward(gy: Any, x: Any, w: Any | None, weight: bool, bias: bool) -> tuple:
    """``(gy @ w if w is given, gy.T @ x if weight, column sums of gy if bias)`` for a
    dense layer; None for what is not asked."""
    grad_input = grad_weight = grad_bias = None
    if w is not None:
        grad_input = empty((gy.shape[0], w.shape[1]), gy.dtype)
        matmul(as3d(gy), as3d(w), as3d(grad_input))
    if weight:
        grad_weight = empty((gy.shape[1], x.shape[1]), gy.dtype)
        matmul(as3d(gy), as3d(x), as3d(grad_weight), trans_a=True)
    if bias:
        grad_bias = axis_sums(gy.reshape(gy.shape[0], gy.shape[1], 1))
    return grad_input, grad_weight, grad_bias
