"""Host-side wrappers of kernels/cpu/pool_max.pyx and pool_avg.pyx: layout, allocation,
per-thread scratch rows, threads.

Every pooling runs as a 2-D pooling of a stack of planes: (N, C, H, W) -> (N * C, H, W),
and a 1-D input (N, C, L) is a 2-D one of height 1 pooled with a 1 x k kernel.  The
kernels need C-contiguous float arrays and int64 indices; these wrappers make copies only
where the caller's arrays are not already so.
"""

from __future__ import annotations

import numpy as np

from fastnn._args import PoolGeometry
from fastnn._dispatch import register
from fastnn._threads import get_num_threads
from fastnn.kernels.cpu import pool_avg as _avg
from fastnn.kernels.cpu import pool_max as _max

_INT32_LIMIT = 2**31


def _planes(a, rows: int, cols: int) -> np.ndarray:
    """``a`` as a C-contiguous (N * C, rows, cols) stack of planes (a view when it can)."""
    return np.ascontiguousarray(a).reshape(-1, rows, cols)


def _check_flat_index(h: int, w: int) -> None:
    """The argmax kernels keep flat indices in int32."""
    if h * w >= _INT32_LIMIT:
        raise ValueError(
            f"max pooling on the cpu backend finds maxima in planes of fewer than 2**31 "
            f"elements, got a {h} x {w} plane"
        )


def _max_pool(x, geom: PoolGeometry, return_indices: bool):
    """max_pool{1,2}d: y, or (y, int64 flat indices) with ``return_indices``."""
    g2 = geom.plane
    h, w, ho, wo = g2[:4]
    y = np.empty(geom.output_shape, dtype=x.dtype)
    index = np.empty(geom.output_shape, dtype=np.int64) if return_indices else None
    if y.size:
        threads = get_num_threads()
        xs, ys = _planes(x, h, w), y.reshape(-1, ho, wo)
        if return_indices:
            _check_flat_index(h, w)
            _max.forward_with_indices(xs, ys, index.reshape(ys.shape), g2, threads)
        else:
            _max.forward(xs, ys, g2, threads)
    return (y, index) if return_indices else y


def _max_pool_backward(gy, x, geom: PoolGeometry, indices):
    """max_pool{1,2}d_backward: scatter gy through ``indices``, or through the maxima
    found again in x when ``indices`` is None."""
    g2 = geom.plane
    h, w, ho, wo = g2[:4]
    gx = np.empty(geom.input_shape, dtype=gy.dtype)
    if gx.size == 0:
        return gx
    threads = get_num_threads()
    if indices is not None:
        # validated integers in [0, H * W) by fastnn.ops; any integer dtype is accepted
        index = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1, ho * wo)
        gys = np.ascontiguousarray(gy).reshape(-1, ho * wo)
        _max.backward_from_indices(gys, index, gx.reshape(-1, h * w), g2, threads)
        return gx
    _check_flat_index(h, w)
    _max.backward_recompute(
        _planes(gy, ho, wo),
        _planes(x, h, w),
        gx.reshape(-1, h, w),
        g2,
        np.empty((threads, w), dtype=x.dtype),
        np.empty((threads, w), dtype=np.int32),
        np.empty((threads, wo), dtype=x.dtype),
        np.empty((threads, wo), dtype=np.int32),
        threads,
    )
    return gx


def _avg_pool(x, geom: PoolGeometry, count_include_pad: bool):
    """avg_pool{1,2}d."""
    g2 = geom.plane
    h, w, ho, wo = g2[:4]
    y = np.empty(geom.output_shape, dtype=x.dtype)
    if y.size:
        threads = get_num_threads()
        _avg.forward(_planes(x, h, w), y.reshape(-1, ho, wo), g2, count_include_pad, threads)
    return y


def _avg_pool_backward(gy, geom: PoolGeometry, count_include_pad: bool):
    """avg_pool{1,2}d_backward: each output's share spread over its window."""
    g2 = geom.plane
    h, w, ho, wo = g2[:4]
    gx = np.empty(geom.input_shape, dtype=gy.dtype)
    if gx.size:
        threads = get_num_threads()
        _avg.backward(
            _planes(gy, ho, wo),
            gx.reshape(-1, h, w),
            g2,
            count_include_pad,
            np.empty(ho + wo, dtype=gy.dtype),
            np.empty((threads, w), dtype=gy.dtype),
            np.empty((threads, wo), dtype=gy.dtype),
            threads,
        )
    return gx


for _nd in (1, 2):
    register(f"max_pool{_nd}d", "cpu")(_max_pool)
    register(f"max_pool{_nd}d_backward", "cpu")(_max_pool_backward)
    register(f"avg_pool{_nd}d", "cpu")(_avg_pool)
    register(f"avg_pool{_nd}d_backward", "cpu")(_avg_pool_backward)
