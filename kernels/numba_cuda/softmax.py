"""Row-wise kernels: softmax / log_softmax and their backward along any axis, and the
cross-entropy of logits (loss per row and gradient).

The input is seen as 3-d ``(outer, length, inner)``: a *row* is the ``length`` elements
``x[o, :, i]`` (the softmax axis), ``outer * inner`` rows in all.  A team of ``team``
threads (kernels/numba_cuda/reduce.py) handles one row: strided partial results per lane,
then a shared-memory fold.  Short rows get a team of one thread, so neighbouring threads
take neighbouring rows; long rows get up to a whole block.

The maximum is NaN-aware: a row holding a NaN (or +inf, or only -inf) gives NaN, as in
PyTorch; every exponent is <= 0 otherwise, so nothing overflows.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.grid import team_row, team_slots
from fastnn.kernels.numba_cuda.pointwise import functions
from fastnn.kernels.numba_cuda.reduce import BLOCK, team_functions


@functools.cache
def softmax_kernels(dtype: np.dtype) -> SimpleNamespace:
    """The row kernels for ``dtype`` (x, g, y, out are 3-d; the flags are bools):

    - ``forward(x, out, team, log)``: softmax, or log_softmax when ``log``.
    - ``backward(g, y, out, team, log)``: ``y * (g - sum(g * y))``, or for log_softmax
      ``g - exp(y) * sum(g)``, from the forward output y.
    """
    F = numba.from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    nan_max = functions(np.dtype(dtype)).nan_max
    t = team_functions(np.dtype(dtype))
    team_sum, team_max = t.team_sum, t.team_max

    @cuda.jit
    def forward(x, out, team, log):
        buf = cuda.shared.array(BLOCK, F)
        tid, lane, row0, row_step = team_slots(team)
        outer, length, inner = x.shape
        rows = outer * inner
        for base in range(row0, rows, row_step):
            row, active = team_row(base, tid, team, rows)
            o = row // inner
            i = row - o * inner
            m = zero
            if active:
                m = x[o, 0, i]
                for j in range(lane, length, team):
                    m = nan_max(m, x[o, j, i])
            m = team_max(buf, tid, lane, team, m)
            s = zero
            if active:
                for j in range(lane, length, team):
                    s += math.exp(x[o, j, i] - m)
            s = team_sum(buf, tid, lane, team, s)
            if active:
                if log:
                    log_s = math.log(s)
                    for j in range(lane, length, team):
                        out[o, j, i] = (x[o, j, i] - m) - log_s
                else:
                    for j in range(lane, length, team):
                        out[o, j, i] = math.exp(x[o, j, i] - m) / s

    @cuda.jit
    def backward(g, y, out, team, log):
        buf = cuda.shared.array(BLOCK, F)
        tid, lane, row0, row_step = team_slots(team)
        outer, length, inner = g.shape
        rows = outer * inner
        for base in range(row0, rows, row_step):
            row, active = team_row(base, tid, team, rows)
            o = row // inner
            i = row - o * inner
            s = zero
            if active:
                for j in range(lane, length, team):
                    s += g[o, j, i] if log else g[o, j, i] * y[o, j, i]
            s = team_sum(buf, tid, lane, team, s)
            if active:
                for j in range(lane, length, team):
                    if log:
                        out[o, j, i] = g[o, j, i] - math.exp(y[o, j, i]) * s
                    else:
                        out[o, j, i] = y[o, j, i] * (g[o, j, i] - s)

    return SimpleNamespace(forward=forward, backward=backward)


@functools.cache
def cross_entropy_kernels(dtype: np.dtype) -> SimpleNamespace:
    """Cross-entropy of logits x (N, C) against class indices t (N,), one team per row:

    - ``loss(x, t, nll, team)``: ``nll[n] = logsumexp(x[n]) - x[n, t[n]]``.
    - ``grad(x, t, out, team, scale, probabilities)``: ``out[n] = scale * (softmax(x[n])
      - onehot(t[n]))``; with ``probabilities`` x already holds softmax outputs and is used
      as it is (the BP1 sensitivity of a softmax output layer).
    """
    F = numba.from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)
    nan_max = functions(np.dtype(dtype)).nan_max
    t_fns = team_functions(np.dtype(dtype))
    team_sum, team_max = t_fns.team_sum, t_fns.team_max

    @cuda.jit(device=True, inline=True)
    def row_max_sum(buf, x, n, active, tid, lane, team):
        """(max, sum of exp(x - max)) of row n, to every thread of its team."""
        m = zero
        if active:
            m = x[n, 0]
            for j in range(lane, x.shape[1], team):
                m = nan_max(m, x[n, j])
        m = team_max(buf, tid, lane, team, m)
        s = zero
        if active:
            for j in range(lane, x.shape[1], team):
                s += math.exp(x[n, j] - m)
        s = team_sum(buf, tid, lane, team, s)
        return m, s

    @cuda.jit
    def loss(x, t, nll, team):
        buf = cuda.shared.array(BLOCK, F)
        tid, lane, row0, row_step = team_slots(team)
        rows = x.shape[0]
        for base in range(row0, rows, row_step):
            n, active = team_row(base, tid, team, rows)
            m, s = row_max_sum(buf, x, n, active, tid, lane, team)
            if active and lane == 0:
                nll[n] = (m + math.log(s)) - x[n, t[n]]

    @cuda.jit
    def grad(x, t, out, team, scale, probabilities):
        buf = cuda.shared.array(BLOCK, F)
        tid, lane, row0, row_step = team_slots(team)
        rows = x.shape[0]
        for base in range(row0, rows, row_step):
            n, active = team_row(base, tid, team, rows)
            m = zero
            s = one
            if not probabilities:  # uniform over the launch: every thread takes it or none
                m, s = row_max_sum(buf, x, n, active, tid, lane, team)
            if active:
                target = t[n]
                for j in range(lane, x.shape[1], team):
                    p = x[n, j] if probabilities else math.exp(x[n, j] - m) / s
                    if j == target:
                        p -= one
                    out[n, j] = p * scale

    return SimpleNamespace(loss=loss, grad=grad)
