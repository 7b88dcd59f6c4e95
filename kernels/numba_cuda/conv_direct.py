"""Direct 2-d convolution (1-d is H = 1), NCHW, groups: forward and both gradients,
without any column buffer.

- ``forward``: one thread per output position and block of CB output channels of one
  group; each input value read is used for CB multiply-adds (CB weights, the same for
  every thread of a warp, so the reads are broadcasts).
- ``grad_input``: a gather, one thread per input element, over the windows and output
  channels that read it.  No atomics, deterministic.
- ``grad_weight``: one team of threads (kernels/numba_cuda/reduce.py) per weight
  element, reducing over images and output positions.

Geometry arguments, in order: ``groups, kh, kw, sh, sw, pt, pl, dh, dw`` (ints).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.grid import split3, split4, team_row, team_slots
from fastnn.kernels.numba_cuda.pointwise import functions
from fastnn.kernels.numba_cuda.reduce import BLOCK, team_functions

#: Output channels per thread in ``forward``.
CB = 4
#: Threads per block of ``forward`` and ``grad_input`` (fewer for tiny problems).
THREADS = 256


@functools.cache
def conv_direct_kernels(dtype: np.dtype) -> SimpleNamespace:
    """The direct convolution kernels for ``dtype``; every array is 4-d and
    C-contiguous except ``bias`` (1-d or None):

    - ``forward(x, w, bias, out, groups, kh, kw, sh, sw, pt, pl, dh, dw, act)``: act is
      the fused activation's code (kernels/numba_cuda/pointwise.py), applied to conv +
      bias as each output is written
    - ``grad_input(gy, w, gx, groups, kh, kw, sh, sw, pt, pl, dh, dw)``
    - ``grad_weight(gy, x, gw, team, groups, kh, kw, sh, sw, pt, pl, dh, dw)``
    """
    F = numba.from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    team_sum = team_functions(np.dtype(dtype)).team_sum
    activate = functions(np.dtype(dtype)).activate

    @cuda.jit
    def forward(x, w, bias, out, groups, kh, kw, sh, sw, pt, pl, dh, dw, act):
        acc = cuda.local.array(CB, F)
        _, channels, height, width = x.shape
        batch, out_channels, ho_size, wo_size = out.shape
        cin = channels // groups
        cout = out_channels // groups
        blocks_per_group = (cout + CB - 1) // CB
        channel_blocks = groups * blocks_per_group
        positions = ho_size * wo_size
        total = batch * channel_blocks * positions
        for f in range(cuda.grid(1), total, cuda.gridsize(1)):
            n, cb, p = split3(f, channel_blocks, positions)
            g = cb // blocks_per_group
            co0 = g * cout + (cb - g * blocks_per_group) * CB
            count = min(CB, (g + 1) * cout - co0)
            ho = p // wo_size
            wo = p - ho * wo_size
            for q in range(CB):
                acc[q] = zero
            for c in range(cin):
                ci = g * cin + c
                for i in range(kh):
                    h = ho * sh - pt + i * dh
                    if 0 <= h < height:
                        for j in range(kw):
                            ww = wo * sw - pl + j * dw
                            if 0 <= ww < width:
                                xv = x[n, ci, h, ww]
                                for q in range(CB):
                                    if q < count:
                                        acc[q] += xv * w[co0 + q, c, i, j]
            for q in range(CB):
                if q < count:
                    v = acc[q]
                    if bias is not None:
                        v += bias[co0 + q]
                    out[n, co0 + q, ho, wo] = activate(act, v)

    @cuda.jit
    def grad_input(gy, w, gx, groups, kh, kw, sh, sw, pt, pl, dh, dw):
        batch, channels, height, width = gx.shape
        _, out_channels, ho_size, wo_size = gy.shape
        cin = channels // groups
        cout = out_channels // groups
        total = batch * channels * height * width
        for f in range(cuda.grid(1), total, cuda.gridsize(1)):
            n, c, h, x_w = split4(f, channels, height, width)
            g = c // cin
            cl = c - g * cin
            s = zero
            for i in range(kh):
                hh = h + pt - i * dh  # = ho * sh for the window that reads (h, x_w) at tap i
                if hh >= 0 and hh % sh == 0 and hh // sh < ho_size:
                    ho = hh // sh
                    for j in range(kw):
                        ww = x_w + pl - j * dw
                        if ww >= 0 and ww % sw == 0 and ww // sw < wo_size:
                            wo = ww // sw
                            for co in range(g * cout, (g + 1) * cout):
                                s += gy[n, co, ho, wo] * w[co, cl, i, j]
            gx[n, c, h, x_w] = s

    @cuda.jit
    def grad_weight(gy, x, gw, team, groups, kh, kw, sh, sw, pt, pl, dh, dw):
        buf = cuda.shared.array(BLOCK, F)
        tid, lane, row0, row_step = team_slots(team)
        out_channels, cin, _, _ = gw.shape
        batch, _, height, width = x.shape
        _, _, ho_size, wo_size = gy.shape
        cout = out_channels // groups
        rows = out_channels * cin * kh * kw
        length = batch * ho_size * wo_size
        for base in range(row0, rows, row_step):
            r, active = team_row(base, tid, team, rows)
            co, cl, i, j = split4(r, cin, kh, kw)
            ci = (co // cout) * cin + cl
            s = zero
            if active:
                for e in range(lane, length, team):
                    n, ho, wo = split3(e, ho_size, wo_size)
                    h = ho * sh - pt + i * dh
                    ww = wo * sw - pl + j * dw
                    if 0 <= h < height and 0 <= ww < width:
                        s += gy[n, co, ho, wo] * x[n, ci, h, ww]
            s = team_sum(buf, tid, lane, team, s)
            if active and lane == 0:
                gw[co, cl, i, j] = s

    return SimpleNamespace(forward=forward, grad_input=grad_input, grad_weight=grad_weight)
