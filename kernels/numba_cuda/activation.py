"""Elementwise activations and their backward: one thread per element of flat,
C-contiguous arrays, grid-stride loops.  The activation is a runtime code
(kernels/numba_cuda/pointwise.py), so one compiled kernel per dtype serves all three."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
from fastnn.kernels.numba_cuda.pointwise import functions
from numba import cuda

#: Threads per block of the elementwise kernels (fewer for tiny arrays).
THREADS = 256


@functools.cache
def activation_kernels(dtype: np.dtype) -> SimpleNamespace:
    """``forward(code, x, out)``: out = f(x); ``backward(code, g, y, out)``: out = g * f'
    computed from the forward output y."""
    f = functions(np.dtype(dtype))
    activate, input_grad = f.activate, f.input_grad

    @cuda.jit
    def forward(code, x, out):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            out[i] = activate(code, x[i])

    @cuda.jit
    def backward(code, g, y, out):
        for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
            out[i] = input_grad(code, g[i], y[i])

    return SimpleNamespace(forward=forward, backward=backward)
