"""Batch normalisation kernels on (N, C, P) views of C-contiguous arrays.

- ``stats(x, mean, var, team)``: one team per channel sums ``x - K`` and ``(x - K)^2``
  (K = x[0, c, 0]) in float64 and writes the mean and biased variance (float64): shifted
  sums, so no cancellation for data far from zero.
- ``finish(mean64, var64, eps, factor, unbias, update, rm, rv, mean, invstd)``: one thread
  per channel: the statistics in the input's dtype, and the running statistics moved in
  place when ``update``.
- ``running(rm, rv, eps, mean, invstd)``: eval mode's statistics from the running ones.
- ``affine(x, mean, invstd, w, b, has_w, has_b, act, inner, out)``: the normalising
  pass over the flat x (``inner`` = P).
- ``grad_sums(g, x, y, act, mean, sums)``: one team per channel: ``sums[0, c] = sum g'``,
  ``sums[1, c] = sum g' (x - mean)`` (float64), g' masked by the activation's gradient.
- ``grad_input(g, x, y, act, centred, count, mean, invstd, w, has_w, sums, inner, out)``:
  the backward's elementwise pass over flat arrays.
- ``param_grads(sums, invstd, want_w, want_b, empty, gw, gb)``: grad_weight and
  grad_bias (0 for an empty batch).

Activation codes: 0 none, 1 relu, 2 relu6; forward keeps NaN, backward masks as PyTorch
(relu: 0 where y <= 0, relu6: 0 where y <= 0 or y >= 6).
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.grid import team_slots
from fastnn.kernels.numba_cuda.reduce import BLOCK, team_functions

#: Activation names -> codes.
CODES = {None: 0, "relu": 1, "relu6": 2}

#: Threads per block of the elementwise kernels.
THREADS = 256


@functools.cache
def batch_norm_kernels(dtype: np.dtype) -> SimpleNamespace:
    """The kernels above for arrays of ``dtype``."""
    T = np.dtype(dtype).type
    zero, six = T(0), T(6)
    team_sum = team_functions(np.dtype(np.float64)).team_sum

    @cuda.jit(device=True, inline=True)
    def activate(code, v):
        if code == 1:
            return zero if v < zero else v
        if code == 2:
            if v < zero:
                return zero
            return six if v > six else v
        return v

    @cuda.jit(device=True, inline=True)
    def mask(code, g, y):
        if code == 1:
            return zero if y <= zero else g
        if code == 2:
            return zero if (y <= zero or y >= six) else g
        return g

    @cuda.jit
    def stats(x, mean, var, team):
        buf = cuda.shared.array(BLOCK, np.float64)
        tid, lane, row0, row_step = team_slots(team)
        outer, channels, inner = x.shape
        length = outer * inner
        for base in range(row0, channels, row_step):
            ch = base + tid // team
            s1 = 0.0
            s2 = 0.0
            k = 0.0
            if ch < channels:
                k = np.float64(x[0, ch, 0])
                for e in range(lane, length, team):
                    o = e // inner
                    d = np.float64(x[o, ch, e - o * inner]) - k
                    s1 += d
                    s2 += d * d
            s1 = team_sum(buf, tid, lane, team, s1)
            s2 = team_sum(buf, tid, lane, team, s2)
            if ch < channels and lane == 0:
                d = s1 / length
                v = s2 / length - d * d
                mean[ch] = k + d
                var[ch] = v if v > 0.0 else (0.0 if v == v else v)

    @cuda.jit
    def finish(mean64, var64, eps, factor, unbias, update, rm, rv, mean, invstd):
        for c in range(cuda.grid(1), mean64.shape[0], cuda.gridsize(1)):
            m = mean64[c]
            v = var64[c]
            mean[c] = T(m)
            invstd[c] = T(1.0 / math.sqrt(v + eps))
            if update:
                rm[c] = T((1.0 - factor) * np.float64(rm[c]) + factor * m)
                rv[c] = T((1.0 - factor) * np.float64(rv[c]) + factor * v * unbias)

    @cuda.jit
    def running(rm, rv, eps, mean, invstd):
        for c in range(cuda.grid(1), rm.shape[0], cuda.gridsize(1)):
            mean[c] = rm[c]
            invstd[c] = T(1.0 / math.sqrt(np.float64(rv[c]) + eps))

    @cuda.jit
    def affine(x, mean, invstd, w, b, has_w, has_b, act, inner, out):
        n = x.shape[0]
        channels = mean.shape[0]
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            c = (i // inner) % channels
            scale = invstd[c] * w[c] if has_w else invstd[c]
            shift = b[c] if has_b else zero
            out[i] = activate(act, (x[i] - mean[c]) * scale + shift)

    @cuda.jit
    def grad_sums(g, x, y, act, mean, sums, team):
        buf = cuda.shared.array(BLOCK, np.float64)
        tid, lane, row0, row_step = team_slots(team)
        outer, channels, inner = g.shape
        length = outer * inner
        for base in range(row0, channels, row_step):
            ch = base + tid // team
            s1 = 0.0
            s2 = 0.0
            if ch < channels:
                m = np.float64(mean[ch])
                for e in range(lane, length, team):
                    o = e // inner
                    p = e - o * inner
                    gv = np.float64(mask(act, g[o, ch, p], y[o, ch, p]))
                    s1 += gv
                    s2 += gv * (np.float64(x[o, ch, p]) - m)
            s1 = team_sum(buf, tid, lane, team, s1)
            s2 = team_sum(buf, tid, lane, team, s2)
            if ch < channels and lane == 0:
                sums[0, ch] = s1
                sums[1, ch] = s2

    @cuda.jit
    def grad_input(g, x, y, act, centred, count, mean, invstd, w, has_w, sums, inner, out):
        n = g.shape[0]
        channels = mean.shape[0]
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            c = (i // inner) % channels
            istd = invstd[c]
            k1 = istd * w[c] if has_w else istd
            gv = mask(act, g[i], y[i])
            if centred:  # the per-channel means in double, the element's arithmetic in T
                mean_g = T(sums[0, c] / count)
                mean_gx = T(sums[1, c] * np.float64(istd) / count)
                xhat = (x[i] - mean[c]) * istd
                out[i] = k1 * (gv - mean_g - xhat * mean_gx)
            else:
                out[i] = k1 * gv

    @cuda.jit
    def param_grads(sums, invstd, want_w, want_b, empty, gw, gb):
        for c in range(cuda.grid(1), invstd.shape[0], cuda.gridsize(1)):
            if want_w:
                gw[c] = zero if empty else T(sums[1, c] * np.float64(invstd[c]))
            if want_b:
                gb[c] = T(sums[0, c])

    return SimpleNamespace(
        param_grads=param_grads,
        stats=stats,
        finish=finish,
        running=running,
        affine=affine,
        grad_sums=grad_sums,
        grad_input=grad_input,
    )
