"""Dropout and the fused residual add, in float64 NumPy: the ground truth, including the
counter-based random stream every backend reproduces bit for bit (see
:func:`dropout_keep`)."""

from __future__ import annotations

import numpy as np

from fastnn._backends.reference._util import f64, finish
from fastnn._dispatch import register

__all__ = ["dropout_keep"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def dropout_keep(seed: int, threshold: int, n: int) -> np.ndarray:
    """The uint8 keep mask of ``n`` elements: element ``i`` is kept when the top 32 bits
    of ``splitmix64(seed + (i + 1) * golden)`` are ``>= threshold`` (uint64 arithmetic,
    wrapping)."""
    z = np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN + np.uint64(seed)
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z ^= z >> np.uint64(31)
    return ((z >> np.uint64(32)) >= np.uint64(threshold)).astype(np.uint8)


@register("dropout", "reference")
def _dropout(x, p: float, threshold: int, seed: int | None):
    if seed is None:
        return finish(x, x.dtype), None
    mask = dropout_keep(seed, threshold, x.size).reshape(x.shape)
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as input * mask in PyTorch
        return finish(f64(x) * mask * (1.0 / (1.0 - p)), x.dtype), mask


@register("dropout_backward", "reference")
def _dropout_backward(gy, mask, p: float):
    if mask is None:
        return finish(gy, gy.dtype)
    keep = np.asarray(mask) != 0
    with np.errstate(invalid="ignore"):
        return finish(f64(gy) * keep * (1.0 / (1.0 - p)), gy.dtype)


@register("add", "reference")
def _add(a, b, activation: str | None):
    s = f64(a) + f64(b)
    if activation == "relu":
        s = np.maximum(s, 0.0)
    elif activation == "relu6":
        s = np.minimum(np.maximum(s, 0.0), 6.0)
    return finish(s, a.dtype)
