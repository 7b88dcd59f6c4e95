"""Internal ops the validation layer runs on the data (index and probability ranges)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._backends.numba_cuda._device import device_arrays, empty, launch, to_host
from fastnn._backends.numba_cuda._reduce import flat_reduction
from fastnn._dispatch import register
from fastnn.kernels.numba_cuda.reduce import reduce_kernels


@register("_value_range", "numba-cuda")
@device_arrays
def _value_range(x: Any) -> tuple[Any, Any]:
    """(min, max) of a non-empty array as Python numbers; NaN when it holds a NaN."""
    flat = x.reshape(x.size)
    blocks, threads = flat_reduction(flat.size)
    partial = empty((2, blocks), x.dtype)
    launch(reduce_kernels(x.dtype).value_range, blocks, threads, flat, partial)
    low, high = to_host(partial)
    # NaN-aware on the host too: numpy's min/max propagate NaN
    return np.min(low).item(), np.max(high).item()
