"""Host side of the reduction kernels (kernels/numba_cuda/reduce.py): launch shapes, the
bias-gradient sums and flat totals (the ``_value_range`` op is in checks.py)."""

from __future__ import annotations

from typing import Any

from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import empty, launch
from fastnn.kernels.numba_cuda.reduce import BLOCK, reduce_kernels

__all__ = ["axis_sums", "flat_reduction", "total"]

#: Most partial results of a two-pass flat reduction (the second pass is one block).
MAX_PARTIALS = BLOCK


def flat_reduction(n: int) -> tuple[int, int]:
    """(blocks, threads) of the first pass of a flat reduction of ``n`` items: a power of
    two threads (fewer for tiny n), at most MAX_PARTIALS blocks; at least one block, so
    that a reduction over nothing still writes its (neutral) partial."""
    threads = min(BLOCK, _launch.next_pow2(max(n, 1)))
    blocks = max(1, min(MAX_PARTIALS, _launch.ceil_div(n, threads)))
    return blocks, threads


def axis_sums(x: Any, out: Any | None = None) -> Any:
    """``sum(x[:, c, :])`` for each c of the 3-d ``x`` (A, C, B), as a new (C,) array (or
    into ``out``).  One team of threads per c; a thread per c when B == 1 and there are
    many c (the reads of neighbouring threads are then neighbours in memory)."""
    outer, channels, inner = x.shape
    if out is None:
        out = empty(channels, x.dtype)
    if inner == 1 and channels >= BLOCK:
        blocks, threads, team = _launch.teams(channels, 1, BLOCK)
    else:
        blocks, threads, team = _launch.teams(channels, outer * inner, BLOCK)
    launch(reduce_kernels(x.dtype).axis_sums, blocks, threads, x, out, team)
    return out


def total(partial: Any, out: Any, scale: float) -> Any:
    """``out[0] = scale * sum(partial)`` in one block (the second pass of a flat sum)."""
    threads = min(BLOCK, _launch.next_pow2(partial.shape[0]))
    scalar = out.dtype.type
    launch(reduce_kernels(out.dtype).total, 1, threads, partial, out, scalar(scale))
    return out
