"""The value range the argument checks take of class targets, pooling indices and
probabilities (``_value_range``): one parallel pass for the common dtypes."""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register
from fastnn._threads import team_size
from fastnn.kernels.cpu import dense as _k


@register("_value_range", "cpu")
def _value_range(x) -> tuple:
    """(min, max) of a non-empty array as Python numbers; NaN when it holds a NaN."""
    a = np.asarray(x)
    if a.dtype in _k.RANGE_DTYPES and a.flags.c_contiguous and a.size:
        return _k.value_range(a, team_size())
    return a.min().item(), a.max().item()
