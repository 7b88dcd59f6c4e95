"""Internal ops the validation layer runs on the data (index and probability ranges)."""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register


@register("_value_range", "reference")
def _value_range(x):
    """(min, max) of a non-empty array as Python numbers; NaN when it holds a NaN."""
    a = np.asarray(x)
    return a.min().item(), a.max().item()
