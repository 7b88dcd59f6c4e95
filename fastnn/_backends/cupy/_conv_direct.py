"""Direct convolution on the GPU (kernels/cuda/conv_direct.cu): no column buffer, every
gradient a gather or a block reduction (deterministic)."""

from __future__ import annotations

from typing import Any

import cupy

from fastnn._backends.cupy._conv_shape import direct_ints
from fastnn._backends.cupy._reduce import channel_sums
from fastnn._backends.cupy._runtime import MAX_BLOCKS, contiguous, i32, kernel, launch_1d
from fastnn._backends.cupy._sources import ACTIVATIONS, THREADS
from fastnn._geometry import ConvGeometry


def _ints(geom: ConvGeometry) -> tuple:
    """The geometry arguments shared by the three kernels, as C ints."""
    return tuple(i32(v) for v in direct_ints(geom.plane))


def forward(x: Any, w: Any, b: Any, geom: ConvGeometry, activation: str | None = None) -> Any:
    """One thread per output element, bias and activation applied in the same pass."""
    y = cupy.empty(geom.output_shape, dtype=x.dtype)
    wc = contiguous(w)
    act = ACTIVATIONS[activation]
    kern = kernel("conv_direct.cu", "conv_direct_forward", x.dtype, act, b is not None)
    bias = contiguous(b) if b is not None else wc  # not read without a bias
    launch_1d(kern, y.size, (contiguous(x), wc, bias, y, *_ints(geom)))
    return y


def backward(gy: Any, x: Any, w: Any, geom: ConvGeometry, mask) -> tuple:
    """(grad_input, grad_weight, grad_bias), None where the mask is False."""
    gyc = contiguous(gy)
    args = _ints(geom)
    gx = gw = gb = None
    if mask[0]:
        gx = cupy.empty(geom.input_shape, dtype=x.dtype)
        kern = kernel("conv_direct.cu", "conv_direct_backward_input", x.dtype)
        launch_1d(kern, gx.size, (gyc, contiguous(w), gx, *args))
    if mask[1]:
        gw = cupy.empty(geom.weight_shape, dtype=x.dtype)
        if geom.batch == 0:
            gw.fill(0)
        else:
            kern = kernel("conv_direct.cu", "conv_direct_backward_weight", x.dtype)
            grid = (min(gw.size, MAX_BLOCKS),)
            kern(grid, (THREADS,), (gyc, contiguous(x), gw, *args))
    if mask[2]:
        p = geom.plane
        gb = channel_sums(gyc, p.n, p.k, p.ho * p.wo)
    return gx, gw, gb
