"""The SciPy peer: convolution by overlap-add FFT (``scipy.signal.oaconvolve``) where it
applies, and GEMM through SciPy's own BLAS (``scipy.linalg.blas``).

``oaconvolve`` convolves one pair of signals per broadcast index, so a layer with C input
and K output channels becomes (N, K, C) FFT convolutions summed over C: it applies where
that intermediate stays small (few input channels: LeNet5-C1, MNIST, DS2-conv1, 1-D
spectra).  A stride is taken by subsampling the stride-1 result, as a SciPy user would.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_INTERMEDIATE_BYTES", "conv", "conv_bytes", "gemm"]

#: Largest (N, K, C, *out) intermediate :func:`conv` may build, in bytes.
MAX_INTERMEDIATE_BYTES = 512 * 2**20


def conv_bytes(x_shape, w_shape, pad, dilation, itemsize: int) -> int:
    """Bytes of the stride-1 (N, K, C, *out) intermediate of :func:`conv`."""
    n, c, *size = x_shape
    k, _, *kernel = w_shape
    out = [s + 2 * p - d * (kk - 1) for s, p, d, kk in zip(size, pad, dilation, kernel)]
    return n * k * c * math.prod(out) * itemsize


def conv(x, w, b, stride, pad, dilation):
    """Cross-correlation of (N, C, *size) with (K, C, *kernel) through oaconvolve."""
    nd = x.ndim - 2
    if any(d != 1 for d in dilation):
        raise ValueError("oaconvolve peer: dilation must be 1")
    if x.shape[0] == 0:  # oaconvolve cannot broadcast an empty batch
        full = [n + 2 * p - (k - 1) for n, p, k in zip(x.shape[2:], pad, w.shape[2:])]
        out = [-(-n // s) for n, s in zip(full, stride)]
        return np.zeros((0, w.shape[0], *out), dtype=x.dtype)
    xpad = np.pad(x, ((0, 0), (0, 0), *((p, p) for p in pad))) if any(pad) else x
    flipped = w[(slice(None), slice(None), *([slice(None, None, -1)] * nd))]
    axes = tuple(range(-nd, 0))
    from scipy.signal import oaconvolve  # imported here: scipy.signal takes a while

    full = oaconvolve(xpad[:, None], flipped[None], mode="valid", axes=axes)
    y = full.sum(axis=2) if x.shape[1] > 1 else full[:, :, 0]
    y = y[(slice(None), slice(None), *(slice(None, None, s) for s in stride))]
    if b is not None:
        y = y + b.reshape(1, -1, *([1] * nd))
    return np.ascontiguousarray(y, dtype=x.dtype)


def gemm(a, b, trans_a: bool, trans_b: bool):
    """op(a) @ op(b) by SciPy's BLAS sgemm/dgemm (Fortran order: C^T = op(B)^T op(A)^T)."""
    from scipy.linalg import blas

    fn = blas.sgemm if a.dtype == np.float32 else blas.dgemm
    # Row-major a is column-major a.T: computing C^T = op(b)^T @ op(a)^T needs no copy.
    return fn(1.0, b.T, a.T, trans_a=trans_b, trans_b=trans_a).T
