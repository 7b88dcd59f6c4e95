"""Host side of the im2col + GEMM convolution (kernels/cpu/conv_im2col.pyx): block sizes,
allocation, and BLAS held to one thread while the kernels call it from OpenMP threads.

Every function takes the geometry tuple ``tuple(geom.plane)`` (fastnn._geometry) and 4-D views
(a 1-D convolution is passed as 2-D with H = 1); ``w`` is the flat contiguous weight.
"""

from __future__ import annotations

import numpy as np

from fastnn import _isa
from fastnn._backends.cpu import _conv_plan, _conv_pointwise, _gemm, _outputs
from fastnn._threads import limit_blas_threads
from fastnn.kernels.cpu import conv_im2col as _k

__all__ = ["BLOCKED_GEMM", "engine", "forward", "grad_input", "grad_weight"]

#: The algorithm name of im2col whose GEMMs run on fastnn's blocked kernel instead of
#: SciPy's BLAS (the autotuner's candidate; "im2col" itself stays on BLAS).  On a 1x1
#: layer without padding it runs one GEMM over the whole batch instead
#: (_conv_pointwise: no column matrix at all).
BLOCKED_GEMM = "im2col:blocked"
#: gemm_engine.pxd's code for SciPy's BLAS.
_BLAS = -2


def engine(name: str) -> int:
    """The GEMM engine code for algorithm ``name``: BLAS for "im2col", the blocked
    kernel's measured instruction-set variant (fastnn._isa, family "gemm") for
    :data:`BLOCKED_GEMM` (calibrated first: the tile speeds it picks its tile by)."""
    if name != BLOCKED_GEMM:
        return _BLAS
    _gemm.ensure_calibrated()
    return _isa.level_code("gemm")


def forward(
    x4: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    shape,
    threads: int,
    act: int = 0,
    gemm: int = _BLAS,
):
    """The flat (N, K, Ho, Wo) output of the convolution of x4 (any strides), through the
    activation ``act`` (conv_epilogue.h's code, 0: none) in each tile's write-out; ``gemm``
    is the GEMM engine (:func:`engine`), as in the other passes."""
    if gemm != _BLAS and _conv_pointwise.applies(shape):
        return _conv_pointwise.forward(x4, w, bias, shape, threads, act, gemm)
    n, k, ho, wo = shape[0], shape[4], shape[8], shape[9]
    y = _outputs.empty(n * k * ho * wo, x4.dtype)
    tile, images = _conv_plan.im2col_tile(shape, threads)
    b = bias if bias is not None else w[:0]
    with limit_blas_threads():
        _k.forward(x4, w, b, bias is not None, y, shape, tile, images, threads, act, gemm)
    return y


def grad_weight(
    x4: np.ndarray, gy: np.ndarray, shape, threads: int, gemm: int = _BLAS
) -> np.ndarray:
    """d loss / d weight (K, Cg*R*S), from the flat contiguous grad_output: per-thread
    partial gradients over tiles of positions, or, for a large weight, one column matrix
    per chunk of images shared by the threads, which split the gradient between them
    (_conv_plan.shared_weight_images)."""
    if gemm != _BLAS and _conv_pointwise.applies(shape):
        return _conv_pointwise.grad_weight(x4, gy, shape, threads, gemm)
    images = _conv_plan.shared_weight_images(shape, threads)
    with limit_blas_threads():
        if images:
            return _k.backward_weight_shared(x4, gy, shape, images, threads, gemm)
        tile, images = _conv_plan.im2col_tile(shape, threads)
        return _k.backward_weight(x4, gy, shape, tile, images, threads, gemm)


def grad_input(gy: np.ndarray, w: np.ndarray, shape, threads: int, gemm: int = _BLAS) -> np.ndarray:
    """d loss / d input, flat (N, C, H, W), from the flat contiguous grad_output."""
    if gemm != _BLAS and _conv_pointwise.applies(shape):
        return _conv_pointwise.grad_input(gy, w, shape, threads, gemm)
    n, c, h, wd = shape[:4]
    gx = _outputs.zeros(n * c * h * wd, gy.dtype)
    tile, images = _conv_plan.im2col_tile(shape, threads)
    channels = _conv_plan.im2col_channels(shape, tile * images, images, threads)
    with limit_blas_threads():
        _k.backward_input(gy, w, gx, shape, tile, images, channels, threads, gemm)
    return gx
