"""conv1d / conv2d and their backward on the GPU: im2col + GEMM, or direct kernels.

1-d convolution runs as 2-d with H = 1.  The im2col path works on chunks of images whose
column buffer fits in COLUMN_BUDGET bytes; per chunk it launches im2col once and the
batched GEMM once over every (image, group) pair (batch index ``n * groups + g``: the
weight of group g, and its bias, are shared by every image).  A 1x1 kernel with stride 1
and no padding needs no columns: the input is the GEMM operand itself.

- forward: ``out[n, g] = W[g] @ col[n, g] + bias[g]`` (bias in the GEMM epilogue).
- grad_input: ``colg[n, g] = W[g].T @ gy[n, g]``, then col2im (a gather, deterministic).
- grad_weight: ``gW[g] = gy[:, g] @ col[:, g].T`` as ONE GEMM per chunk over all its
  images: im2col writes the columns rows-first and the output gradient is permuted to
  (C_out, images, positions), so both operands are plain matrices; chunks after the
  first accumulate (beta = 1).
- grad_bias: the output gradient summed over images and positions (one launch).

``algo="direct"`` uses kernels/numba_cuda/conv_direct.py instead; "auto" picks direct
when a GEMM would have a tiny K (few input channels per group times kernel taps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fastnn._geometry import ConvGeometry
from fastnn.backends.numba_cuda import _launch
from fastnn.backends.numba_cuda._device import empty, launch, op, zeros
from fastnn.backends.numba_cuda.matmul import matmul
from fastnn.backends.numba_cuda.reductions import axis_sums
from fastnn.kernels.numba_cuda import conv_direct as _direct
from fastnn.kernels.numba_cuda import im2col as _im2col
from fastnn.kernels.numba_cuda import layout as _layout
from fastnn.kernels.numba_cuda.reduce import BLOCK

#: Bytes of column buffer (and permuted gradient) one chunk of images may use.
COLUMN_BUDGET = 256 * 2**20
#: "auto" runs the direct kernels when C_in / groups * kh * kw is below this.
DIRECT_BELOW = 16


@dataclass(frozen=True)
class Plane:
    """A convolution's geometry as 2-d (1-d gets H = 1): sizes, kernel, stride, the
    padding before each axis, dilation, output size."""

    height: int
    width: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pl: int
    dh: int
    dw: int
    ho: int
    wo: int

    @property
    def window(self) -> tuple[int, ...]:
        """The kernels' geometry arguments ``kh, kw, sh, sw, pt, pl, dh, dw``."""
        return (self.kh, self.kw, self.sh, self.sw, self.pt, self.pl, self.dh, self.dw)

    @property
    def pointwise(self) -> bool:
        """A 1x1 kernel, stride 1, no padding: the columns are the input itself."""
        return self.window[:6] == (1, 1, 1, 1, 0, 0)


def plane(geom: ConvGeometry) -> Plane:
    """The 2-d view of ``geom``."""
    axes = (geom.in_size, geom.kernel, geom.stride, geom.pad_before, geom.dilation)
    axes += (geom.out_size,)
    if geom.nd == 1:  # a unit H axis: size 1, kernel 1, stride 1, no padding, dilation 1
        axes = tuple((unit, *t) for unit, t in zip((1, 1, 1, 0, 1, 1), axes))
    (height, width), (kh, kw), (sh, sw), (pt, pl), (dh, dw), (ho, wo) = axes
    return Plane(height, width, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo)


def choose_algo(geom: ConvGeometry, algo: str) -> str:
    """ "direct" or "im2col" for ``algo`` ("auto" decides by the GEMM's K)."""
    if algo != "auto":
        return algo
    k = geom.in_channels // geom.groups * math.prod(geom.kernel)
    return "direct" if k < DIRECT_BELOW else "im2col"


