"""Batched GEMM with shared-memory tiles, 2-D register tiling and a fused epilogue.

``out[z] = epilogue(alpha * op(a[z % A]) @ op(b[z % B]))`` for every batch index z, where
``op(x)`` is x or its transpose (flags ``trans_a`` / ``trans_b``: the arrays are read in
their stored layout, never copied) and A, B are the batch sizes of ``a`` and ``b`` (a
batch of 1 is shared by every z: one weight for a batch of images).

The block of ``(BN / TN, BM / TM)`` threads computes a BM x BN tile of the output; each
thread owns a TM x TN block of it, in registers, with rows ``ty + i * (BM / TM)`` and
columns ``tx + j * (BN / TN)`` (strided, so that the threads of a warp read consecutive
shared-memory words and write consecutive output columns).  The K axis is walked in
slices of BK: the block loads an A slice (BM x BK) and a B slice (BK x BN) into shared
memory -- each thread several elements, assigned so that neighbouring threads read
neighbouring addresses of the array as stored -- then every thread does BK rank-1
updates of its TM x TN accumulator from registers.  Two ``syncthreads`` per slice.

Epilogue, in this order, per output element (m, n) of batch z:

    v = alpha * acc
    v += beta * c[z % C, m or 0, n or 0]      # c given: broadcast over unit axes
    v += bias[z % D, n]  (bias_axis 1)  or  bias[z % D, m]  (bias_axis 0)
    v *= f'(u[z, m, n])                      # u given: the derivative of deriv_act at u
    v = f(v)                                 # act: identity, relu, sigmoid, tanh

``c``, ``bias`` and ``u`` may be None: the kernel is compiled without that step.  Every
load and store is bounds-checked, so any M, N, K (K = 0 too) is handled.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numba
import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.pointwise import functions


class Tile(NamedTuple):
    """A GEMM blocking: the block's output tile (bm x bn), its K slice (bk) and each
    thread's register block (tm x tn).  The block has (bm / tm) * (bn / tn) threads."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int

    @property
    def threads(self) -> tuple[int, int]:
        """(x, y) block shape: x along N, y along M."""
        return self.bn // self.tn, self.bm // self.tm


#: For large problems: 256 threads, 8 x 8 outputs each (64 accumulators in registers).
LARGE = Tile(bm=128, bn=128, bk=8, tm=8, tn=8)
#: For large problems with at most 64 rows (a convolution's output channels per group):
#: 256 threads, 4 x 8 outputs each.
WIDE = Tile(bm=64, bn=128, bk=8, tm=4, tn=8)
#: For problems too small to fill the GPU with LARGE tiles: 64 threads, 4 x 4 each.
SMALL = Tile(bm=32, bn=32, bk=16, tm=4, tn=4)


@functools.cache
def gemm_kernel(dtype: np.dtype, tile: Tile):
    """The GEMM kernel for arrays of ``dtype`` blocked by ``tile`` (compiled at first
    launch).  Arguments: ``(a, b, out, trans_a, trans_b, alpha, beta, c, bias, bias_axis,
    act, u, deriv_act)``; a, b, out, c, u are 3-d, bias 2-d, alpha/beta of ``dtype``."""
    f = functions(np.dtype(dtype))
    activate, derivative, zero = f.activate, f.derivative, f.zero
    F = numba.from_dtype(np.dtype(dtype))
    BM, BN, BK, TM, TN = tile
    TX, TY = tile.threads
    THREADS = TX * TY
    # one column of padding: loads that run along K hit different banks
    A_SHAPE = (BK, BM + 1)
    B_SHAPE = (BK, BN + 1)

    @cuda.jit(device=True, inline=True)
    def load_tile(src, z, k_major, r0, rows, BR, k0, K, tile, tid):
        """tile[kk, rr] = op(src)[r0 + rr, k0 + kk] for a BR x BK block of the (rows, K)
        operand, zero outside it; src is stored (K, rows) when ``k_major``, else (rows,
        K).  The block's threads read neighbouring elements of src's last axis."""
        for l in range(tid, BR * BK, THREADS):
            if k_major:
                rr = l % BR
                kk = l // BR
            else:
                kk = l % BK
                rr = l // BK
            r = r0 + rr
            k = k0 + kk
            v = zero
            if r < rows and k < K:
                v = src[z, k, r] if k_major else src[z, r, k]
            tile[kk, rr] = v

    @cuda.jit
    def gemm(a, b, out, trans_a, trans_b, alpha, beta, c, bias, bias_axis, act, u, deriv_act):
        a_tile = cuda.shared.array(A_SHAPE, F)
        b_tile = cuda.shared.array(B_SHAPE, F)
        acc = cuda.local.array((TM, TN), F)
        a_reg = cuda.local.array(TM, F)
        b_reg = cuda.local.array(TN, F)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TX + tx
        batch = out.shape[0]
        M = out.shape[1]
        N = out.shape[2]
        K = a.shape[1] if trans_a else a.shape[2]
        row0 = cuda.blockIdx.x * BM
        n_col_tiles = (N + BN - 1) // BN
        for z in range(cuda.blockIdx.z, batch, cuda.gridDim.z):
            za = z % a.shape[0]
            zb = z % b.shape[0]
            for col_tile in range(cuda.blockIdx.y, n_col_tiles, cuda.gridDim.y):
                col0 = col_tile * BN
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] = zero
                for k0 in range(0, K, BK):
                    # a stored (K, M) when transposed, b when not
                    load_tile(a, za, trans_a, row0, M, BM, k0, K, a_tile, tid)
                    load_tile(b, zb, not trans_b, col0, N, BN, k0, K, b_tile, tid)
                    cuda.syncthreads()
                    for kk in range(BK):
                        for i in range(TM):
                            a_reg[i] = a_tile[kk, ty + i * TY]
                        for j in range(TN):
                            b_reg[j] = b_tile[kk, tx + j * TX]
                        for i in range(TM):
                            for j in range(TN):
                                acc[i, j] += a_reg[i] * b_reg[j]
                    cuda.syncthreads()
                for i in range(TM):
                    m = row0 + ty + i * TY
                    if m < M:
                        for j in range(TN):
                            n = col0 + tx + j * TX
                            if n < N:
                                v = alpha * acc[i, j]
                                if c is not None:
                                    cm = m if c.shape[1] > 1 else 0
                                    cn = n if c.shape[2] > 1 else 0
                                    v += beta * c[z % c.shape[0], cm, cn]
                                if bias is not None:
                                    zz = z % bias.shape[0]
                                    v += bias[zz, n] if bias_axis == 1 else bias[zz, m]
                                if u is not None:
                                    v *= derivative(deriv_act, u[z, m, n])
                                out[z, m, n] = activate(act, v)

    return gemm
