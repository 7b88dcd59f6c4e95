"""The C allocator under a benchmark: memory a library frees is kept for its next call.

glibc's malloc serves a block of 128 KiB or more (a threshold that rises, up to 32 MiB,
with the blocks freed) by mapping fresh pages, and hands them back to the kernel on
``free``: every call that allocates such a block again takes a page fault per 4 KiB on
first touch.  PyTorch's CPU tensors come from malloc, so a layer timed on its own in a
loop paid for faults, not for its kernel: a 1x1 convolution of 8x64x56x56 -> 256
channels took 28.6 ms in torch 2.13 with glibc's defaults and 6.0 ms with freed memory
kept (AMD EPYC, 2 threads), while fastnn's outputs come from its own cache of pages
(fastnn/_backends/cpu/_outputs.py) and never fault.  Whole training steps hardly move
(ResNet-18 1.46x -> 1.43x): a model's many allocations keep the threshold raised.

So the benchmarks (``fastnn bench`` and its tables) tell glibc, before they time
anything, never to map memory for a block (M_MMAP_MAX = 0: large blocks come from the
heap) and never to give the heap's top back (M_TRIM_THRESHOLD at its maximum): every
library then reuses the pages it has, as a long-running process does under an allocator
tuned for it (jemalloc or tcmalloc, which PyTorch's CPU tuning guide recommends).
``FASTNN_BENCH_ALLOCATOR=default`` keeps the C allocator as configured, to time the
libraries as a plain process runs them.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["ENV", "steady_allocator"]

#: "steady" (the default: freed memory kept) or "default" (the C allocator untouched).
ENV = "FASTNN_BENCH_ALLOCATOR"

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_MAX = 2**31 - 1  # mallopt takes an int

_applied: list[str] = []


def steady_allocator() -> str:
    """Keep freed memory for reuse from now on in this process (see the module's
    docstring), once; returns a one-line description of the allocator in force, for a
    report's header.  Raises ValueError when FASTNN_BENCH_ALLOCATOR names neither
    "steady" nor "default"."""
    if _applied:
        return _applied[0]
    mode = os.environ.get(ENV, "steady").strip().lower() or "steady"
    if mode not in ("steady", "default"):
        raise ValueError(f"{ENV} must be 'steady' or 'default', got {mode!r}")
    if mode == "default":
        note = f"the C allocator as configured ({ENV}=default)"
    elif _mallopt(_M_MMAP_MAX, 0) and _mallopt(_M_TRIM_THRESHOLD, _TRIM_MAX):
        note = (
            "freed memory kept for reuse (glibc: no mmap, no trim; "
            f"{ENV}=default times the C allocator as configured)"
        )
    else:
        note = "the C allocator as configured (no glibc mallopt here)"
    _applied.append(note)
    return note


def _mallopt(param: int, value: int) -> bool:
    """glibc's mallopt(param, value); False where there is no glibc or it refuses."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(param, value) == 1
