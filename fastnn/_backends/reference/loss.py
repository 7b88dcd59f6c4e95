"""Losses and their gradients with respect to the input (PyTorch's definitions)."""

from __future__ import annotations

import numpy as np

from fastnn._backends.reference._util import f64, finish
from fastnn._dispatch import register

BCE_LOG_FLOOR = -100.0  # PyTorch clamps each log term of BCE at -100
# ... and the denominator of its gradient at 1e-12, a float32 constant even for float64
# inputs (so the floor is 9.99999996e-13, which shows in gradients of p = 0 or 1)
BCE_EPS = float(np.float32(1e-12))


def _reduce(per_element: np.ndarray, reduction: str, count: int) -> np.ndarray:
    if reduction == "none":
        return per_element
    total = per_element.sum()
    if reduction == "sum":
        return np.asarray(total)
    return np.asarray(total / count if count else np.nan)


def mean_scale(reduction: str, count: int) -> float:
    """The factor d(reduction)/d(element): 1/count for "mean" (NaN for no elements, whose
    mean is NaN as in PyTorch), else 1."""
    if reduction == "mean":
        return 1.0 / count if count else np.nan
    return 1.0


@register("mse_loss", "reference")
def _mse(x, t, reduction: str):
    d = f64(x) - f64(t)
    return finish(_reduce(d * d, reduction, d.size), x.dtype)


@register("mse_loss_backward", "reference")
def _mse_backward(x, t, reduction: str):
    d = f64(x) - f64(t)
    return finish(2.0 * d * mean_scale(reduction, d.size), x.dtype)


@register("binary_cross_entropy", "reference")
def _bce(x, t, reduction: str):
    p, y = f64(x), f64(t)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), BCE_LOG_FLOOR)
        log_q = np.maximum(np.log1p(-p), BCE_LOG_FLOOR)
    return finish(_reduce(-(y * log_p + (1.0 - y) * log_q), reduction, p.size), x.dtype)


@register("binary_cross_entropy_backward", "reference")
def _bce_backward(x, t, reduction: str):
    p, y = f64(x), f64(t)
    grad = (p - y) / np.maximum(p * (1.0 - p), BCE_EPS)
    return finish(grad * mean_scale(reduction, p.size), x.dtype)


def _log_softmax_rows(x) -> np.ndarray:
    z = f64(x) - np.max(f64(x), axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@register("cross_entropy", "reference")
def _cross_entropy(x, target, reduction: str):
    rows = np.arange(x.shape[0])
    nll = -_log_softmax_rows(x)[rows, np.asarray(target, dtype=np.int64)]
    return finish(_reduce(nll, reduction, x.shape[0]), x.dtype)


@register("cross_entropy_backward", "reference")
def _cross_entropy_backward(x, target, reduction: str):
    grad = np.exp(_log_softmax_rows(x))  # softmax
    grad[np.arange(x.shape[0]), np.asarray(target, dtype=np.int64)] -= 1.0
    return finish(grad * mean_scale(reduction, x.shape[0]), x.dtype)
