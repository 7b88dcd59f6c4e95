"""Allocation of the CPU backend's large outputs through fastnn's output cache
(kernels/cpu/output_cache.h): a freed output's memory is kept, its pages already mapped,
for the next output of the same size.

A fresh multi-megabyte array is a fresh mapping whose every page faults on first touch:
on a virtual machine a 25 MB convolution output costs 10-25 ms of faults on top of a
10 ms convolution, each time another library has made glibc hand the memory back.  In a
training loop the same sizes come back every step, so after the first step fastnn's
outputs stop faulting.  Arrays under 1 MiB come from NumPy as usual.

``FASTNN_OUTPUT_CACHE_MB`` (default 512) caps the memory held free; 0 turns the cache off.
:func:`fastnn.empty_cache` hands everything held back to the system.
"""

from __future__ import annotations

import os

import numpy as np

from fastnn.kernels.cpu import output_cache as _k

__all__ = ["empty", "empty_cache", "empty_shaped", "readable_after", "zeros"]


def _limit_from_env() -> int:
    raw = os.environ.get("FASTNN_OUTPUT_CACHE_MB", "512").strip()
    try:
        return max(0, int(float(raw) * 2**20))
    except ValueError:
        return 512 * 2**20


_k.set_limit(_limit_from_env())


def empty(size: int, dtype) -> np.ndarray:
    """A new flat array of ``size`` elements (memory from the cache when large)."""
    return _k.empty(size, dtype)


#: A new C-contiguous array of ``shape`` (a tuple) and ``dtype``, its memory from the cache
#: when large (in Cython: small calls pay only the allocation).
empty_shaped = _k.empty_shaped


#: Bytes readable after the last element of a C-contiguous array (never to be written):
#: a tail the cache keeps after each of its blocks, and the rest of the block, when the
#: array's memory comes from the cache, else 0.
readable_after = _k.readable_after


def zeros(size: int, dtype) -> np.ndarray:
    """A new flat zero-filled array of ``size`` elements (memory from the cache when large)."""
    return _k.zeros(size, dtype)


def empty_cache() -> None:
    """Return the memory of freed outputs, held for reuse, to the system."""
    _k.clear()
