"""Checks of layer constructor arguments, so that a wrong layer fails when it is built
(with the layer's name in the message) rather than at its first forward."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from fastnn import validate

__all__ = [
    "check_activation",
    "check_features",
    "check_float_dtype",
    "check_probability",
    "int_tuple",
]


def check_features(layer: str, name: str, value: object) -> int:
    """A positive int (a number of features or channels)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{layer}: {name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{layer}: {name} must be >= 1, got {value}")
    return int(value)


def check_float_dtype(layer: str, dtype: Any) -> np.dtype:
    """float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{layer}: dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in validate.FLOAT_DTYPES:
        raise TypeError(f"{layer}: dtype must be float32 or float64, got {dt}")
    return dt


def check_activation(layer: str, activation: object) -> str | None:
    """None, "relu", "sigmoid" or "tanh"."""
    return validate.activation_name(layer, activation)


def check_probability(layer: str, name: str, value: object) -> float:
    """A real number in [0, 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{layer}: {name} must be a real number, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{layer}: {name} must be in [0, 1], got {value}")
    return float(value)


def int_tuple(layer: str, name: str, value: object, nd: int, minimum: int) -> tuple[int, ...]:
    """An int or a tuple of ``nd`` ints, each >= ``minimum``."""
    return validate.int_tuple(layer, name, value, nd, minimum)
