"""Adaptive pooling, forward and backward, with PyTorch's windows: output ``o`` of an
axis of size ``In`` pooled to ``Out`` covers ``[floor(o * In / Out), ceil((o + 1) * In /
Out))``; NCHW seen as (planes = N * C, H, W), 1-d as H = 1.

- Forward: one thread per output.  Max scans its window row by row from the first
  element and takes a later one when larger or NaN (first maximum / last NaN wins);
  indices are flat positions ``h * W + w`` in the plane.
- Backward: a GATHER, one thread per input element, over the windows that contain it:
  by symmetry of the rule these are outputs ``[floor(h * Ho / H), ceil((h + 1) * Ho /
  H))``.  Deterministic, no atomics.  Max backward reads the indices of those windows;
  ``check_indices`` tells the host when a caller's index lies outside its own window, and
  the host then runs the scan over every window of the plane (kernels/numba_cuda/pool.py).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.grid import split3
from fastnn.kernels.numba_cuda.pool import argmax_gather

#: Threads per block (fewer for tiny problems).
THREADS = 256


@cuda.jit(device=True, inline=True)
def start(i, size, out):
    """The first element of adaptive window ``i``."""
    return (i * size) // out


@cuda.jit(device=True, inline=True)
def end(i, size, out):
    """One past the last element of adaptive window ``i``."""
    return ((i + 1) * size + out - 1) // out


@cuda.jit(device=True, inline=True)
def span(i, size, out):
    """``(start, end)`` of adaptive window ``i``."""
    return start(i, size, out), end(i, size, out)


@cuda.jit(device=True, inline=True)
def window(f, height, width, ho_size, wo_size):
    """(plane, oh, ow, h0, h1, w0, w1): the coordinates of output ``f`` and its window's
    rows [h0, h1) and columns [w0, w1)."""
    pc, oh, ow = split3(f, ho_size, wo_size)
    h0, h1 = span(oh, height, ho_size)
    w0, w1 = span(ow, width, wo_size)
    return pc, oh, ow, h0, h1, w0, w1


@functools.cache
def adaptive_kernels(dtype: np.dtype) -> SimpleNamespace:
    """The adaptive pooling kernels for ``dtype``; x, gx: (planes, H, W); out, gy, idx:
    (planes, Ho, Wo); all C-contiguous:

    - ``avg_forward(x, out)``, ``avg_backward(gy, gx)``
    - ``max_forward(x, out, idx)`` (idx may be None), ``max_backward(gy, idx, gx)``
    - ``check_indices(idx, bad, width)``: sets ``bad[0] = 1`` when an index is not in its
      window (leaves it otherwise)
    """
    F = numba.from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def avg_forward(x, out):
        planes, height, width = x.shape
        _, ho_size, wo_size = out.shape
        for f in range(cuda.grid(1), planes * ho_size * wo_size, cuda.gridsize(1)):
            pc, oh, ow, h0, h1, w0, w1 = window(f, height, width, ho_size, wo_size)
            s = zero
            for h in range(h0, h1):
                for w in range(w0, w1):
                    s += x[pc, h, w]
            out[pc, oh, ow] = s / F((h1 - h0) * (w1 - w0))

    @cuda.jit
    def avg_backward(gy, gx):
        planes, height, width = gx.shape
        _, ho_size, wo_size = gy.shape
        for f in range(cuda.grid(1), planes * height * width, cuda.gridsize(1)):
            pc, h, w = split3(f, height, width)
            s = zero
            for oh in range(start(h, ho_size, height), end(h, ho_size, height)):
                rows = end(oh, height, ho_size) - start(oh, height, ho_size)
                for ow in range(start(w, wo_size, width), end(w, wo_size, width)):
                    cols = end(ow, width, wo_size) - start(ow, width, wo_size)
                    s += gy[pc, oh, ow] / F(rows * cols)
            gx[pc, h, w] = s

    @cuda.jit
    def max_forward(x, out, idx):
        planes, height, width = x.shape
        _, ho_size, wo_size = out.shape
        for f in range(cuda.grid(1), planes * ho_size * wo_size, cuda.gridsize(1)):
            pc, oh, ow, h0, h1, w0, w1 = window(f, height, width, ho_size, wo_size)
            best = x[pc, h0, w0]
            best_index = h0 * width + w0
            for h in range(h0, h1):
                for w in range(w0, w1):
                    v = x[pc, h, w]
                    if v > best or v != v:
                        best = v
                        best_index = h * width + w
            out[pc, oh, ow] = best
            if idx is not None:
                idx[pc, oh, ow] = best_index

    @cuda.jit
    def max_backward(gy, idx, gx):
        planes, height, width = gx.shape
        _, ho_size, wo_size = gy.shape
        for f in range(cuda.grid(1), planes * height * width, cuda.gridsize(1)):
            pc, h, w = split3(f, height, width)
            oh0, oh1 = span(h, ho_size, height)
            ow0, ow1 = span(w, wo_size, width)
            gx[pc, h, w] = argmax_gather(gy, idx, pc, h * width + w, oh0, oh1, ow0, ow1, zero)

    @cuda.jit
    def check_indices(idx, bad, height, width):
        planes, ho_size, wo_size = idx.shape
        for f in range(cuda.grid(1), planes * ho_size * wo_size, cuda.gridsize(1)):
            pc, oh, ow = split3(f, ho_size, wo_size)
            index = idx[pc, oh, ow]
            h = index // width
            w = index - h * width
            inside = (
                start(oh, height, ho_size) <= h < end(oh, height, ho_size)
                and start(ow, width, wo_size) <= w < end(ow, width, wo_size)
            )  # fmt: skip
            if not inside:
                bad[0] = 1  # every writer writes the same value

    return SimpleNamespace(
        avg_forward=avg_forward,
        avg_backward=avg_backward,
        max_forward=max_forward,
        max_backward=max_backward,
        check_indices=check_indices,
    )
