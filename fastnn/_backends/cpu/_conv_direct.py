"""Host side of the direct convolution (kernels/cpu/conv_direct.pyx): block sizes and
allocation.  No BLAS is involved.

Every function takes the geometry tuple ``tuple(geom.plane)`` (fastnn._geometry) and 4-D views
(a 1-D convolution is passed as 2-D with H = 1); ``w`` is the flat contiguous weight.
"""

from __future__ import annotations

import numpy as np

from fastnn._backends.cpu import _conv_plan, _outputs
from fastnn.kernels.cpu import conv_direct as _k

__all__ = ["forward", "grad_input", "grad_weight", "with_slack"]


def with_slack(a: np.ndarray) -> np.ndarray:
    """``a`` flat, followed by elements that the micro-kernels may read past its end (they
    never use what they read there): ``a`` itself when it is C-contiguous and has them
    readable (an output of fastnn's output cache, or a view of one), else a copy followed
    by zeros (a LeNet-5 step copied its 2.4 MB first-layer gradient, 0.24 ms)."""
    if _outputs.readable_after(a) >= _k.SLACK * a.itemsize:
        return a.reshape(-1)
    flat = _outputs.empty(a.size + _k.SLACK, a.dtype)  # large: reused pages, no faults
    np.copyto(flat[: a.size].reshape(a.shape), a)
    flat[a.size :] = 0
    return flat


def forward(
    x4: np.ndarray, w: np.ndarray, bias: np.ndarray | None, shape, threads: int, act: int = 0
):
    """The flat (N, K, Ho, Wo) output of the convolution of x4 (any strides), through the
    activation ``act`` (conv_epilogue.h's code, 0: none) in the micro-kernel's store."""
    n, k, ho, wo = shape[0], shape[4], shape[8], shape[9]
    y = _outputs.empty(n * k * ho * wo, x4.dtype)
    rows = _conv_plan.direct_rows(shape, threads)
    kblocks = _conv_plan.direct_kblocks(shape, rows, threads, _k.FWD_KB)
    b = bias if bias is not None else w[:0]
    _k.forward(x4, w, b, bias is not None, y, shape, rows, kblocks, threads, act)
    return y


def grad_weight(x4: np.ndarray, gy: np.ndarray, shape, threads: int) -> np.ndarray:
    """d loss / d weight as float64 (K, Cg*R*S); ``gy`` must come from :func:`with_slack`."""
    images, rows, channels = _conv_plan.direct_gw_blocks(shape, threads)
    return _k.backward_weight(x4, gy, shape, images, rows, channels, threads)


def grad_input(gy: np.ndarray, w: np.ndarray, shape, threads: int) -> np.ndarray:
    """d loss / d input, flat (N, C, H, W); ``gy`` must come from :func:`with_slack`."""
    n, c, h, wd = shape[:4]
    gx = _outputs.empty(n * c * h * wd, gy.dtype)
    channels = _conv_plan.direct_channels(shape, threads)
    _k.backward_input(gy, w, gx, shape, channels, threads)
    return gx
