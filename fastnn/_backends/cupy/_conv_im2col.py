"""Convolution as im2col + cuBLAS on the GPU (kernels/cuda/im2col.cu for the column
matrices, cupy.matmul for the products), the batch processed in chunks whose column
buffer stays under COLUMN_BUDGET bytes.

Forward: columns in (images, C_in * taps, P) layout and one batched GEMM per chunk,
``w (G, C_out/G, C_in/G * taps) @ col (n, G, C_in/G * taps, P)``, whose result is NCHW.
Backward: columns in (C_in * taps, images, P) layout, so the images join the inner
dimension of a single GEMM per group: ``gw = gy (G, C_out/G, n P) @ col^T`` and
``col_grad = w^T @ gy``, which col2im gathers back into the input gradient.
"""

from __future__ import annotations

from typing import Any

import cupy

from fastnn._backends.cupy._conv_shape import im2col_ints
from fastnn._backends.cupy._epilogue import bias_activation
from fastnn._backends.cupy._reduce import channel_sums
from fastnn._backends.cupy._runtime import contiguous, i32, i64, kernel, launch_1d
from fastnn._geometry import ConvGeometry, ConvPlane

#: Largest column buffer, in bytes.
COLUMN_BUDGET = 1 << 28


def _chunk(p: ConvPlane, itemsize: int) -> int:
    per_image = p.c * p.r * p.s * p.ho * p.wo * itemsize
    return max(1, min(p.n, COLUMN_BUDGET // per_image))


def _geometry_args(images: int, channels: int, p: ConvPlane, row_step: int, image_step: int):
    ints = (images, channels, *im2col_ints(p))
    return (*(i32(v) for v in ints), i64(row_step), i64(image_step))


def _im2col(x: Any, col: Any, images: int, channels: int, p: ConvPlane, row_step, image_step):
    kern = kernel("im2col.cu", "im2col", x.dtype)
    count = channels * p.r * p.s * images * p.ho * p.wo
    launch_1d(kern, count, (x, col, *_geometry_args(images, channels, p, row_step, image_step)))


def _col2im(col: Any, gx: Any, images: int, channels: int, p: ConvPlane, row_step, image_step):
    kern = kernel("im2col.cu", "col2im", gx.dtype)
    args = _geometry_args(images, channels, p, row_step, image_step)
    launch_1d(kern, gx.size, (col, gx, *args))


def forward(x: Any, w: Any, b: Any, geom: ConvGeometry, activation: str | None = None) -> Any:
    """y = activation(conv(x, w) + b) through columns and batched cuBLAS GEMMs; the bias
    and the activation in one epilogue pass (kernels/cuda/epilogue.cu)."""
    p = geom.plane
    n_all, channels, groups = p.n, p.c, p.g
    out_c, positions, taps = p.k, p.ho * p.wo, p.r * p.s
    rows_g = p.cg * taps
    y = cupy.empty((n_all, out_c, positions), dtype=x.dtype)
    if n_all == 0:
        return y.reshape(geom.output_shape)
    xc = contiguous(x)
    w3 = contiguous(w).reshape(groups, out_c // groups, rows_g)
    chunk = _chunk(p, x.dtype.itemsize)
    identity = p.pointwise  # a 1x1 kernel, stride 1, no padding: the columns are the input
    col = None if identity else cupy.empty((chunk, channels * taps, positions), dtype=x.dtype)
    for n0 in range(0, n_all, chunk):
        n = min(chunk, n_all - n0)
        if identity:
            cols = xc[n0 : n0 + n]
        else:
            cols = col[:n]
            image_step = channels * taps * positions
            _im2col(xc[n0 : n0 + n], cols, n, channels, p, positions, image_step)
        part = cupy.matmul(w3, cols.reshape(n, groups, rows_g, positions))  # (n, G, out/G, P)
        if n == n_all:
            y = contiguous(part).reshape(n_all, out_c, positions)
        else:
            y[n0 : n0 + n] = part.reshape(n, out_c, positions)
    bias_activation(y, b, activation, positions, out_c)
    return y.reshape(geom.output_shape)


def backward(gy: Any, x: Any, w: Any, geom: ConvGeometry, mask) -> tuple:
    """(grad_input, grad_weight, grad_bias), None where the mask is False."""
    p = geom.plane
    n_all, channels, groups = p.n, p.c, p.g
    out_c, positions, taps = p.k, p.ho * p.wo, p.r * p.s
    rows_g, out_g = p.cg * taps, p.kg
    gy3 = contiguous(gy).reshape(n_all, out_c, positions)
    gx = cupy.empty(geom.input_shape, dtype=x.dtype) if mask[0] else None
    gw = None
    gb = channel_sums(gy3, n_all, out_c, positions) if mask[2] else None
    if mask[1] and n_all == 0:
        gw = cupy.zeros(geom.weight_shape, dtype=x.dtype)
    if n_all == 0 or not (mask[0] or mask[1]):
        return gx, gw, gb
    xc = contiguous(x)
    w3 = contiguous(w).reshape(groups, out_g, rows_g)
    chunk = _chunk(p, x.dtype.itemsize)
    col = cupy.empty((channels * taps * chunk * positions,), dtype=x.dtype) if mask[1] else None
    for n0 in range(0, n_all, chunk):
        n = min(chunk, n_all - n0)
        # gy of the chunk as (G, out/G, n * P): the images join the GEMMs' inner dimension
        g_t = gy3[n0 : n0 + n].reshape(n, groups, out_g, positions).transpose(1, 2, 0, 3)
        g_t = contiguous(g_t).reshape(groups, out_g, n * positions)
        if mask[1]:
            cols = col[: channels * taps * n * positions]
            _im2col(xc[n0 : n0 + n], cols, n, channels, p, n * positions, positions)
            cols = cols.reshape(groups, rows_g, n * positions)
            part = cupy.matmul(g_t, cols.transpose(0, 2, 1))  # (G, out/G, rows/G)
            gw = contiguous(part) if gw is None else gw + part
        if mask[0]:
            col_grad = contiguous(cupy.matmul(w3.transpose(0, 2, 1), g_t))  # (G, rows/G, nP)
            _col2im(col_grad, gx[n0 : n0 + n], n, channels, p, n * positions, positions)
    if gw is not None:
        gw = contiguous(gw).reshape(geom.weight_shape)
    return gx, gw, gb
