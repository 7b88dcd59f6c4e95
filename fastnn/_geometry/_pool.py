"""The geometry of a max or average pooling call: validated once, then read by every backend.

:func:`pool_geometry` checks the shape and the kernel_size / stride / padding / dilation /
ceil_mode of a {max,avg}_pool{1,2}d call and returns a frozen :class:`PoolGeometry`
(memoised for repeated plain-int parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fastnn._args import check_bool, int_tuple
from fastnn._geometry._batched import check_batched, check_planes
from fastnn._geometry._memo import memoise
from fastnn._geometry._planes import PooledShapes

__all__ = ["PoolGeometry", "pool_geometry", "pool_output_size"]


@dataclass(frozen=True, slots=True)
class PoolGeometry(PooledShapes):
    """Validated pooling parameters.  Spatial tuples have 1 (L) or 2 (H, W) entries; the
    padding is symmetric (``pad`` on both sides); ``dilation`` is 1 for average pooling."""

    batch: int
    channels: int
    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool
    out_size: tuple[int, ...]
    #: (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw): the 2-D view the CPU kernels take,
    #: a 1-D problem as one row (H = Ho = kh = sh = dh = 1, ph = 0); set once, at creation.
    plane: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (self.in_size, self.out_size, self.kernel, self.stride, self.pad,
                  self.dilation)  # fmt: skip
        if len(self.in_size) == 1:
            fields = tuple((one, *f) for one, f in zip((1, 1, 1, 1, 0, 1), fields))
        (h, w), (ho, wo), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = fields
        object.__setattr__(self, "plane", (h, w, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw))


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size (``ceil_mode`` drops a window that starts in the
    right padding)."""
    numerator = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _padding_only_window(size: int, k: int, s: int, p: int, d: int, out: int) -> int | None:
    """The first of the ``out`` windows whose ``k`` taps (``start + j * d``) all miss the
    input ``[0, size)``, or None.  Only windows that start in the left padding can miss:
    every window starts before ``size`` (the output-size rule guarantees it)."""
    o = 0
    while o < out and o * s - p < 0:
        start = o * s - p
        first_real = -(start // d)  # ceil(-start / d): the first tap at or after 0
        if first_real >= k or start + first_real * d >= size:
            return o
        o += 1
    return None


@memoise
def pool_geometry(
    op: str,
    nd: int,
    input_shape: tuple[int, ...],
    kernel_size: object,
    stride: object,
    padding: object,
    dilation: object,
    ceil_mode: object,
) -> PoolGeometry:
    """Validate the parameters of a {max,avg}_pool{nd}d call and compute its geometry
    (memoised for repeated plain-int parameters)."""
    check_batched(op, nd, input_shape)
    batch, channels, *in_size = input_shape
    kernel = int_tuple(op, "kernel_size", kernel_size, nd, 1)
    if stride is None or (isinstance(stride, Sequence) and len(stride) == 0):
        stride_t = kernel
    else:
        stride_t = int_tuple(op, "stride", stride, nd, 1)
    pad = int_tuple(op, "padding", padding, nd, 0)
    dilation_t = int_tuple(op, "dilation", dilation, nd, 1)
    ceil = check_bool(op, "ceil_mode", ceil_mode)
    check_planes(op, channels, in_size, input_shape)
    for k, p in zip(kernel, pad):
        if p > k // 2:
            raise ValueError(
                f"{op}: padding must be at most half of kernel_size (as in PyTorch), got "
                f"padding={pad} and kernel_size={kernel}"
            )
    out_size = tuple(
        pool_output_size(i, k, s, p, d, ceil)
        for i, k, s, p, d in zip(in_size, kernel, stride_t, pad, dilation_t)
    )
    if any(o < 1 for o in out_size):
        raise ValueError(
            f"{op}: input spatial size {tuple(in_size)} is too small for kernel_size={kernel}, "
            f"padding={pad} and dilation={dilation_t}: the output size would be {out_size}"
        )
    axes = zip(in_size, kernel, stride_t, pad, dilation_t, out_size)
    for axis, (i, k, s, p, d, o) in enumerate(axes):
        empty = _padding_only_window(i, k, s, p, d, o)
        if empty is not None:
            raise ValueError(
                f"{op}: window {empty} along spatial axis {axis} reads only padding (input "
                f"size {tuple(in_size)}, kernel_size={kernel}, stride={stride_t}, "
                f"padding={pad}, dilation={dilation_t}): its dilated taps skip every input "
                f"element, so it has no maximum (PyTorch returns -inf and an out-of-range index)"
            )
    return PoolGeometry(
        batch=batch,
        channels=channels,
        in_size=tuple(in_size),
        kernel=kernel,
        stride=stride_t,
        pad=pad,
        dilation=dilation_t,
        ceil_mode=ceil,
        out_size=out_size,
    )
