"""Layout kernels: a strided (any strides, negative too) array into a C-contiguous one, and
the swap of the two leading axes of a 3-d array.

One thread per output element, grid-stride loops, so any grid size covers any array.
Used by the host side (fastnn/_backends/numba_cuda/_device.py, conv.py).
"""

from __future__ import annotations

from numba import cuda

from fastnn.kernels.numba_cuda.grid import split3, split4

#: Threads per block of the layout kernels.
THREADS = 256


@cuda.jit
def copy1(src, dst):
    """dst[i] = src[i]; dst is C-contiguous."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dst.shape[0], step):
        dst[i] = src[i]


@cuda.jit
def copy2(src, dst):
    """dst[i, j] = src[i, j] over the flat index of the C-contiguous dst."""
    rows, cols = dst.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for f in range(start, rows * cols, step):
        i = f // cols
        j = f - i * cols
        dst[i, j] = src[i, j]


@cuda.jit
def copy3(src, dst):
    """dst[i, j, k] = src[i, j, k] over the flat index of the C-contiguous dst."""
    a, b, c = dst.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for f in range(start, a * b * c, step):
        i, j, k = split3(f, b, c)
        dst[i, j, k] = src[i, j, k]


@cuda.jit
def copy4(src, dst):
    """dst[i, j, k, l] = src[i, j, k, l] over the flat index of the C-contiguous dst."""
    a, b, c, d = dst.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for f in range(start, a * b * c * d, step):
        i, j, k, l = split4(f, b, c, d)
        dst[i, j, k, l] = src[i, j, k, l]


#: The copy kernel for each rank.
COPY = {1: copy1, 2: copy2, 3: copy3, 4: copy4}


@cuda.jit
def swap01(src, dst):
    """dst[j, i, k] = src[i, j, k]: (A, B, C) -> (B, A, C), both C-contiguous.

    Reads and writes run along the last axis, so both are coalesced."""
    a, b, c = src.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for f in range(start, a * b * c, step):
        j, i, k = split3(f, a, c)  # f walks dst, shaped (b, a, c)
        dst[j, i, k] = src[i, j, k]
