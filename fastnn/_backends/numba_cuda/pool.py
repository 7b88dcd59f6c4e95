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


def _mapped(kernel: Any, src: Any, geom: Any, views: tuple, forward: bool, *extra: Any) -> Any:
    """A new output (``forward``) or input-shaped array that ``kernel`` fills, one thread
    an element, from ``src``; ``views`` are the (planes, h, w) shapes of input and output."""
    shape, src3, dst3 = (
        (geom.output_shape, *views) if forward else (geom.input_shape, *reversed(views))
    )
    out = empty(shape, src.dtype)
    _run(kernel, out.size, src.reshape(src3), out.reshape(dst3), *extra)
    return out


def _maxima(kernel: Any, x: Any, geom: Any, views: tuple, indices: bool, *extra: Any) -> tuple:
    """(output, int64 indices or None) of max-pool ``kernel`` over ``x`` (``views`` as in
    :func:`_mapped`)."""
    out = empty(geom.output_shape, x.dtype)
    idx = empty(geom.output_shape, np.int64) if indices else None
    idx3 = idx.reshape(views[1]) if idx is not None else None
    _run(kernel, out.size, x.reshape(views[0]), out.reshape(views[1]), idx3, *extra)
    return out, idx


def _views(geom: PoolGeometry) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The (planes, h, w) shapes of the input and the output of ``geom``."""
    height, width, *_, ho, wo = window(geom)
    planes = geom.batch * geom.channels
    return (planes, height, width), (planes, ho, wo)


def max_indices(x: Any, geom: PoolGeometry, with_indices: bool) -> tuple[Any, Any]:
    """(output, int64 indices or None) of max pooling ``x``."""
    taps = window(geom)[2:10]
    kernel = pool_kernels(x.dtype).max_forward
    return _maxima(kernel, x, geom, _views(geom), with_indices, *taps)


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
    taps = (*window(geom)[2:8], count_include_pad)
    return _mapped(pool_kernels(x.dtype).avg_forward, x, geom, _views(geom), True, *taps)


@register("avg_pool1d_backward", "numba-cuda")
@register("avg_pool2d_backward", "numba-cuda")
@device_arrays
def _avg_pool_backward(gy, geom: PoolGeometry, count_include_pad: bool):
    taps = (*window(geom)[2:8], count_include_pad)
    return _mapped(pool_kernels(gy.dtype).avg_backward, gy, geom, _views(geom), False, *taps)


# ---------------------------------------------------------------------------------------
# Adaptive pooling (kernels/numba_cuda/adaptive_pool.py)
# ---------------------------------------------------------------------------------------


def _adaptive_views(geom: AdaptiveGeometry) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The (planes, h, w) shapes of the input and the output of ``geom``."""
    h, w, ho, wo = geom.plane
    return (geom.planes, h, w), (geom.planes, ho, wo)


def _adaptive_planes(a: Any, geom: AdaptiveGeometry, output: bool) -> Any:
    return a.reshape(_adaptive_views(geom)[output])


def _adaptive_max(x: Any, geom: AdaptiveGeometry, with_indices: bool) -> tuple[Any, Any]:
    kernel = adaptive_kernels(x.dtype).max_forward
    return _maxima(kernel, x, geom, _adaptive_views(geom), with_indices)


@register("adaptive_avg_pool1d", "numba-cuda")
@register("adaptive_avg_pool2d", "numba-cuda")
@device_arrays
def _adaptive_avg_pool(x, geom: AdaptiveGeometry):
    kernel = adaptive_kernels(x.dtype).avg_forward
    return _mapped(kernel, x, geom, _adaptive_views(geom), True)


@register("adaptive_avg_pool1d_backward", "numba-cuda")
@register("adaptive_avg_pool2d_backward", "numba-cuda")
@device_arrays
def _adaptive_avg_pool_backward(gy, geom: AdaptiveGeometry):
    kernel = adaptive_kernels(gy.dtype).avg_backward
    return _mapped(kernel, gy, geom, _adaptive_views(geom), False)


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
