"""Internal ops the validation layer runs on the data (index and probability ranges)."""

from __future__ import annotations

from typing import Any

from fastnn._backends.cupy._runtime import cupy_arrays
from fastnn._dispatch import register


@register("_value_range", "cupy")
@cupy_arrays
def value_range(x: Any) -> tuple:
    """(min, max) of a non-empty array as Python numbers; NaN when it holds a NaN (CuPy's
    min and max propagate NaN, as NumPy's do)."""
    return x.min().item(), x.max().item()
