"""The geometry of a convolution: validated once, then read by every backend.

:func:`conv_geometry` checks the shapes and the stride / padding / dilation / groups of a
conv1d or conv2d call and returns a frozen :class:`ConvGeometry` (memoised for repeated
plain-int parameters).  Kernels are 2-D: :attr:`ConvGeometry.plane` is the one named 2-D
view every backend reads (a 1-D convolution is a 2-D one with a height of 1, a kernel
height of 1 and no vertical padding), in the order the CPU kernels unpack it
(kernels/cpu/conv_shape.pxd).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from fastnn._args import _int, int_tuple
from fastnn._geometry._batched import check_batched
from fastnn._geometry._memo import memoise

__all__ = ["ConvGeometry", "ConvPlane", "conv_geometry", "winograd_unsupported"]


class ConvPlane(NamedTuple):
    """A convolution as 2-D integers: input (n, c, h, w), k output channels in g groups,
    an r x s kernel, output ho x wo, stride (sh, sw), dilation (dh, dw), padding top,
    bottom, left, right."""

    n: int
    c: int
    h: int
    w: int
    k: int
    g: int
    r: int
    s: int
    ho: int
    wo: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int

    @property
    def cg(self) -> int:
        """Input channels per group."""
        return self.c // self.g

    @property
    def kg(self) -> int:
        """Output channels per group."""
        return self.k // self.g

    @property
    def pointwise(self) -> bool:
        """A 1x1 kernel, stride 1, no padding: the input itself is the column matrix."""
        return (self.r, self.s, self.sh, self.sw) == (1, 1, 1, 1) and not (
            self.pt or self.pb or self.pl or self.pr
        )


def _plane(geom: ConvGeometry) -> ConvPlane:
    if geom.nd == 1:
        (size,), (k,), (s,), (d,), (pad,), (out,) = (
            geom.in_size, geom.kernel, geom.stride, geom.dilation, geom.pad, geom.out_size
        )  # fmt: skip
        hw, kernel, stride, dilation = (1, size), (1, k), (1, s), (1, d)
        pads, out_hw = ((0, 0), pad), (1, out)
    else:
        hw, kernel, stride, dilation = geom.in_size, geom.kernel, geom.stride, geom.dilation
        pads, out_hw = geom.pad, geom.out_size
    return ConvPlane(
        geom.batch, geom.in_channels, *hw, geom.out_channels, geom.groups, *kernel,
        *out_hw, *stride, *dilation, *pads[0], *pads[1],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ConvGeometry:
    """Everything a convolution kernel needs to know, validated.

    Spatial tuples have one entry for conv1d (L) and two for conv2d (H, W).  ``pad`` holds
    ``(before, after)`` per spatial dimension: equal for an int or tuple padding, and
    asymmetric (one more after) for ``padding="same"`` with an even dilated kernel, as in
    PyTorch.
    """

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pad: tuple[tuple[int, int], ...]
    out_size: tuple[int, ...]
    #: The 2-D view (see :class:`ConvPlane`), computed once.
    plane: ConvPlane = field(init=False, repr=False, compare=False)
    #: The hash, computed once: geometries key the per-layer memos of every call.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plane", _plane(self))
        fields = (self.batch, self.in_channels, self.out_channels, self.groups, self.in_size,
                  self.kernel, self.stride, self.dilation, self.pad, self.out_size)  # fmt: skip
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    @property
    def nd(self) -> int:
        """Number of spatial dimensions (1 or 2)."""
        return len(self.in_size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.in_size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels, *self.out_size)

    @property
    def flops(self) -> int:
        """Multiply-adds x 2 of the forward pass (bias excluded)."""
        per_output = (self.in_channels // self.groups) * math.prod(self.kernel)
        return 2 * math.prod(self.output_shape) * per_output


@memoise
def conv_geometry(
    op: str,
    nd: int,
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
) -> ConvGeometry:
    """Validate the shapes and parameters of a conv{nd}d call and compute its geometry
    (memoised for repeated plain-int parameters)."""
    check_batched(op, nd, input_shape)
    wlayout = "(C_out, C_in // groups, kL)" if nd == 1 else "(C_out, C_in // groups, kH, kW)"
    if len(weight_shape) != nd + 2:
        raise ValueError(f"{op}: weight must be {nd + 2}-d {wlayout}, got shape {weight_shape}")
    batch, in_channels, *in_size = input_shape
    out_channels, group_channels, *kernel = weight_shape
    g = _int(op, "groups", groups)
    if g < 1:
        raise ValueError(f"{op}: groups must be >= 1, got {g}")
    stride_t = int_tuple(op, "stride", stride, nd, 1)
    dilation_t = int_tuple(op, "dilation", dilation, nd, 1)
    if in_channels < 1:
        raise ValueError(f"{op}: input must have at least one channel, got shape {input_shape}")
    if out_channels < 1:
        raise ValueError(
            f"{op}: weight must have at least one output channel, got shape {weight_shape}"
        )
    if any(k < 1 for k in kernel):
        raise ValueError(f"{op}: kernel size must be >= 1, got weight shape {weight_shape}")
    if in_channels % g:
        raise ValueError(f"{op}: input channels ({in_channels}) must be divisible by groups ({g})")
    if out_channels % g:
        raise ValueError(
            f"{op}: output channels (weight.shape[0] = {out_channels}) must be divisible by "
            f"groups ({g})"
        )
    if group_channels * g != in_channels:
        raise ValueError(
            f"{op}: weight.shape[1] must be input channels // groups = {in_channels // g}, got "
            f"weight shape {weight_shape} for input shape {input_shape} and groups={g}"
        )
    if any(s < 1 for s in in_size):
        raise ValueError(f"{op}: input spatial size must be >= 1, got shape {input_shape}")
    pad = _conv_padding(op, padding, nd, kernel, stride_t, dilation_t)
    out_size = []
    for size, k, s, d, (lo, hi) in zip(in_size, kernel, stride_t, dilation_t, pad):
        span = d * (k - 1) + 1
        if size + lo + hi < span:
            raise ValueError(
                f"{op}: padded input size {tuple(i + a + b for i, (a, b) in zip(in_size, pad))}"
                f" is smaller than the dilated kernel size "
                f"{tuple(dd * (kk - 1) + 1 for kk, dd in zip(kernel, dilation_t))}"
            )
        out_size.append((size + lo + hi - span) // s + 1)
    return ConvGeometry(
        batch=batch,
        in_channels=in_channels,
        out_channels=out_channels,
        groups=g,
        in_size=tuple(in_size),
        kernel=tuple(kernel),
        stride=stride_t,
        dilation=dilation_t,
        pad=pad,
        out_size=tuple(out_size),
    )


def _conv_padding(
    op: str,
    padding: object,
    nd: int,
    kernel: Sequence[int],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{op}: padding='same' requires stride 1 (as in PyTorch), got stride {stride}"
                )
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            f"{op}: padding must be an int, a tuple of {nd} ints, 'valid' or 'same', "
            f"got {padding!r}"
        )
    return tuple((p, p) for p in int_tuple(op, "padding", padding, nd, 0))


def winograd_unsupported(geom: ConvGeometry) -> str | None:
    """Why Winograd's F(m x m, 3 x 3) cannot run this convolution, or None when it can:
    it needs a 2-D 3x3 kernel, stride 1 and dilation 1 (any padding and groups)."""
    if geom.nd != 2:
        return f"it runs 2-D convolutions only, this is conv{geom.nd}d"
    if geom.kernel != (3, 3):
        return f"the kernel must be 3x3, got {geom.kernel[0]}x{geom.kernel[1]}"
    if geom.stride != (1, 1):
        return f"the stride must be 1, got {geom.stride}"
    if geom.dilation != (1, 1):
        return f"the dilation must be 1, got {geom.dilation}"
    return None
