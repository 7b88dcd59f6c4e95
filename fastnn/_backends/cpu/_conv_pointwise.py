"""Host side of the 1x1 convolution as one GEMM over the whole batch
(kernels/cpu/conv_pointwise.pyx on gemm_mapped.h): what ``"im2col:blocked"`` runs for a
1x1 layer without padding, any stride.

im2col of a 1x1 layer is the input itself (or, strided, every sh-th row and sw-th column
of it), so instead of a column matrix per tile of positions the blocked GEMM reads the
input in place through index maps: its columns are the output positions of all images
together (a batch of 7x7 maps is one product 392 columns wide, where one image gives 49,
a poor fit for 32-column register tiles), the weights are packed once per block for
every image, and the result lands in the NCHW output with the bias and the fused
activation applied as each tile is written.

Every function takes the geometry tuple ``tuple(geom.plane)`` (fastnn._geometry) and 4-D
views (a 1-D convolution is passed as 2-D with H = 1); ``w`` is the flat contiguous
weight.
"""

from __future__ import annotations

import numpy as np

from fastnn._backends.cpu import _outputs
from fastnn._machine import l2_bytes
from fastnn.kernels.cpu import conv_pointwise as _k

__all__ = ["applies", "forward", "grad_input", "grad_weight"]


def applies(shape) -> bool:
    """Whether the layer is a 1x1 convolution without padding (dilation is moot)."""
    r, s = shape[6], shape[7]
    return r == 1 and s == 1 and not any(shape[14:18])


def forward(
    x4: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    shape,
    threads: int,
    act: int,
    variant: int,
) -> np.ndarray:
    """The flat (N, K, Ho, Wo) output of the 1x1 convolution of x4 (any strides), the
    activation ``act`` (conv_epilogue.h's code) fused into the write-out."""
    n, k, ho, wo = shape[0], shape[4], shape[8], shape[9]
    y = _outputs.empty(n * k * ho * wo, x4.dtype)
    b = bias if bias is not None else w[:0]
    _k.forward(x4, w, b, bias is not None, y, shape, threads, act, variant, l2_bytes())
    return y


def grad_input(gy: np.ndarray, w: np.ndarray, shape, threads: int, variant: int) -> np.ndarray:
    """d loss / d input, flat (N, C, H, W), from the flat contiguous grad_output: zeros
    where a strided layer reads nothing."""
    n, c, h, wd, sh, sw = shape[0], shape[1], shape[2], shape[3], shape[10], shape[11]
    covers = sh == 1 and sw == 1 and shape[8] == h and shape[9] == wd
    make = _outputs.empty if covers else _outputs.zeros
    gx = make(n * c * h * wd, gy.dtype)
    _k.grad_input(gy, w, gx, shape, threads, variant, l2_bytes())
    return gx


def grad_weight(x4: np.ndarray, gy: np.ndarray, shape, threads: int, variant: int) -> np.ndarray:
    """d loss / d weight (K, Cg), from x4 (any strides) and the flat contiguous
    grad_output."""
    k, cg = shape[4], shape[1] // shape[5]
    gw = np.empty(k * cg, dtype=gy.dtype)
    _k.grad_weight(x4, gy, gw, shape, threads, variant, l2_bytes())
    return gw.reshape(k, cg)
