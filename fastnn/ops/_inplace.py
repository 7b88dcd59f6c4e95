"""Checks of the arrays an in-place update writes (the optimizer updates of ops/optim.py).

Besides the usual checks (float arrays, one device, one dtype, equal shapes), the arrays
an update writes must be C-contiguous, writeable and must not overlap each other or the
gradient; the gradient is only read and may have any layout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastnn import _args

__all__ = ["check_arrays"]


def _contiguous(x: Any) -> bool:
    flags = getattr(x, "flags", None)
    if flags is not None:
        return bool(flags.c_contiguous)
    is_c = getattr(x, "is_c_contiguous", None)  # numba device arrays
    if is_c is not None:
        return bool(is_c())
    strides = x.__cuda_array_interface__.get("strides")
    return strides is None or tuple(strides) == _c_strides(x.shape, x.dtype.itemsize)


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _writeable(x: Any) -> bool:
    flags = getattr(x, "flags", None)
    return bool(getattr(flags, "writeable", True)) if flags is not None else True


def _span(x: Any) -> tuple[int, int] | None:
    """[first byte, one past the last byte] a GPU array can touch, or None if unknown."""
    interface = getattr(x, "__cuda_array_interface__", None)
    if interface is None or math.prod(x.shape) == 0:
        return None
    low = high = interface["data"][0]
    strides = interface.get("strides") or _c_strides(tuple(x.shape), x.dtype.itemsize)
    for size, stride in zip(x.shape, strides):
        reach = (size - 1) * stride
        if reach < 0:
            low += reach
        else:
            high += reach
    return low, high + x.dtype.itemsize


def _overlap(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return bool(np.may_share_memory(a, b))
    span_a, span_b = _span(a), _span(b)
    if span_a is None or span_b is None:
        return False
    return span_a[0] < span_b[1] and span_b[0] < span_a[1]


def check_arrays(op: str, param: Any, grad: Any, states: dict[str, Any]) -> str:
    """Validate the arrays of an in-place update; returns the array kind.

    ``states`` maps names to state arrays (None entries are absent options).  Everything
    must be a float array of param's dtype, device and shape; param and the states are
    updated in place, so they must be C-contiguous, writeable and pairwise disjoint, and
    none may overlap grad.  grad may have any layout.
    """
    arrays = {"param": param, "grad": grad, **states}
    kind, _ = _args.float_arrays(op, arrays, optional=tuple(states))
    shape = tuple(param.shape)
    present = {name: value for name, value in arrays.items() if value is not None}
    for name, value in present.items():
        if tuple(value.shape) != shape:
            raise ValueError(
                f"{op}: {name} must have the shape of param {shape}, got {tuple(value.shape)}"
            )
    written = [name for name in present if name != "grad"]
    for name in written:
        value = present[name]
        if not _contiguous(value):
            raise ValueError(
                f"{op}: {name} is updated in place and must be C-contiguous (got strides "
                f"{getattr(value, 'strides', None)}); pass np.ascontiguousarray of it and "
                "keep that array"
            )
        if not _writeable(value):
            raise ValueError(f"{op}: {name} is updated in place but is read-only")
    names = list(present)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if _overlap(present[first], present[second]):
                raise ValueError(
                    f"{op}: {first} and {second} share memory; every state array must be "
                    "its own buffer, distinct from param and grad"
                )
    return kind
