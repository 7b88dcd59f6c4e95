"""conv1d / conv2d and their backward on the GPU: im2col + cuBLAS, or direct kernels
(algo="direct", or "auto" for little work per output, see _conv_shape.choose_algo)."""

from __future__ import annotations

from typing import Any

from fastnn._args import ConvGeometry
from fastnn.backends.cupy import _conv_direct, _conv_im2col
from fastnn.backends.cupy._conv_shape import choose_algo
from fastnn.backends.cupy._runtime import cupy_op


@cupy_op("conv1d", "conv2d")
def conv(x: Any, w: Any, b: Any, geom: ConvGeometry, algo: str) -> Any:
    """Cross-correlation of x with w, plus b (PyTorch's conv1d / conv2d)."""
    if choose_algo(geom, algo) == "direct":
        return _conv_direct.forward(x, w, b, geom)
    return _conv_im2col.forward(x, w, b, geom)


@cupy_op("conv1d_backward", "conv2d_backward")
def conv_backward(gy: Any, x: Any, w: Any, geom: ConvGeometry, algo: str, mask) -> tuple:
    """(grad_input, grad_weight, grad_bias) of the convolution, None where masked."""
    if choose_algo(geom, algo) == "direct":
        return _conv_direct.backward(gy, x, w, geom, mask)
    return _conv_im2col.backward(gy, x, w, geom, mask)
