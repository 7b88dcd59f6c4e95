"""Dropout (forward, backward) and the fused residual add ``act(a + b)``: one thread per
element of flat C-contiguous arrays, grid-stride loops.

Dropout's random word for element ``i`` is ``splitmix64(seed + (i + 1) * golden)`` in
wrapping uint64 arithmetic, the same word as fastnn's C, CUDA C and reference kernels
(kernels/cpu/dropout_add.h); the element is kept when its top 32 bits are ``>=
threshold``.  (Under the simulator the uint64 products are numpy scalar products, which
wrap correctly but warn about the overflow.)
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

#: Threads per block of the elementwise kernels (fewer for tiny arrays).
THREADS = 256

#: Activation codes of ``add``.
ADD_CODES = {None: 0, "relu": 1, "relu6": 2}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31, _S32 = np.uint64(27), np.uint64(30), np.uint64(31), np.uint64(32)


@cuda.jit(device=True, inline=True)
def splitmix64(z):
    """SplitMix64's output mix of the uint64 ``z``."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@functools.cache
def dropout_add_kernels(dtype: np.dtype) -> SimpleNamespace:
    """``dropout(x, y, mask, seed, threshold, scale)``: mask = keep, y = x * keep * scale;
    ``dropout_backward(g, mask, out, scale)``: out = g * [mask != 0] * scale;
    ``add(code, a, b, y)``: y = act(a + b).  seed: uint64, threshold: uint64 < 2**32,
    scale: of ``dtype``."""
    F = numba.from_dtype(np.dtype(dtype))
    zero, six = np.dtype(dtype).type(0), np.dtype(dtype).type(6)

    @cuda.jit
    def dropout(x, y, mask, seed, threshold, scale):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            word = splitmix64(seed + np.uint64(i + 1) * _GOLDEN)
            keep = 1 if (word >> _S32) >= threshold else 0
            mask[i] = keep
            y[i] = x[i] * F(keep) * scale

    @cuda.jit
    def dropout_backward(g, mask, out, scale):
        for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
            out[i] = g[i] * F(1 if mask[i] != 0 else 0) * scale

    @cuda.jit
    def add(code, a, b, y):
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            s = a[i] + b[i]
            if code != 0 and s < zero:
                s = zero
            if code == 2 and s > six:  # NaN fails both compares and stays NaN
                s = six
            y[i] = s

    return SimpleNamespace(dropout=dropout, dropout_backward=dropout_backward, add=add)
