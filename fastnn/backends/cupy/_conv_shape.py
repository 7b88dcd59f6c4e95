"""Convolution geometry as the 2-D integers the CUDA kernels take (1-D convolution is
2-D convolution with a height of 1), and the choice between im2col + cuBLAS and the
direct kernels (a heuristic, or ``fastnn.autotune`` timing both on this GPU)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cupy
import numpy as np

from fastnn import _autotune
from fastnn._geometry import ConvGeometry

#: The two convolution algorithms of this backend.
ALGORITHMS = ("im2col", "direct")

#: algo="auto" takes the direct kernels when one output needs at most this many
#: multiply-adds (in_channels / groups * kernel taps): a GEMM with so short an inner
#: dimension runs far from cuBLAS's peak, and im2col would copy the input kernel-taps
#: times for little arithmetic.  A first guess, not yet measured on a GPU.
DIRECT_MAX_MACS = 32


@dataclass(frozen=True)
class Conv2d:
    """Spatial sizes of one convolution, 2-D; ``pad_*`` are the paddings before."""

    in_h: int
    in_w: int
    k_h: int
    k_w: int
    out_h: int
    out_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    dil_h: int
    dil_w: int

    @property
    def taps(self) -> int:
        return self.k_h * self.k_w

    @property
    def positions(self) -> int:
        return self.out_h * self.out_w

    def ints(self) -> tuple[int, ...]:
        """(in_h, in_w, k_h, k_w, out_h, out_w, stride_h, stride_w, pad_h, pad_w, dil_h,
        dil_w), the order of the im2col/col2im arguments."""
        return (
            self.in_h, self.in_w, self.k_h, self.k_w, self.out_h, self.out_w,
            self.stride_h, self.stride_w, self.pad_h, self.pad_w, self.dil_h, self.dil_w,
        )  # fmt: skip


def conv2d_shape(geom: ConvGeometry) -> Conv2d:
    """The 2-D view of ``geom``."""
    if geom.nd == 2:
        (in_h, in_w), (k_h, k_w), (out_h, out_w) = geom.in_size, geom.kernel, geom.out_size
        (s_h, s_w), (d_h, d_w) = geom.stride, geom.dilation
        p_h, p_w = geom.pad_before
    else:
        in_h = k_h = out_h = s_h = d_h = 1
        p_h = 0
        ((in_w,), (k_w,), (out_w,)) = geom.in_size, geom.kernel, geom.out_size
        ((s_w,), (d_w,), (p_w,)) = geom.stride, geom.dilation, geom.pad_before
    return Conv2d(in_h, in_w, k_h, k_w, out_h, out_w, s_h, s_w, p_h, p_w, d_h, d_w)


def heuristic(geom: ConvGeometry) -> str:
    """ "direct" when one output needs few multiply-adds, else "im2col"."""
    macs = geom.in_channels // geom.groups * math.prod(geom.kernel)
    return "direct" if macs <= DIRECT_MAX_MACS else "im2col"


def autotune_key(op: str, geom: ConvGeometry, dtype: Any, device: str, which: str) -> str:
    """The ``fastnn.autotune`` cache key of one pass on one kind of GPU."""
    parts = [
        f"cupy:{op}",
        f"pass={which}",
        f"x={geom.input_shape}",
        f"w={geom.weight_shape}",
        f"s={geom.stride}",
        f"p={geom.pad}",
        f"d={geom.dilation}",
        f"g={geom.groups}",
        f"dtype={np.dtype(dtype)}",
        f"gpu={device}",
    ]
    return "|".join(parts).replace(" ", "")


def choose_algo(
    op: str, geom: ConvGeometry, algo: str, dtype: Any, which: str, run: Callable[[str], Any]
) -> str:
    """The algorithm of one pass: ``algo`` unless it is "auto"; then, with
    ``fastnn.autotune(True)``, the faster of the two when timed once on this GPU
    (``run(name)`` runs the pass with one of them; the GPU is synchronised inside the
    timing), else :func:`heuristic`."""
    if algo != "auto":
        return algo
    if not _autotune.autotune_enabled():
        return heuristic(geom)
    device = cupy.cuda.Device()
    key = autotune_key(op, geom, dtype, f"sm{device.compute_capability}", which)

    def timed(name: str) -> Callable[[], None]:
        def call() -> None:
            run(name)
            device.synchronize()

        return call

    return _autotune.choose(key, {name: timed(name) for name in ALGORITHMS})
