"""Batch normalisation from the textbook formulas, in float64 (two-pass variance)."""

from __future__ import annotations

import numpy as np

from fastnn._backends.reference._util import f64, finish
from fastnn._dispatch import register


def _axes(x) -> tuple[int, ...]:
    return (0, *range(2, x.ndim))


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """A (C,) array shaped to broadcast against an (N, C, *) array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance of the float64 x (NaN for no values)."""
    axes = _axes(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.mean(axis=axes) if x.size else np.full(x.shape[1], np.nan)
        centred = x - _per_channel(mean, x.ndim)
        var = (centred * centred).mean(axis=axes) if x.size else mean.copy()
    return mean, var


def _activate(name: str | None, y: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.where(y > 0, y, np.where(np.isnan(y), y, 0.0))
    if name == "relu6":
        return np.where(np.isnan(y), y, np.clip(y, 0.0, 6.0))
    return y


def _elemt(x, mean, invstd, w, b, activation) -> np.ndarray:
    nd = x.ndim
    y = (x - _per_channel(mean, nd)) * _per_channel(invstd, nd)
    if w is not None:
        y = y * _per_channel(f64(w), nd)
    if b is not None:
        y = y + _per_channel(f64(b), nd)
    return _activate(activation, y)


@register("batch_norm_stats", "reference")
def _stats(x, eps: float):
    mean, var = _moments(f64(x))
    return finish(mean, x.dtype), finish(1.0 / np.sqrt(var + eps), x.dtype)


@register("batch_norm_elemt", "reference")
def _batch_norm_elemt(x, mean, invstd, w, b, activation):
    return finish(_elemt(f64(x), f64(mean), f64(invstd), w, b, activation), x.dtype)


@register("batch_norm", "reference")
def _batch_norm(x, running_mean, running_var, w, b, training, factor, eps, activation):
    xd = f64(x)
    if training:
        mean, var = _moments(xd)
        count = x.size // max(x.shape[1], 1)
        if running_mean is not None and count > 0:
            unbiased = var * (count / (count - 1))
            running_mean[...] = (1.0 - factor) * f64(running_mean) + factor * mean
            running_var[...] = (1.0 - factor) * f64(running_var) + factor * unbiased
    else:
        mean, var = f64(running_mean), f64(running_var)
    invstd = 1.0 / np.sqrt(var + eps)
    y = _elemt(xd, mean, invstd, w, b, activation)
    return finish(y, x.dtype), finish(mean, x.dtype), finish(invstd, x.dtype)


@register("batch_norm_backward", "reference")
def _batch_norm_backward(gy, x, w, mean, invstd, training, y, activation, mask):
    g = f64(gy)
    if activation == "relu":  # as PyTorch: a NaN output passes g
        g = np.where(f64(y) <= 0, 0.0, g)
    elif activation == "relu6":
        out = f64(y)
        g = np.where((out <= 0) | (out >= 6), 0.0, g)
    nd = g.ndim
    axes = _axes(g)
    xhat = (f64(x) - _per_channel(f64(mean), nd)) * _per_channel(f64(invstd), nd)
    sum_g = g.sum(axis=axes)
    sum_gx = (g * xhat).sum(axis=axes)
    grad_input = None
    if mask[0]:
        scale = f64(invstd) * (1.0 if w is None else f64(w))
        if training:
            count = max(g.size // max(g.shape[1], 1), 1)
            centred = g - _per_channel(sum_g / count, nd) - xhat * _per_channel(sum_gx / count, nd)
            grad_input = finish(centred * _per_channel(scale, nd), gy.dtype)
        else:
            grad_input = finish(g * _per_channel(scale, nd), gy.dtype)
    grad_weight = finish(sum_gx, gy.dtype) if mask[1] else None
    grad_bias = finish(sum_g, gy.dtype) if mask[2] else None
    return grad_input, grad_weight, grad_bias
