"""conv1d / conv2d and their backward on the GPU: im2col + cuBLAS, or direct kernels
(algo="direct"; "auto" decides, see _conv_shape.choose_algo)."""

from __future__ import annotations

from typing import Any

from fastnn._geometry import ConvGeometry
from fastnn.backends.cupy import _conv_direct, _conv_im2col
from fastnn.backends.cupy._conv_shape import choose_algo
from fastnn.backends.cupy._runtime import cupy_op

_FORWARD = {"im2col": _conv_im2col.forward, "direct": _conv_direct.forward}
_BACKWARD = {"im2col": _conv_im2col.backward, "direct": _conv_direct.backward}


@cupy_op("conv1d", "conv2d")
def conv(x: Any, w: Any, b: Any, geom: ConvGeometry, algo: str) -> Any:
    """Cross-correlation of x with w, plus b (PyTorch's conv1d / conv2d)."""
    op = f"conv{geom.nd}d"
    chosen = choose_algo(op, geom, algo, x.dtype, "forward", lambda a: _FORWARD[a](x, w, b, geom))
    return _FORWARD[chosen](x, w, b, geom)


@cupy_op("conv1d_backward", "conv2d_backward")
def conv_backward(gy: Any, x: Any, w: Any, geom: ConvGeometry, algo: str, mask) -> tuple:
    """(grad_input, grad_weight, grad_bias) of the convolution, None where masked."""
    op = f"conv{geom.nd}d"
    which = "backward" + "".join("1" if m else "0" for m in mask)

    def run(name: str) -> tuple:
        return _BACKWARD[name](gy, x, w, geom, mask)

    return _BACKWARD[choose_algo(op, geom, algo, x.dtype, which, run)](gy, x, w, geom, mask)