def chunk_images(geom: ConvGeometry, per_image_bytes: int) -> int:
    """Images per chunk: as many as fit in COLUMN_BUDGET (at least one)."""
    return max(1, min(geom.batch, COLUMN_BUDGET // max(1, per_image_bytes)))


def _views(x: Any, w: Any, geom: ConvGeometry, p: Plane) -> tuple[Any, Any]:
    x4 = x.reshape(geom.batch, geom.in_channels, p.height, p.width)
    w4 = w.reshape(geom.out_channels, geom.in_channels // geom.groups, p.kh, p.kw)
    return x4, w4


# ---------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------


@op("conv1d", "conv2d")
def _conv(x, w, b, geom: ConvGeometry, algo: str):
    out = empty(geom.output_shape, x.dtype)
    if out.size == 0:
        return out
    p = plane(geom)
    x4, w4 = _views(x, w, geom, p)
    out4 = out.reshape(geom.batch, geom.out_channels, p.ho, p.wo)
    if choose_algo(geom, algo) == "direct":
        direct_forward(x4, w4, b, out4, geom.groups, p)
    else:
        im2col_forward(x4, w4, b, out4, geom, p)
    return out


def direct_forward(x4: Any, w4: Any, b: Any, out4: Any, groups: int, p: Plane) -> None:
    """One launch of the direct forward kernel."""
    batch, out_channels = out4.shape[:2]
    per_group = out_channels // groups
    channel_blocks = groups * _launch.ceil_div(per_group, _direct.CB)
    blocks, threads = _launch.elementwise(batch * channel_blocks * p.ho * p.wo, _direct.THREADS)
    kernel = _direct.conv_direct_kernels(x4.dtype).forward
    launch(kernel, blocks, threads, x4, w4, b, out4, groups, *p.window)


def im2col_forward(x4: Any, w4: Any, b: Any, out4: Any, geom: ConvGeometry, p: Plane) -> None:
    """Chunks of images: im2col, then one batched GEMM with the bias in its epilogue."""
    groups, batch = geom.groups, geom.batch
    cin, cout = geom.in_channels // groups, geom.out_channels // groups
    k, positions = cin * p.kh * p.kw, p.ho * p.wo
    w3 = w4.reshape(groups, cout, k)
    bias = b.reshape(groups, cout) if b is not None else None
    out3 = out4.reshape(batch * groups, cout, positions)
    if p.pointwise:  # 1x1: the input already is the column matrix
        x3 = x4.reshape(batch * groups, cin, positions)
        matmul(w3, x3, out3, bias=bias, bias_axis=0)
        return
    chunk = chunk_images(geom, geom.in_channels * p.kh * p.kw * positions * x4.dtype.itemsize)
    col = empty((chunk, geom.in_channels * p.kh * p.kw, positions), x4.dtype)
    for n0 in range(0, batch, chunk):
        nb = min(chunk, batch - n0)
        _im2col_launch(x4, col[:nb], n0, False, p)
        cols = col[:nb].reshape(nb * groups, k, positions)
        matmul(w3, cols, out3[n0 * groups : (n0 + nb) * groups], bias=bias, bias_axis=0)


def _im2col_launch(x4: Any, col: Any, n0: int, rows_first: bool, p: Plane) -> None:
    threads_needed = col.size // (p.kh * p.kw)  # one per (image, channel, position)
    blocks, threads = _launch.elementwise(threads_needed, _im2col.THREADS)
    kernel = _im2col.im2col_kernels(x4.dtype).im2col
    launch(kernel, blocks, threads, x4, col, n0, rows_first, *p.window, p.wo)


# ---------------------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------------------


@op("conv1d_backward", "conv2d_backward")
def _conv_backward(gy, x, w, geom: ConvGeometry, algo: str, mask):
    p = plane(geom)
    x4, w4 = _views(x, w, geom, p)
    gy4 = gy.reshape(geom.batch, geom.out_channels, p.ho, p.wo)
    direct = choose_algo(geom, algo) == "direct"
    grad_input = grad_weight = grad_bias = None
    if mask[0]:
        grad_input = empty(geom.input_shape, x.dtype)
        gx4 = grad_input.reshape(x4.shape)
        if grad_input.size:
            if direct:
                _direct_grad_input(gy4, w4, gx4, geom.groups, p)
            else:
                _im2col_grad_input(gy4, w4, gx4, geom, p)
    if mask[1]:
        if geom.batch == 0:  # a sum over no images
            grad_weight = zeros(geom.weight_shape, x.dtype)
        else:
            grad_weight = empty(geom.weight_shape, x.dtype)
            gw4 = grad_weight.reshape(w4.shape)
            if direct:
                _direct_grad_weight(gy4, x4, gw4, geom.groups, p)
            else:
                _im2col_grad_weight(gy4, x4, gw4, geom, p)
    if mask[2]:
        grad_bias = axis_sums(gy.reshape(geom.batch, geom.out_channels, p.ho * p.wo))
    return grad_input, grad_weight, grad_bias


def _direct_grad_input(gy4: Any, w4: Any, gx4: Any, groups: int, p: Plane) -> None:
    blocks, threads = _launch.elementwise(gx4.size, _direct.THREADS)
    kernel = _direct.conv_direct_kernels(gx4.dtype).grad_input
    launch(kernel, blocks, threads, gy4, w4, gx4, groups, *p.window)


def _direct_grad_weight(gy4: Any, x4: Any, gw4: Any, groups: int, p: Plane) -> None:
    length = x4.shape[0] * p.ho * p.wo
    blocks, threads, team = _launch.teams(gw4.size, length, BLOCK)
    kernel = _direct.conv_direct_kernels(gw4.dtype).grad_weight
    launch(kernel, blocks, threads, gy4, x4, gw4, team, groups, *p.window)


def _im2col_grad_input(gy4: Any, w4: Any, gx4: Any, geom: ConvGeometry, p: Plane) -> None:
    groups, batch = geom.groups, geom.batch
    cin, cout = geom.in_channels // groups, geom.out_channels // groups
    k, positions = cin * p.kh * p.kw, p.ho * p.wo
    w3 = w4.reshape(groups, cout, k)
    gy3 = gy4.reshape(batch * groups, cout, positions)
    if p.pointwise:  # the column gradient is the input gradient
        matmul(w3, gy3, gx4.reshape(batch * groups, cin, positions), trans_a=True)
        return
    rows = geom.in_channels * p.kh * p.kw
    chunk = chunk_images(geom, rows * positions * gx4.dtype.itemsize)
    colg = empty((chunk * groups, k, positions), gx4.dtype)
    col2im = _im2col.im2col_kernels(gx4.dtype).col2im
    for n0 in range(0, batch, chunk):
        nb = min(chunk, batch - n0)
        cols = colg[: nb * groups]
        matmul(w3, gy3[n0 * groups : (n0 + nb) * groups], cols, trans_a=True)
        target = gx4[n0 : n0 + nb]
        blocks, threads = _launch.elementwise(target.size, _im2col.THREADS)
        launch(
            col2im, blocks, threads, cols.reshape(nb, rows, positions), target, *p.window,
            p.ho, p.wo,
        )  # fmt: skip


def _im2col_grad_weight(gy4: Any, x4: Any, gw4: Any, geom: ConvGeometry, p: Plane) -> None:
    groups, batch = geom.groups, geom.batch
    cout = geom.out_channels // groups
    rows = geom.in_channels * p.kh * p.kw
    positions = p.ho * p.wo
    gw3 = gw4.reshape(groups, cout, rows // groups)
    per_image = (rows + geom.out_channels) * positions * x4.dtype.itemsize
    chunk = chunk_images(geom, per_image)
    col = empty((rows, chunk, positions), x4.dtype)
    gy_t = empty((geom.out_channels, chunk, positions), x4.dtype)
    gy3 = gy4.reshape(batch, geom.out_channels, positions)
    for n0 in range(0, batch, chunk):
        nb = min(chunk, batch - n0)
        # (rows, nb, P) and (C_out, nb, P): contiguous only for a full chunk, so the
        # buffers are used through their first rows * nb * P elements, reshaped
        cols = col.reshape(col.size)[: rows * nb * positions].reshape(rows, nb, positions)
        grads = gy_t.reshape(gy_t.size)[: geom.out_channels * nb * positions]
        grads = grads.reshape(geom.out_channels, nb, positions)
        _im2col_launch(x4, cols, n0, True, p)
        blocks, threads = _launch.elementwise(grads.size, _layout.THREADS)
        launch(_layout.swap01, blocks, threads, gy3[n0 : n0 + nb], grads)
        first = n0 == 0
        matmul(
            grads.reshape(groups, cout, nb * positions),
            cols.reshape(groups, rows // groups, nb * positions),
            gw3,
            trans_b=True,
            beta=0.0 if first else 1.0,
            c=None if first else gw3,
        )
