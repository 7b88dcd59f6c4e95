"""Validation of an ``out=`` array: the buffer an elementwise op writes its result into.

``out`` must be an array of the input's kind, shape and dtype, C-contiguous and
writeable; it may be the input itself (in place), but must not overlap the input in any
other way (the kernels read element i of the input and write element i of ``out``; a
shifted or transposed alias would read elements already written).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._kinds import KIND_NAMES, array_kind

__all__ = ["check_out"]


def _interface(a: Any) -> dict | None:
    """The array interface of ``a``: CUDA's, numpy's, or that of the numpy array a Numba
    simulator array wraps (it has no ``__cuda_array_interface__``)."""
    info = getattr(a, "__cuda_array_interface__", None)
    if info is None:
        info = getattr(getattr(a, "_ary", a), "__array_interface__", None)
    return info


def _layout(a: Any) -> tuple[int, tuple[int, ...], bool, int, int] | None:
    """(data pointer, strides in bytes, read-only, lowest byte, one past the highest) of
    ``a``, or None where it has no array interface."""
    info = _interface(a)
    if info is None:
        return None
    ptr, readonly = info["data"]
    shape = tuple(int(n) for n in a.shape)
    itemsize = np.dtype(a.dtype).itemsize
    strides = info.get("strides")
    if strides is None:  # C-contiguous
        strides, step = [], itemsize
        for n in reversed(shape):
            strides.insert(0, step)
            step *= n
    strides = tuple(int(s) for s in strides)
    lo = ptr + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides))
    hi = ptr + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides)) + itemsize
    return ptr, strides, bool(readonly), lo, hi


def _c_contiguous(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> bool:
    step = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n > 1 and s != step:
            return False
        step *= n
    return True


def _check_numpy(op: str, out: np.ndarray, input: np.ndarray) -> None:
    flags = out.flags
    if not flags.writeable:
        raise ValueError(f"{op}: out must be writeable, got a read-only array")
    if not flags.c_contiguous:
        raise ValueError(f"{op}: out must be C-contiguous")
    if out is input or out.size == 0 or not np.may_share_memory(out, input):
        return
    in_place = (
        out.__array_interface__["data"][0] == input.__array_interface__["data"][0]
        and input.flags.c_contiguous
    )
    if not in_place:
        raise ValueError(
            f"{op}: out overlaps input without being the input itself; pass the input "
            f"as out for in place, or a separate array"
        )


def check_out(op: str, out: Any, input: Any, kind: str) -> None:
    """Raise TypeError / ValueError (naming ``out``) unless ``out`` can receive the
    elementwise result of ``op`` on ``input`` (an array of kind ``kind``)."""
    if out is input and type(out) is np.ndarray:  # in place on numpy: the common case
        flags = out.flags
        if flags.c_contiguous and flags.writeable:
            return
    out_kind = array_kind(out)
    if out_kind is None:
        raise TypeError(f"{op}: out must be an array or None, got {type(out).__name__}")
    if out_kind != kind:
        raise ValueError(
            f"{op}: out is a {KIND_NAMES[out_kind]} but input is a {KIND_NAMES[kind]}; "
            f"out must be of the input's kind"
        )
    if np.dtype(out.dtype) != np.dtype(input.dtype):
        raise TypeError(
            f"{op}: out must have the input's dtype {np.dtype(input.dtype)}, got {out.dtype}"
        )
    if tuple(out.shape) != tuple(input.shape):
        raise ValueError(
            f"{op}: out must have the input's shape {tuple(input.shape)}, got {tuple(out.shape)}"
        )
    if kind == "numpy":
        _check_numpy(op, out, input)
        return
    mine, theirs = _layout(out), _layout(input)
    if mine is None or theirs is None:
        raise TypeError(f"{op}: out must expose an array interface to be written into")
    ptr, strides, readonly, lo, hi = mine
    if readonly:
        raise ValueError(f"{op}: out must be writeable, got a read-only array")
    itemsize = np.dtype(out.dtype).itemsize
    if not _c_contiguous(tuple(out.shape), strides, itemsize):
        raise ValueError(f"{op}: out must be C-contiguous")
    if int(np.prod(out.shape)) == 0:
        return
    in_ptr, in_strides, _, in_lo, in_hi = theirs
    if lo < in_hi and in_lo < hi:  # the byte ranges overlap
        same = in_ptr == ptr and _c_contiguous(tuple(input.shape), in_strides, itemsize)
        if not same:
            raise ValueError(
                f"{op}: out overlaps input without being the input itself; pass the input "
                f"as out for in place, or a separate array"
            )
