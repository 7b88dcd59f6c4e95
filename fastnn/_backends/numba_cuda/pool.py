"""Max, average and adaptive pooling (1-d as H = 1) on the GPU: one launch per op, plus, for max
backward, the forward launch that finds the argmaxes when no indices are given, or the
check of the caller's indices (see kernels/numba_cuda/pool.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import device_arrays, empty, launch, to_host, zeros
from fastnn._dispatch import register
from fastnn._geometry import AdaptiveGeometry, PoolGeometry
from fastnn.kernels.numba_cuda.adaptive_pool import adaptive_kernels
from fastnn.kernels.numba_cuda.pool import THREADS, pool_kernels


def window(geom: PoolGeometry) -> tuple[int, ...]:
    """``(height, width, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)``: the 2-d view of
    ``geom`` (1-d gets a unit H axis)."""
    axes = (geom.in_size, geom.kernel, geom.stride, geom.pad, geom.dilation, geom.out_size)
    if geom.nd == 1:
        axes = tuple((unit, *t) for unit, t in zip((1, 1, 1, 0, 1, 1), axes))
    (height, width), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = axes
    return height, width, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo


def _planes(a: Any, geom: PoolGeometry, h: int, w: int) -> Any:
    return a.reshape(geom.batch * geom.channels, h, w)


def _run(kernel: Any, n: int, *args: Any) -> None:
    blocks, threads = _launch.elementwise(n, THREADS)
    launch(kernel, blocks, threads, *args)


def max_indices(x: Any, geom: PoolGeometry, with_indices: bool) -> tuple[Any, Any]:
    """(output, int64 indices or None) of max pooling ``x``."""
    height, width, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = window(geom)
    out = empty(geom.output_shape, x.dtype)
    idx = empty(geom.output_shape, np.int64) if with_indices else None
    idx3 = _planes(idx, geom, ho, wo) if idx is not None else None
    _run(
        pool_kernels(x.dtype).max_forward, out.size, _planes(x, geom, height, width),
        _planes(out, geom, ho, wo), idx3, kh, kw, sh, sw, ph, pw, dh, dw,
    )  # fmt: skip
    return out, idx


@register("max_pool1d", "numba-cuda")
@register("max_pool2d", "numba-cuda")
@device_arrays
def _max_pool(x, geom: PoolGeometry, return_indices: bool):
    out, idx = max_indices(x, geom, return_indices)
    return (out, idx) if return_indices else out


@register("max_pool1d_backward", "numba-cuda")
@register("max_pool2d_backward", "numba-cuda")
@device_arrays
def _max_pool_backward(gy, x, geom: PoolGeometry, indices):
    height, width, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = window(geom)
    kernels = pool_kernels(gy.dtype)
    gx = empty(geom.input_shape, gy.dtype)
    if gx.size == 0:
        return gx
    gx3 = _planes(gx, geom, height, width)
    gy3 = _planes(gy, geom, ho, wo)
    taps = (kh, kw, sh, sw, ph, pw, dh, dw)
    if indices is None:
        _, indices = max_indices(x, geom, True)
    elif not _indices_are_taps(indices, geom, kernels):
        _run(kernels.max_backward_scan, gx.size, gy3, _planes(indices, geom, ho, wo), gx3)
        return gx
    _run(kernels.max_backward, gx.size, gy3, _planes(indices, geom, ho, wo), gx3, *taps)
    return gx


def _indices_are_taps(indices: Any, geom: PoolGeometry, kernels: Any) -> bool:
    """Whether every index names a tap of its own window (what max_pool returns does)."""
    height, width, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = window(geom)
    bad = zeros(1, np.int32)
    _run(
        kernels.check_indices, indices.size,
        _planes(indices, geom, ho, wo), bad, height, width, kh, kw, sh, sw, ph, pw, dh, dw,
    )  # fmt: skip
    return not to_host(bad)[0]


@register("avg_pool1d", "numba-cuda")
@register("avg_pool2d", "numba-cuda")
@device_arrays
def _avg_pool(x, geom: PoolGeometry, count_include_pad: bool):
    height, width, kh, kw, sh, sw, ph, pw, _, _, ho, wo = window(geom)
    out = empty(geom.output_shape, x.dtype)
    _run(
        pool_kernels(x.dtype).avg_forward, out.size, _planes(x, geom, height, width),
        _planes(out, geom, ho, wo), kh, kw, sh, sw, ph, pw, count_include_pad,
    )  # fmt: skip
    return out


@register("avg_pool1d_backward", "numba-cuda")
@register("avg_pool2d_backward", "numba-cuda")
@device_arrays
def _avg_pool_backward(gy, geom: PoolGeometry, count_include_pad: bool):
    height, width, kh, kw, sh, sw, ph, pw, _, _, ho, wo = window(geom)
    gx = empty(geom.input_shape, gy.dtype)
    _run(
        pool_kernels(gy.dtype).avg_backward, gx.size, _planes(gy, geom, ho, wo),
        _planes(gx, geom, height, width), kh, kw, sh, sw, ph, pw, count_include_pad,
    )  # fmt: skip
    return gx


# ---------------------------------------------------------------------------------------
# Adaptive pooling (kernels/numba_cuda/adaptive_pool.py)
# ---------------------------------------------------------------------------------------


def _adaptive_planes(a: Any, geom: AdaptiveGeometry, output: bool) -> Any:
    h, w, ho, wo = geom.plane
    return a.reshape(geom.planes, ho, wo) if output else a.reshape(geom.planes, h, w)


def _adaptive_max(x: Any, geom: AdaptiveGeometry, with_indices: bool) -> tuple[Any, Any]:
    out = empty(geom.output_shape, x.dtype)
    idx = empty(geom.output_shape, np.int64) if with_indices else None
    idx3 = _adaptive_planes(idx, geom, True) if idx is not None else None
    _run(
        adaptive_kernels(x.dtype).max_forward, out.size, _adaptive_planes(x, geom, False),
        _adaptive_planes(out, geom, True), idx3,
    )  # fmt: skip
    return out, idx


@register("adaptive_avg_pool1d", "numba-cuda")
@register("adaptive_avg_pool2d", "numba-cuda")
@device_arrays
def _adaptive_avg_pool(x, geom: AdaptiveGeometry):
    out = empty(geom.output_shape, x.dtype)
    _run(
        adaptive_kernels(x.dtype).avg_forward, out.size, _adaptive_planes(x, geom, False),
        _adaptive_planes(out, geom, True),
    )  # fmt: skip
    return out


@register("adaptive_avg_pool1d_backward", "numba-cuda")
@register("adaptive_avg_pool2d_backward", "numba-cuda")
@device_arrays
def _adaptive_avg_pool_backward(gy, geom: AdaptiveGeometry):
    gx = empty(geom.input_shape, gy.dtype)
    _run(
        adaptive_kernels(gy.dtype).avg_backward, gx.size, _adaptive_planes(gy, geom, True),
        _adaptive_planes(gx, geom, False),
    )  # fmt: skip
    return gx


@register("adaptive_max_pool2d", "numba-cuda")
@device_arrays
def _adaptive_max_pool(x, geom: AdaptiveGeometry, return_indices: bool):
    out, idx = _adaptive_max(x, geom, return_indices)
    return (out, idx) if return_indices else out


@register("adaptive_max_pool2d_backward", "numba-cuda")
@device_arrays
def _adaptive_max_pool_backward(gy, x, geom: AdaptiveGeometry, indices):
    kernels = adaptive_kernels(gy.dtype)
    gx = empty(geom.input_shape, gy.dtype)
    if gx.size == 0:
        return gx
    gx3, gy3 = _adaptive_planes(gx, geom, False), _adaptive_planes(gy, geom, True)
    if indices is None:
        _, indices = _adaptive_max(x, geom, True)
    idx3 = _adaptive_planes(indices, geom, True)
    h, w, _, _ = geom.plane
    bad = zeros(1, np.int32)
    _run(kernels.check_indices, idx3.size, idx3, bad, h, w)
    if to_host(bad)[0]:  # an index outside its window: gather over every window
        _run(pool_kernels(gy.dtype).max_backward_scan, gx.size, gy3, idx3, gx3)
    else:
        _run(kernels.max_backward, gx.size, gy3, idx3, gx3)
    return gx
