"""Convolution geometry as the 2-D integers the CUDA kernels take (1-D convolution is
2-D convolution with a height of 1), and the choice between im2col + cuBLAS and the
direct kernels."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastnn._args import ConvGeometry

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


def choose_algo(geom: ConvGeometry, algo: str) -> str:
    """The algorithm for ``algo``: "im2col" or "direct" ("auto" decides by the work per
    output)."""
    if algo != "auto":
        return algo
    macs = geom.in_channels // geom.groups * math.prod(geom.kernel)
    return "direct" if macs <= DIRECT_MAX_MACS else "im2col"
