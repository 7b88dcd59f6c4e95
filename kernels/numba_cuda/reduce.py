"""Reductions in shared memory: team reductions (device functions) and the kernels built on
them: sums over two axes (bias gradients), the two-pass total of a flat array (loss
reductions) and the (min, max) of an array (argument checks).

A *team* is ``team`` consecutive threads of a block (a power of two, up to BLOCK) that
reduce one row together: each lane accumulates a strided part of the row in a register,
then the team folds its lanes in shared memory in log2(team) steps.  Every thread of the
block calls the team functions the same number of times (they hold ``syncthreads``);
threads without a row contribute a neutral value and write nothing.  The order of every
sum is fixed by the launch shape, so results are reproducible, bit for bit.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.grid import team_slots
from fastnn.kernels.numba_cuda.pointwise import functions

#: Most threads of a reduction block (the size of the shared buffers).
BLOCK = 256


@cuda.jit(device=True, inline=True)
def _add(a, b):
    return a + b


def _team_reduction(combine):
    """A team reduction device function folding with the device function ``combine``
    (inlined: the loop is what a hand-written one for that operation compiles to)."""

    @cuda.jit(device=True, inline=True)
    def team_reduce(buf, tid, lane, team, v):
        buf[tid] = v
        cuda.syncthreads()
        step = team // 2
        while step > 0:
            if lane < step:
                buf[tid] = combine(buf[tid], buf[tid + step])
            cuda.syncthreads()
            step //= 2
        result = buf[tid - lane]
        cuda.syncthreads()  # the buffer is free again for the caller's next reduction
        return result

    return team_reduce


@functools.cache
def team_functions(dtype: np.dtype) -> SimpleNamespace:
    """``team_sum(buf, tid, lane, team, v)``, ``team_max`` and ``team_min`` (NaN-aware)
    for ``dtype``: the reduction of ``v`` over the team of thread ``tid`` (``lane`` is its
    index in the team), returned to every thread of the team.  ``buf`` is a shared array
    of at least ``blockDim.x`` elements."""
    f = functions(np.dtype(dtype))
    return SimpleNamespace(
        team_sum=_team_reduction(_add),
        team_max=_team_reduction(f.nan_max),
        team_min=_team_reduction(f.nan_min),
    )


@functools.cache
def reduce_kernels(dtype: np.dtype) -> SimpleNamespace:
    """The reduction kernels for arrays of ``dtype``:

    - ``axis_sums(x, out, team)``: ``out[c] = sum(x[:, c, :])`` for a 3-d x (A, C, B);
      one team per c, teams of ``team`` threads.
    - ``total(partial, out, scale)``: one block; ``out[0] = scale * sum(partial)`` (the
      second pass of a flat sum; the block size must be a power of two).
    - ``value_range(x, partial)``: per block, the NaN-aware min and max of its grid-stride
      share of the flat, non-empty x into ``partial[0, block]`` and ``partial[1, block]``
      (the block size must be a power of two).
    """
    F = numba.from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    t = team_functions(np.dtype(dtype))
    team_sum, team_max, team_min = t.team_sum, t.team_max, t.team_min
    f = functions(np.dtype(dtype))
    nan_max, nan_min = f.nan_max, f.nan_min

    @cuda.jit
    def axis_sums(x, out, team):
        buf = cuda.shared.array(BLOCK, F)
        tid, lane, row0, row_step = team_slots(team)
        outer, channels, inner = x.shape
        length = outer * inner
        for base in range(row0, channels, row_step):
            ch = base + tid // team
            s = zero
            if ch < channels:
                for e in range(lane, length, team):
                    o = e // inner
                    s += x[o, ch, e - o * inner]
            s = team_sum(buf, tid, lane, team, s)
            if ch < channels and lane == 0:
                out[ch] = s

    @cuda.jit
    def total(partial, out, scale):
        buf = cuda.shared.array(BLOCK, F)
        tid = cuda.threadIdx.x
        s = zero
        for i in range(tid, partial.shape[0], cuda.blockDim.x):
            s += partial[i]
        s = team_sum(buf, tid, tid, cuda.blockDim.x, s)
        if tid == 0:
            out[0] = s * scale

    @cuda.jit
    def value_range(x, partial):
        low_buf = cuda.shared.array(BLOCK, F)
        high_buf = cuda.shared.array(BLOCK, F)
        tid = cuda.threadIdx.x
        low = x[0]
        high = x[0]
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            v = x[i]
            low = nan_min(low, v)
            high = nan_max(high, v)
        team = cuda.blockDim.x
        low = team_min(low_buf, tid, tid, team, low)
        high = team_max(high_buf, tid, tid, team, high)
        if tid == 0:
            partial[0, cuda.blockIdx.x] = low
            partial[1, cuda.blockIdx.x] = high

    return SimpleNamespace(axis_sums=axis_sums, total=total, value_range=value_range)
