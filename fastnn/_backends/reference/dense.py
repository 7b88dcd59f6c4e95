"""GEMM and the dense layer, straight from their definitions."""

from __future__ import annotations

import numpy as np

from fastnn._backends.reference._util import activate, f64, finish
from fastnn._dispatch import register


@register("gemm", "reference")
def _gemm(a, b, c, alpha: float, beta: float, trans_a: bool, trans_b: bool):
    op_a = f64(a).T if trans_a else f64(a)
    op_b = f64(b).T if trans_b else f64(b)
    shape = (op_a.shape[0], op_b.shape[1])
    # As in BLAS and torch.addmm, a zero factor means its operands are not read at all:
    # alpha == 0 ignores a and b, beta == 0 ignores c (NaN and inf included).
    out = alpha * (op_a @ op_b) if alpha != 0.0 else np.zeros(shape)
    if c is not None and beta != 0.0:
        out = out + beta * f64(c)
    return finish(np.broadcast_to(out, shape), a.dtype)


@register("linear", "reference")
def _linear(x, w, b, activation):
    u = f64(x) @ f64(w).T
    if b is not None:
        u += f64(b)
    return finish(activate(activation, u), x.dtype)


@register("linear_backward", "reference")
def _linear_backward(gy, x, w, mask):
    g = f64(gy)
    grad_input = finish(g @ f64(w), x.dtype) if mask[0] else None
    grad_weight = finish(g.T @ f64(x), x.dtype) if mask[1] else None
    grad_bias = finish(g.sum(axis=0), x.dtype) if mask[2] else None
    return grad_input, grad_weight, grad_bias
