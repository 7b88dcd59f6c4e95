"""Small helpers shared by the reference modules."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["activate", "derivative", "f64", "finish"]


def f64(x: Any) -> np.ndarray:
    """``x`` as a C-contiguous float64 array (the reference computes everything in float64).

    Contiguous, so that every memory layout of an input gives bit-identical results: numpy
    may sum in a different order for a Fortran or reversed array."""
    return np.asarray(x, dtype=np.float64, order="C")  # (ascontiguousarray makes 0-d 1-d)


def finish(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round the float64 result once to the caller's dtype, C-contiguous and owned."""
    return np.array(y, dtype=dtype, order="C", copy=True)


def activate(name: str | None, u: np.ndarray) -> np.ndarray:
    """f(u) for an activation name (None is the identity)."""
    if name is None:
        return u
    if name == "relu":
        return np.maximum(u, 0.0)
    if name == "sigmoid":
        return stable_sigmoid(u)
    if name == "tanh":
        return np.tanh(u)
    raise ValueError(f"unknown activation {name!r}")  # unreachable after validation


def derivative(name: str | None, u: np.ndarray) -> np.ndarray:
    """f'(u), evaluated at the pre-activation ``u``."""
    if name is None:
        return np.ones_like(u)
    if name == "relu":
        return (u > 0).astype(np.float64)
    if name == "sigmoid":
        s = stable_sigmoid(u)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(u) ** 2
    raise ValueError(f"unknown activation {name!r}")  # unreachable after validation


def stable_sigmoid(u: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-u)) without overflow: exp is only taken of non-positive numbers."""
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
