"""im2col and col2im for 2-d convolution (1-d is the case H = 1), NCHW.

Columns hold, for each image n, a matrix of ``C * kh * kw`` rows (ordered c, i, j: the
weight's own layout, so group g owns a contiguous block of rows) by ``Ho * Wo`` columns:

    col[n, (c * kh + i) * kw + j, ho * Wo + wo] = x[n, c, ho * sh - pt + i * dh,
                                                          wo * sw - pl + j * dw]

(0 where that falls in the padding).  With ``rows_first`` the same values are stored as
``col[row, n, p]`` instead, which makes the weight gradient one GEMM over all images.

im2col runs one thread per (image, channel, output position), writing its kh * kw
column entries.  col2im is the adjoint, written as a GATHER: one thread per input element
sums the column entries of every window that touched it.  No atomics; every sum in a
fixed order.

Geometry arguments, in order: ``kh, kw, sh, sw, pt, pl, dh, dw`` (all ints).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.grid import split3, split4

#: Threads per block (fewer for tiny problems).
THREADS = 256


@functools.cache
def im2col_kernels(dtype: np.dtype) -> SimpleNamespace:
    """``im2col(x, col, n0, rows_first, kh, kw, sh, sw, pt, pl, dh, dw, wo_size)``:
    columns of images ``n0 .. n0 + nb`` of the 4-d x (nb is the col's image count).

    ``col2im(col, gx, kh, kw, sh, sw, pt, pl, dh, dw, ho_size, wo_size)``: the 4-d gx
    (every element written) from columns laid out as ``col[n, row, p]``."""
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def im2col(x, col, n0, rows_first, kh, kw, sh, sw, pt, pl, dh, dw, wo_size):
        _, channels, height, width = x.shape
        nb = col.shape[1] if rows_first else col.shape[0]
        positions = col.shape[2]
        total = nb * channels * positions
        for f in range(cuda.grid(1), total, cuda.gridsize(1)):
            n, c, p = split3(f, channels, positions)  # neighbouring threads: positions
            ho = p // wo_size
            wo = p - ho * wo_size
            for i in range(kh):
                h = ho * sh - pt + i * dh
                for j in range(kw):
                    w = wo * sw - pl + j * dw
                    v = zero
                    if 0 <= h < height and 0 <= w < width:
                        v = x[n0 + n, c, h, w]
                    row = (c * kh + i) * kw + j
                    if rows_first:
                        col[row, n, p] = v
                    else:
                        col[n, row, p] = v

    @cuda.jit
    def col2im(col, gx, kh, kw, sh, sw, pt, pl, dh, dw, ho_size, wo_size):
        nb, channels, height, width = gx.shape
        total = nb * channels * height * width
        for f in range(cuda.grid(1), total, cuda.gridsize(1)):
            n, c, h, w = split4(f, channels, height, width)
            s = zero
            for i in range(kh):
                hh = h + pt - i * dh  # = ho * sh for the window that reads (h, w) at tap i
                if hh >= 0 and hh % sh == 0 and hh // sh < ho_size:
                    ho = hh // sh
                    for j in range(kw):
                        ww = w + pl - j * dw
                        if ww >= 0 and ww % sw == 0 and ww // sw < wo_size:
                            s += col[n, (c * kh + i) * kw + j, ho * wo_size + ww // sw]
            gx[n, c, h, w] = s

    return SimpleNamespace(im2col=im2col, col2im=col2im)
