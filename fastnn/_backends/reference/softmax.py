"""softmax / log_softmax and their gradients (from the output), in float64 with textbook
formulas."""

from __future__ import annotations

import numpy as np

from fastnn._backends.reference._util import f64, finish
from fastnn._dispatch import register


def _shifted(x, dim: int) -> np.ndarray:
    """x - max(x) along dim: every exponent is <= 0, so exp never overflows.

    ``initial=-inf`` lets an empty ``dim`` through (the result is empty anyway).  A row
    holding +inf, NaN or only -inf gives NaN, as in PyTorch; numpy's warning is silenced.
    """
    x = f64(x)
    with np.errstate(invalid="ignore"):
        return x - np.max(x, axis=dim, keepdims=True, initial=-np.inf)


@register("softmax", "reference")
def _softmax(x, dim: int):
    e = np.exp(_shifted(x, dim))
    with np.errstate(invalid="ignore"):
        return finish(e / e.sum(axis=dim, keepdims=True), x.dtype)


@register("log_softmax", "reference")
def _log_softmax(x, dim: int):
    z = _shifted(x, dim)
    with np.errstate(invalid="ignore", divide="ignore"):  # log(0) of an empty dim
        return finish(z - np.log(np.exp(z).sum(axis=dim, keepdims=True)), x.dtype)


@register("softmax_backward", "reference")
def _softmax_backward(gy, y, dim: int):
    g, out = f64(gy), f64(y)
    return finish(out * (g - (g * out).sum(axis=dim, keepdims=True)), gy.dtype)


@register("log_softmax_backward", "reference")
def _log_softmax_backward(gy, y, dim: int):
    g, out = f64(gy), f64(y)
    return finish(g - np.exp(out) * g.sum(axis=dim, keepdims=True), gy.dtype)
