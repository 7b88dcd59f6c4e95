"""Argument checks that read the data: index ranges (class targets, pooling indices) and
probabilities.  They run the backend's ``_value_range`` op, so GPU arrays are checked on the
GPU; ops call them after the cheap shape checks, before dispatching the op itself."""

from __future__ import annotations

import math
from typing import Any

from fastnn._dispatch import resolve


def value_range(x: Any, kind: str, backend: str | None) -> tuple[float, float] | None:
    """``(min, max)`` of ``x`` (NaN if it holds a NaN), or None when ``x`` is empty.  Runs
    the backend's ``_value_range`` op, so GPU arrays are checked on the GPU."""
    if _size(x) == 0:
        return None
    return resolve("_value_range", kind, backend)(x)


def check_index_range(
    op: str, name: str, x: Any, kind: str, low: int, high: int, backend: str | None
) -> None:
    """Raise ValueError unless every entry of the integer array ``x`` is in [low, high)."""
    bounds = value_range(x, kind, backend)
    if bounds is not None and not (bounds[0] >= low and bounds[1] < high):
        raise ValueError(
            f"{op}: every entry of {name} must be in [{low}, {high}), got values in "
            f"[{bounds[0]}, {bounds[1]}]"
        )


def check_probabilities(op: str, name: str, x: Any, kind: str, backend: str | None) -> None:
    """Raise ValueError unless every entry of ``x`` is in [0, 1] (NaN is not)."""
    bounds = value_range(x, kind, backend)
    if bounds is not None and not (bounds[0] >= 0.0 and bounds[1] <= 1.0):
        raise ValueError(
            f"{op}: every entry of {name} must be in [0, 1], got values in "
            f"[{bounds[0]}, {bounds[1]}]"
        )


def _size(x: Any) -> int:
    return math.prod(x.shape)
