"""Helpers for the simulator tests: device copies in several memory layouts, and the check
that a result is a fresh device array equal to the reference's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numba import cuda

from fastnn._dispatch import array_kind
from tests.utils import assert_nested_close


def dev(a: np.ndarray) -> Any:
    """A C-contiguous Numba device copy of ``a``."""
    return cuda.to_device(np.array(a, order="C", copy=True))  # keeps 0-d arrays 0-d


def device_layouts(a: np.ndarray) -> Iterator[tuple[str, Any]]:
    """The values of ``a`` as device arrays in several layouts: C-contiguous, a strided
    view into a larger device buffer, and a negative-stride (reversed) view."""
    yield "contiguous", dev(a)
    if a.ndim == 0:
        return
    big = np.zeros(tuple(2 * s + 1 for s in a.shape), dtype=a.dtype)
    index = tuple(slice(1, 1 + 2 * s, 2) for s in a.shape)
    big[index] = a
    yield "strided", cuda.to_device(big)[index]
    flipped = cuda.to_device(np.ascontiguousarray(a[..., ::-1]))
    yield "negative-stride", flipped[..., ::-1]


def host(d: Any) -> np.ndarray:
    return d.copy_to_host()


def check(got: Any, want: Any, what: str = "", rtol: float | None = None) -> None:
    """``got`` (a device array, or a tuple/list of them, None allowed) is a C-contiguous
    Numba device array of the reference result's shape and dtype, with close values."""
    assert_nested_close(got, want, what, _numba_values, rtol)


def _numba_values(got: Any, want: np.ndarray, what: str) -> np.ndarray:
    assert array_kind(got) == "numba", f"{what}: got a {type(got).__name__}"
    assert tuple(got.shape) == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.is_c_contiguous(), f"{what}: not C-contiguous"
    return host(got)
