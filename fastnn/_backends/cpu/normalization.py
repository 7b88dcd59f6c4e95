"""Batch normalisation on the CPU: kernels/cpu/batch_norm.pyx.

The kernels make the passes over the data (statistics, the normalising pass, the
backward's reduction and elementwise pass, with its per-channel coefficients in C); the
forward's per-channel arithmetic (invstd, scale, running statistics) is done here on (C,)
arrays in float64.
"""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register
from fastnn._threads import team_size
from fastnn.kernels.cpu import batch_norm as _k

#: Activation names -> the kernels' codes.
CODES = {None: _k.NONE, "relu": _k.RELU, "relu6": _k.RELU6}


def _count(x: np.ndarray) -> int:
    return x.size // max(x.shape[1], 1)


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance in float64 (NaN for no values)."""
    if x.shape[1] == 0:
        return np.zeros(0), np.zeros(0)
    if _count(x) == 0:
        nan = np.full(x.shape[1], np.nan)
        return nan, nan.copy()
    return _k.stats(x, team_size())


def _affine(x, mean, invstd, w, b, activation) -> np.ndarray:
    """act((x - mean) * invstd * w + b) with the per-channel factors folded first."""
    scale = invstd if w is None else np.asarray(invstd, np.float64) * w
    shift = np.zeros(x.shape[1], x.dtype) if b is None else b
    return _k.affine(x, mean, scale, shift, CODES[activation], team_size())


def _invstd(var: np.ndarray, eps: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 / np.sqrt(var + eps)


@register("batch_norm_stats", "cpu")
def batch_norm_stats(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    mean, var = _moments(x)
    return mean.astype(x.dtype), _invstd(var, eps).astype(x.dtype)


@register("batch_norm_elemt", "cpu")
def batch_norm_elemt(x, mean, invstd, w, b, activation) -> np.ndarray:
    return _affine(x, mean, invstd, w, b, activation)


@register("batch_norm", "cpu")
def batch_norm(x, running_mean, running_var, w, b, training, factor, eps, activation):
    if training:
        mean64, var = _moments(x)
        count = _count(x)
        if running_mean is not None and count > 0:
            unbiased = var * (count / (count - 1))
            running_mean[...] = (1.0 - factor) * running_mean.astype(np.float64) + factor * mean64
            running_var[...] = (1.0 - factor) * running_var.astype(np.float64) + factor * unbiased
        mean = mean64.astype(x.dtype)
    else:
        mean, var = np.array(running_mean, dtype=x.dtype), running_var.astype(np.float64)
    invstd = _invstd(var, eps).astype(x.dtype)
    y = _affine(x, mean, invstd, w, b, activation)
    return y, mean, invstd


@register("batch_norm_backward", "cpu")
def batch_norm_backward(gy, x, w, mean, invstd, training, y, activation, mask):
    code = CODES[activation]
    return _k.backward(gy, x, y, code, mean, invstd, w, training, *mask, team_size())
