"""Deterministic sums on the GPU (kernels/cuda/reduce.cu): bias gradients and reduced
losses.  Each sum is split into a fixed number of chunks that depends only on the shape,
summed in double precision in a fixed order, then finished in a second launch."""

from __future__ import annotations

import math
from typing import Any

import cupy
import numpy as np

from fastnn._backends.cupy._runtime import f64, i32, i64, kernel, launch_1d
from fastnn._backends.cupy._sources import COLUMN_LANES, COLUMN_TILE, THREADS

#: At most this many chunks (the grid's y dimension allows 65535).
MAX_CHUNKS = 1024
#: Elements a thread of a partial-sum kernel adds at least before chunks multiply.
PER_THREAD = 8


def chunking(count: int, per_chunk_min: int) -> tuple[int, int]:
    """(chunks, chunk_len) splitting ``count`` items into chunks of >= per_chunk_min."""
    chunks = max(1, min(MAX_CHUNKS, math.ceil(count / per_chunk_min)))
    chunk_len = math.ceil(count / chunks)
    return math.ceil(count / chunk_len), chunk_len


def finish(partial: Any, chunks: int, channels: int, scale: float, out: Any) -> Any:
    """out[c] = scale * sum over chunks of partial[chunk, c] (out of length ``channels``,
    or 0-d for one channel)."""
    kern = kernel("reduce.cu", "sum_finish", out.dtype)
    launch_1d(kern, channels, (partial, i32(chunks), i64(channels), f64(scale), out))
    return out


def channel_sums(x: Any, outer: int, channels: int, inner: int, scale: float = 1.0) -> Any:
    """``scale * x.sum(axis=(0, 2))`` of a C-contiguous cupy array viewed as (outer,
    channels, inner): a (channels,) array of x's dtype."""
    out = cupy.empty((channels,), dtype=x.dtype)
    count = outer * inner
    if channels == 0:
        return out
    if count == 0:
        out.fill(0.0 * scale)  # an empty sum (NaN for the mean of nothing)
        return out
    if inner == 1:  # (rows, channels): coalesced column sums
        chunks, chunk_len = chunking(outer, PER_THREAD * COLUMN_LANES)
        partial = cupy.empty((chunks, channels), dtype=np.float64)
        kern = kernel("reduce.cu", "sum_columns_partial", x.dtype)
        grid = (math.ceil(channels / COLUMN_TILE), chunks)
        args = (x, i64(outer), i32(channels), i64(chunk_len), partial)
        kern(grid, (COLUMN_TILE, COLUMN_LANES), args)
    else:
        chunks, chunk_len = chunking(count, PER_THREAD * THREADS)
        partial = cupy.empty((chunks, channels), dtype=np.float64)
        kern = kernel("reduce.cu", "sum_strided_partial", x.dtype)
        args = (x, i64(outer), i32(channels), i64(inner), i64(chunk_len), partial)
        kern((channels, chunks), (THREADS,), args)
    return finish(partial, chunks, channels, scale, out)
