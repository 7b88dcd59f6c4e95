"""Pointwise losses (MSE, binary cross-entropy): per-element terms, the first pass of their
sum, and their gradients; and the BP1 output sensitivity.  Flat, C-contiguous arrays,
grid-stride loops.  The second pass of a sum is ``total`` in kernels/numba_cuda/reduce.py.

Formulas as in PyTorch: BCE clamps each log at -100 and the denominator of its gradient at
``eps`` (the float32 1e-12, passed in by the host).
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.pointwise import SIGMOID, functions
from fastnn.kernels.numba_cuda.reduce import BLOCK, team_functions

#: Loss codes: squared error, binary cross-entropy, and the values themselves (to sum
#: per-row losses computed elsewhere).
MSE, BCE, VALUE = 0, 1, 2


@functools.cache
def loss_kernels(dtype: np.dtype) -> SimpleNamespace:
    """The loss kernels for ``dtype`` (``loss`` is MSE, BCE or VALUE):

    - ``terms(loss, x, t, out)``: the per-element loss (reduction "none").
    - ``partial_sums(loss, x, t, partial)``: per block, the sum of the terms of its
      grid-stride share into ``partial[block]`` (power-of-two block size).
    - ``grad(loss, x, t, out, scale, eps)``: d loss / d x, times ``scale``.
    - ``output_delta(loss, act, y, t, u, out, scale, eps)``: BP1, ``f'(u) * dJ/dy``;
      for BCE after a sigmoid exactly ``scale * (y - t)``.
    """
    F = numba.from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)
    two = np.dtype(dtype).type(2)
    log_floor = np.dtype(dtype).type(-100)
    derivative = functions(np.dtype(dtype)).derivative
    team_sum = team_functions(np.dtype(dtype)).team_sum

    @cuda.jit(device=True, inline=True)
    def term(loss, x, t):
        if loss == MSE:
            d = x - t
            return d * d
        if loss == BCE:
            log_p = max(math.log(x), log_floor) if x > zero else log_floor
            log_q = max(math.log1p(-x), log_floor) if x < one else log_floor
            return -(t * log_p + (one - t) * log_q)
        return x

    @cuda.jit(device=True, inline=True)
    def dloss(loss, x, t, eps):
        if loss == MSE:
            return two * (x - t)
        return (x - t) / max(x * (one - x), eps)

    @cuda.jit
    def terms(loss, x, t, out):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            out[i] = term(loss, x[i], t[i])

    @cuda.jit
    def partial_sums(loss, x, t, partial):
        buf = cuda.shared.array(BLOCK, F)
        tid = cuda.threadIdx.x
        s = zero
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            s += term(loss, x[i], t[i])
        s = team_sum(buf, tid, tid, cuda.blockDim.x, s)
        if tid == 0:
            partial[cuda.blockIdx.x] = s

    @cuda.jit
    def grad(loss, x, t, out, scale, eps):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            out[i] = dloss(loss, x[i], t[i], eps) * scale

    @cuda.jit
    def output_delta(loss, act, y, t, u, out, scale, eps):
        for i in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
            if loss == BCE and act == SIGMOID:  # f'(u) cancels the denominator
                d = y[i] - t[i]
            elif loss == MSE:
                d = -two * derivative(act, u[i]) * (t[i] - y[i])  # the notes' BP1
            else:
                d = derivative(act, u[i]) * dloss(loss, y[i], t[i], eps)
            out[i] = d * scale

    return SimpleNamespace(terms=terms, partial_sums=partial_sums, grad=grad,
                           output_delta=output_delta)  # fmt: skip
