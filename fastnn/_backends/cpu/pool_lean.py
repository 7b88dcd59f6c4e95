"""The lean path of the pooling forwards (max_pool1d/2d, avg_pool1d/2d).

A tiny pooling call spends about a microsecond in the checks and the dispatch, on top
of ~2.3 us for the backend and its kernel (max_pool1d of 1 x 1 x 7, AMD EPYC; torch's
whole call ~2-3 us).  A call whose input is a
plain NumPy array of a dtype, and whose window arguments give the geometry (through the
memoised :func:`fastnn._geometry.pool_geometry`, which validates them) of a call the
checked path ran with that dtype and that flag (return_indices / count_include_pad, a
plain bool), runs the backend's pooling at once.  Anything else returns None and takes
the checked path, which checks and reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastnn import _geometry
from fastnn._geometry._memo import memo_key

__all__ = ["LIMIT", "forgets", "make_avg", "make_max", "remember"]

#: (op family "max" or "avg", geometry, dtype, flag) of checked calls.
_SEEN: set[tuple] = set()
#: (memo key of a lean call's arguments, dtype) -> the geometry it was found to have.
_FAST: dict[tuple, Any] = {}
#: Entries kept at most in each (emptied when full).
LIMIT = 4096


def remember(family: str, geom: Any, x: Any, flag: bool) -> None:
    """Note a checked call of the backend's pooling (plain NumPy inputs only)."""
    if type(x) is not np.ndarray:
        return
    if len(_SEEN) >= LIMIT:
        _SEEN.clear()
    _SEEN.add((family, geom, x.dtype, flag))


def forgets() -> None:
    """Forget every call (tests)."""
    _SEEN.clear()
    _FAST.clear()


def _geometry_seen(family: str, op: str, nd: int, x, window: tuple, flag) -> Any:
    """The geometry of a call like one the checked path ran, else None.  Once found, the
    call's arguments (a memo key: plain scalars and tuples of ints, bools told from ints)
    and dtype lead to it straight away."""
    if type(x) is not np.ndarray:
        return None
    raw = memo_key((op, x.shape, *window, flag))
    if raw is not None:
        geom = _FAST.get((raw, x.dtype))
        if geom is not None:
            return geom
    if not (flag is True or flag is False):
        return None
    try:
        geom = _geometry.pool_geometry(op, nd, x.shape, *window)
        seen = (family, geom, x.dtype, flag) in _SEEN
    except (TypeError, ValueError):  # unhashable or invalid: the checked path says why
        return None
    if not seen:
        return None
    if raw is not None:
        if len(_FAST) >= LIMIT:
            _FAST.clear()
        _FAST[(raw, x.dtype)] = geom
    return geom


def make_max(op: str, nd: int, run: Callable[..., Any]) -> Callable[..., Any]:
    """The lean path of ``op`` (max_pool{nd}d): ``run(x, geom, return_indices)``."""

    def lean(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
        window = (kernel_size, stride, padding, dilation, ceil_mode)
        geom = _geometry_seen("max", op, nd, x, window, return_indices)
        return None if geom is None else run(x, geom, return_indices)

    return lean


def make_avg(op: str, nd: int, run: Callable[..., Any]) -> Callable[..., Any]:
    """The lean path of ``op`` (avg_pool{nd}d): ``run(x, geom, count_include_pad)``."""

    def lean(x, kernel_size, stride, padding, ceil_mode, count_include_pad):
        window = (kernel_size, stride, padding, 1, ceil_mode)
        geom = _geometry_seen("avg", op, nd, x, window, count_include_pad)
        return None if geom is None else run(x, geom, count_include_pad)

    return lean
