"""conv1d / conv2d and their backward on the GPU: im2col + cuBLAS, or direct kernels
(algo="direct"; "auto" ranks them with a prior and, with ``fastnn.autotune`` on, times
both on first use of a shape: see _conv_shape.choose_algo).  Winograd is a CPU
algorithm: asking for it here raises ValueError."""

from __future__ import annotations

from typing import Any

from fastnn._backends.cupy import _conv_direct, _conv_im2col
from fastnn._backends.cupy._conv_shape import choose_algo, unsupported
from fastnn._backends.cupy._runtime import cupy_arrays
from fastnn._dispatch import register
from fastnn._geometry import ConvGeometry

_FORWARD = {"im2col": _conv_im2col.forward, "direct": _conv_direct.forward}
_BACKWARD = {"im2col": _conv_im2col.backward, "direct": _conv_direct.backward}


@register("conv1d", "cupy")
@register("conv2d", "cupy")
@cupy_arrays
def conv(
    x: Any, w: Any, b: Any, geom: ConvGeometry, algo: str, activation: str | None = None
) -> Any:
    """Cross-correlation of x with w, plus b (PyTorch's conv1d / conv2d), through the
    fused activation (None, "relu", "relu6"); autotuning times the passes with it."""
    unsupported(f"conv{geom.nd}d", algo)

    def run(name: str) -> Any:
        return _FORWARD[name](x, w, b, geom, activation)

    return run(choose_algo(geom, algo, x.dtype, "forward", run))


@register("conv1d_backward", "cupy")
@register("conv2d_backward", "cupy")
@cupy_arrays
def conv_backward(gy: Any, x: Any, w: Any, geom: ConvGeometry, algo: str, mask) -> tuple:
    """(grad_input, grad_weight, grad_bias) of the convolution, None where masked; one
    algorithm for the whole call, chosen per output mask ("backward110": the input and
    weight gradients, no bias gradient)."""
    unsupported(f"conv{geom.nd}d_backward", algo)
    which = "backward" + "".join("1" if m else "0" for m in mask)

    def run(name: str) -> tuple:
        return _BACKWARD[name](gy, x, w, geom, mask)

    return run(choose_algo(geom, algo, x.dtype, which, run))
