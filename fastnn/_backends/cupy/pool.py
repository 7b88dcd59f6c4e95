"""Max, average and adaptive pooling (1-D and 2-D) and their gradients on the GPU
(kernels/cuda/pool.cu, adaptive_pool.cu), with PyTorch's rules; 1-D pooling runs as 2-D
with a height of 1.

The backward passes are gathers, one thread per input element, so they are
deterministic.  Max pooling's gather reads the indices of the windows around an input
element; when the caller passes indices that are not taps of their own windows (valid
positions, but not what the forward pass gives), a per-plane serial scatter takes over.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cupy
import numpy as np

from fastnn._backends.cupy._runtime import contiguous, cupy_arrays, i32, i64, kernel, launch_1d
from fastnn._dispatch import register
from fastnn._geometry import AdaptiveGeometry, PoolGeometry


def _planes(geom: PoolGeometry) -> int:
    return geom.batch * geom.channels


def _sizes(geom: PoolGeometry, dilation: bool = True) -> tuple:
    """(in_h, in_w, out_h, out_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w[, dil_h,
    dil_w]) as C ints; a 1-D pool is a 2-D pool over a height of 1."""
    if geom.nd == 2:
        (in_h, in_w), (out_h, out_w), (k_h, k_w) = geom.in_size, geom.out_size, geom.kernel
        (s_h, s_w), (p_h, p_w), (d_h, d_w) = geom.stride, geom.pad, geom.dilation
    else:
        in_h = out_h = k_h = s_h = d_h = 1
        p_h = 0
        (in_w,), (out_w,), (k_w,) = geom.in_size, geom.out_size, geom.kernel
        (s_w,), (p_w,), (d_w,) = geom.stride, geom.pad, geom.dilation
    values = [in_h, in_w, out_h, out_w, k_h, k_w, s_h, s_w, p_h, p_w]
    if dilation:
        values += [d_h, d_w]
    return tuple(i32(v) for v in values)


def _mapped(file: str, name: str, src: Any, shape: tuple, *extra: Any) -> Any:
    """A new array of ``shape`` (``src``'s dtype) that kernel ``name`` of ``file`` fills,
    one thread an element, from ``src`` and the ``extra`` arguments."""
    out = cupy.empty(shape, dtype=src.dtype)
    launch_1d(kernel(file, name, src.dtype), out.size, (contiguous(src), out, *extra))
    return out


def _max_forward(file: str, name: str, x: Any, y: Any, indices: Any | None, sizes: tuple) -> None:
    """Run max-pool kernel ``name`` of ``file`` into ``y`` (and ``indices`` if not None)."""
    kern = kernel(file, name, x.dtype, indices is not None)
    if indices is None:
        indices = cupy.empty((1,), dtype=np.int64)  # not written
    launch_1d(kern, y.size, (contiguous(x), y, indices, *sizes))


def _max_pooled(
    forward: Callable[[Any, Any, Any, Any | None], None], x: Any, geom: Any, return_indices: bool
) -> Any:
    """The pooled maxima of ``x`` (``forward`` fills them), with their int64 positions
    when ``return_indices``."""
    y = cupy.empty(geom.output_shape, dtype=x.dtype)
    indices = cupy.empty(geom.output_shape, dtype=np.int64) if return_indices else None
    forward(x, geom, y, indices)
    return (y, indices) if return_indices else y


def _scatter(gy: Any, indices: Any, gx: Any, planes: int, geom: Any) -> Any:
    """pool.cu's per-plane serial scatter of ``gy`` into ``gx`` (zeroed first) at
    ``indices``, for caller indices that are not taps of their own windows."""
    gx.fill(0)
    kern = kernel("pool.cu", "max_pool_backward_scatter", gy.dtype)
    outputs, inputs = math.prod(geom.out_size), math.prod(geom.in_size)
    args = (contiguous(gy), indices, gx, i64(planes), i64(outputs), i64(inputs))
    launch_1d(kern, planes, args)
    return gx


def _max_indices(x: Any, geom: PoolGeometry, y: Any, indices: Any | None) -> None:
    _max_forward("pool.cu", "max_pool_forward", x, y, indices, (i64(_planes(geom)), *_sizes(geom)))


@register("max_pool1d", "cupy")
@register("max_pool2d", "cupy")
@cupy_arrays
def max_pool(x: Any, geom: PoolGeometry, return_indices: bool) -> Any:
    """The maximum of every window (NaN propagates), with its int64 flat position."""
    return _max_pooled(_max_indices, x, geom, return_indices)


def _windows_hold(indices: Any, geom: PoolGeometry) -> bool:
    """True when every index is a tap of its own window (as the forward pass gives)."""
    bad = cupy.zeros((1,), dtype=np.int32)
    kern = kernel("pool.cu", "max_pool_check_indices", np.float32)  # no float data read
    launch_1d(kern, indices.size, (indices, bad, i64(_planes(geom)), *_sizes(geom)))
    return int(bad[0]) == 0


@register("max_pool1d_backward", "cupy")
@register("max_pool2d_backward", "cupy")
@cupy_arrays
def max_pool_backward(gy: Any, x: Any, geom: PoolGeometry, indices: Any | None) -> Any:
    """Each output's gradient goes to the input element its window chose."""
    gx = cupy.empty(geom.input_shape, dtype=gy.dtype)
    if gx.size == 0:
        return gx
    if indices is None:
        indices = cupy.empty(geom.output_shape, dtype=np.int64)
        _max_indices(x, geom, cupy.empty(geom.output_shape, dtype=x.dtype), indices)
    else:
        indices = contiguous(indices, dtype=np.int64)
        if not _windows_hold(indices, geom):
            return _scatter(gy, indices, gx, _planes(geom), geom)
    kern = kernel("pool.cu", "max_pool_backward_gather", gy.dtype)
    args = (contiguous(gy), indices, gx, i64(_planes(geom)), *_sizes(geom))
    launch_1d(kern, gx.size, args)
    return gx


@register("avg_pool1d", "cupy")
@register("avg_pool2d", "cupy")
@cupy_arrays
def avg_pool(x: Any, geom: PoolGeometry, count_include_pad: bool) -> Any:
    """The mean of every window (divisor by PyTorch's rule)."""
    sizes = (i64(_planes(geom)), *_sizes(geom, dilation=False), i32(count_include_pad))
    return _mapped("pool.cu", "avg_pool_forward", x, geom.output_shape, *sizes)


@register("avg_pool1d_backward", "cupy")
@register("avg_pool2d_backward", "cupy")
@cupy_arrays
def avg_pool_backward(gy: Any, geom: PoolGeometry, count_include_pad: bool) -> Any:
    """Every element of a window gets the window's gradient / its divisor."""
    sizes = (i64(_planes(geom)), *_sizes(geom, dilation=False), i32(count_include_pad))
    return _mapped("pool.cu", "avg_pool_backward", gy, geom.input_shape, *sizes)


# ---------------------------------------------------------------------------------------
# Adaptive pooling (kernels/cuda/adaptive_pool.cu)
# ---------------------------------------------------------------------------------------


def _adaptive_sizes(geom: AdaptiveGeometry) -> tuple:
    """(planes, in_h, in_w, out_h, out_w) as C long long / ints."""
    return (i64(geom.planes), *(i32(v) for v in geom.plane))


def _adaptive_max(x: Any, geom: AdaptiveGeometry, y: Any, indices: Any | None) -> None:
    _max_forward("adaptive_pool.cu", "adaptive_max_forward", x, y, indices, _adaptive_sizes(geom))


@register("adaptive_avg_pool1d", "cupy")
@register("adaptive_avg_pool2d", "cupy")
@cupy_arrays
def adaptive_avg_pool(x: Any, geom: AdaptiveGeometry) -> Any:
    """The mean of every adaptive window."""
    sizes = _adaptive_sizes(geom)
    return _mapped("adaptive_pool.cu", "adaptive_avg_forward", x, geom.output_shape, *sizes)


@register("adaptive_avg_pool1d_backward", "cupy")
@register("adaptive_avg_pool2d_backward", "cupy")
@cupy_arrays
def adaptive_avg_pool_backward(gy: Any, geom: AdaptiveGeometry) -> Any:
    """Every element gets gy / size of each window that contains it (a gather)."""
    sizes = _adaptive_sizes(geom)
    return _mapped("adaptive_pool.cu", "adaptive_avg_backward", gy, geom.input_shape, *sizes)


@register("adaptive_max_pool2d", "cupy")
@cupy_arrays
def adaptive_max_pool(x: Any, geom: AdaptiveGeometry, return_indices: bool) -> Any:
    """The maximum of every adaptive window (NaN propagates), with its int64 position."""
    return _max_pooled(_adaptive_max, x, geom, return_indices)


@register("adaptive_max_pool2d_backward", "cupy")
@cupy_arrays
def adaptive_max_pool_backward(gy: Any, x: Any, geom: AdaptiveGeometry, indices: Any) -> Any:
    """Each output's gradient goes to the element its window chose (a gather), or, for
    caller indices outside their windows, pool.cu's per-plane serial scatter."""
    gx = cupy.empty(geom.input_shape, dtype=gy.dtype)
    if gx.size == 0:
        return gx
    if indices is None:
        indices = cupy.empty(geom.output_shape, dtype=np.int64)
        _adaptive_max(x, geom, cupy.empty(geom.output_shape, dtype=x.dtype), indices)
    else:
        indices = contiguous(indices, dtype=np.int64)
        bad = cupy.zeros((1,), dtype=np.int32)
        kern = kernel("adaptive_pool.cu", "adaptive_max_check_indices", np.float32)
        launch_1d(kern, indices.size, (indices, bad, *_adaptive_sizes(geom)))
        if int(bad[0]):
            return _scatter(gy, indices, gx, geom.planes, geom)
    kern = kernel("adaptive_pool.cu", "adaptive_max_backward_gather", gy.dtype)
    launch_1d(kern, gx.size, (contiguous(gy), indices, gx, *_adaptive_sizes(geom)))
    return gx
