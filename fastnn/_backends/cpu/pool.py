"""Host-side wrappers of kernels/cpu/pool_max.pyx, pool_avg.pyx and pool_adaptive.pyx:
layout, allocation, per-thread scratch rows, threads.

Every pooling runs as a 2-D pooling of a stack of planes: (N, C, H, W) -> (N * C, H, W),
and a 1-D input (N, C, L) is a 2-D one of height 1 pooled with a 1 x k kernel.  The
kernels need C-contiguous float arrays and int64 indices; these wrappers make copies only
where the caller's arrays are not already so.
"""

from __future__ import annotations

import functools

import numpy as np

from fastnn._backends import register_adaptive_pools
from fastnn._backends.cpu import _outputs, pool_lean
from fastnn._dispatch import register, register_lean
from fastnn._geometry import AdaptiveGeometry, PoolGeometry
from fastnn._machine import l2_bytes
from fastnn._threads import team_size
from fastnn.kernels.cpu import pool_adaptive as _adaptive
from fastnn.kernels.cpu import pool_avg as _avg
from fastnn.kernels.cpu import pool_max as _max

_INT32_LIMIT = 2**31


def _planes(a, rows: int, cols: int) -> np.ndarray:
    """``a`` as a C-contiguous (N * C, rows, cols) stack of planes (a view when it can)."""
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a.reshape(-1, rows, cols)


#: A merged row (see :func:`_merged`) holds at most this fraction of the L2 cache in
#: float32 elements (32K on a 1 MiB L2): the kernels' per-thread row buffers stay in L2.
MERGED_ROW_L2 = 1 / 8


@functools.lru_cache(maxsize=256)
def _merged(g2: tuple[int, ...], count: int) -> tuple[int, ...] | None:
    """The plane geometry under which ``count`` planes of geometry ``g2`` pool as fewer,
    longer rows, when every row is pooled on its own (a one-row window, stride 1, no
    vertical padding) and the windows tile it exactly (window = stride along it, no
    padding, no gaps): then the rows of all planes, one after another, pool as rows m
    times as long.  A 1-D pooling of short signals otherwise pays the kernels' per-row
    setup on every row (8x1024x50, window 2: 0.89x torch).  None when the rows do not
    tile or stay alone."""
    h, w, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw = g2
    if not (kh == 1 and sh == 1 and ph == 0 and ho == h and kw == sw and pw == 0):
        return None
    if w != wo * sw or (dw != 1 and kw != 1) or w == 0:
        return None
    rows = count * h
    m = max(1, min(rows, int(MERGED_ROW_L2 * l2_bytes()) // 4 // w))
    while rows % m:
        m -= 1
    if m == 1:
        return None
    return (1, m * w, 1, m * wo, 1, kw, 1, sw, 0, 0, 1, dw)


def _check_flat_index(h: int, w: int) -> None:
    """The argmax kernels keep flat indices in int32."""
    if h * w >= _INT32_LIMIT:
        raise ValueError(
            f"max pooling on the cpu backend finds maxima in planes of fewer than 2**31 "
            f"elements, got a {h} x {w} plane"
        )


def _max_outputs(geom: PoolGeometry | AdaptiveGeometry, dtype, return_indices: bool):
    """A max pooling's output, and its int64 flat indices (None unless ``return_indices``)."""
    y = _outputs.empty_shaped(geom.output_shape, dtype)
    index = _outputs.empty_shaped(geom.output_shape, np.int64) if return_indices else None
    return y, index


def _max_planes(xs, ys, index, g2, threads: int) -> None:
    """Plain max pooling of the planes ``xs`` into ``ys`` (plane geometry ``g2``), the
    argmax into ``index`` when it is not None."""
    if index is None:
        _max.forward(xs, ys, g2, threads)
    else:
        _check_flat_index(g2[0], g2[1])
        _max.forward_with_indices(xs, ys, index.reshape(ys.shape), g2, threads)


def _flat_rows(gy, indices, ho: int, wo: int):
    """gy and its argmax ``indices`` as C-contiguous (N * C, ho * wo) rows, int64 indices."""
    # validated integers in [0, H * W) by fastnn.ops; any integer dtype is accepted
    index = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1, ho * wo)
    return np.ascontiguousarray(gy).reshape(-1, ho * wo), index


def _max_pool(x, geom: PoolGeometry, return_indices: bool):
    """max_pool{1,2}d: y, or (y, int64 flat indices) with ``return_indices`` (and the call
    noted for the lean path, pool_lean)."""
    out = _max_pool_run(x, geom, return_indices)
    pool_lean.remember("max", geom, x, return_indices)
    return out


def _max_pool_run(x, geom: PoolGeometry, return_indices: bool):
    g2 = geom.plane
    h, w, ho, wo = g2[:4]
    y, index = _max_outputs(geom, x.dtype, return_indices)
    if y.size:
        merged = None if return_indices else _merged(g2, y.size // (ho * wo))
        if merged is not None:  # flat indices would count along the merged rows
            g2 = merged
            h, w, ho, wo = g2[:4]
        _max_planes(_planes(x, h, w), y.reshape(-1, ho, wo), index, g2, team_size())
    return (y, index) if return_indices else y


def _max_pool_backward(gy, x, geom: PoolGeometry, indices):
    """max_pool{1,2}d_backward: scatter gy through ``indices``, or through the maxima
    found again in x when ``indices`` is None."""
    g2 = geom.plane
    h, w, ho, wo = g2[:4]
    gx = _outputs.empty_shaped(geom.input_shape, gy.dtype)
    if gx.size == 0:
        return gx
    threads = team_size()
    if indices is not None:
        gys, index = _flat_rows(gy, indices, ho, wo)
        _max.backward_from_indices(gys, index, gx.reshape(-1, h * w), g2, threads)
        return gx
    merged = _merged(g2, gx.size // (h * w))
    if merged is not None:
        g2 = merged
        h, w, ho, wo = g2[:4]
    _check_flat_index(h, w)
    _max.backward_recompute(
        _planes(gy, ho, wo), _planes(x, h, w), gx.reshape(-1, h, w), g2, threads
    )
    return gx


def _by_dtype(kernel) -> dict:
    """A fused-type Cython kernel's specialisations by NumPy dtype: calling one directly
    skips the fused dispatch (~0.2 us, a tenth of a tiny pooling call)."""
    return {np.dtype(np.float32): kernel["float"], np.dtype(np.float64): kernel["double"]}


_AVG_FORWARD = _by_dtype(_avg.forward)
_AVG_BACKWARD = _by_dtype(_avg.backward)


def _avg_planes(kernels, src, out_shape, src_hw, out_hw, geom: PoolGeometry, include_pad):
    """A new ``out_shape`` array of ``src``'s dtype, filled by the average-pooling kernel
    (forward or backward, by dtype in ``kernels``) from the (src_hw) planes of ``src`` into
    (out_hw) planes."""
    dtype = src.dtype
    out = _outputs.empty_shaped(out_shape, dtype)
    if out.size:
        g2 = geom.plane
        merged = _merged(g2, out.size // (out_hw[0] * out_hw[1]))
        if merged is not None:  # src_hw / out_hw: input and output planes, or the reverse
            forward = src_hw == tuple(g2[0:2])
            g2 = merged
            src_hw, out_hw = (g2[0:2], g2[2:4]) if forward else (g2[2:4], g2[0:2])
        planes = _planes(src, src_hw[0], src_hw[1])
        kernels[dtype](planes, out.reshape(planes.shape[0], out_hw[0], out_hw[1]), g2,
                       include_pad, team_size())  # fmt: skip
    return out


def _avg_pool(x, geom: PoolGeometry, count_include_pad: bool):
    """avg_pool{1,2}d (and the call noted for the lean path, pool_lean)."""
    out = _avg_pool_run(x, geom, count_include_pad)
    pool_lean.remember("avg", geom, x, count_include_pad)
    return out


def _avg_pool_run(x, geom: PoolGeometry, count_include_pad: bool):
    plane = geom.plane
    return _avg_planes(_AVG_FORWARD, x, geom.output_shape, plane[0:2], plane[2:4], geom,
                       count_include_pad)  # fmt: skip


def _avg_pool_backward(gy, geom: PoolGeometry, count_include_pad: bool):
    """avg_pool{1,2}d_backward: each output's share spread over its window."""
    plane = geom.plane
    return _avg_planes(_AVG_BACKWARD, gy, geom.input_shape, plane[2:4], plane[0:2], geom,
                       count_include_pad)  # fmt: skip


for _nd in (1, 2):
    register_lean(f"max_pool{_nd}d")(pool_lean.make_max(f"max_pool{_nd}d", _nd, _max_pool_run))
    register_lean(f"avg_pool{_nd}d")(pool_lean.make_avg(f"avg_pool{_nd}d", _nd, _avg_pool_run))
    register(f"max_pool{_nd}d", "cpu")(_max_pool)
    register(f"max_pool{_nd}d_backward", "cpu")(_max_pool_backward)
    register(f"avg_pool{_nd}d", "cpu")(_avg_pool)
    register(f"avg_pool{_nd}d_backward", "cpu")(_avg_pool_backward)


# ---------------------------------------------------------------------------------------
# Adaptive pooling (kernels/cpu/pool_adaptive.pyx).  When every In is a multiple of its
# Out, the windows are those of a plain pooling with kernel = stride = In / Out, and the
# row kernels above run it (except global average pooling, a flat sum per plane).
# ---------------------------------------------------------------------------------------


def _plain_geometry(geom: AdaptiveGeometry) -> tuple[int, ...] | None:
    """The 12-tuple plane geometry of the equal plain pooling, or None."""
    if not geom.divides:
        return None
    h, w, ho, wo = geom.plane
    kh, kw = h // ho, w // wo
    return (h, w, ho, wo, kh, kw, kh, kw, 0, 0, 1, 1)


def _adaptive_avg_pool(x, geom: AdaptiveGeometry):
    """adaptive_avg_pool{1,2}d."""
    h, w, ho, wo = geom.plane
    y = _outputs.empty_shaped(geom.output_shape, x.dtype)
    if y.size:
        threads = team_size()
        xs, ys = _planes(x, h, w), y.reshape(-1, ho, wo)
        plain = _plain_geometry(geom)
        if plain is not None and ho * wo > 1:
            _avg.forward(xs, ys, plain, True, threads)
        else:
            _adaptive.avg_forward(xs, ys, threads)
    return y


def _adaptive_avg_pool_backward(gy, geom: AdaptiveGeometry):
    """adaptive_avg_pool{1,2}d_backward."""
    h, w, ho, wo = geom.plane
    gx = _outputs.empty_shaped(geom.input_shape, gy.dtype)
    if gx.size:
        _adaptive.avg_backward(_planes(gy, ho, wo), gx.reshape(-1, h, w), team_size())
    return gx


def _adaptive_max_pool(x, geom: AdaptiveGeometry, return_indices: bool):
    """adaptive_max_pool2d: y, or (y, int64 flat indices)."""
    h, w, ho, wo = geom.plane
    y, index = _max_outputs(geom, x.dtype, return_indices)
    if y.size:
        threads = team_size()
        xs, ys = _planes(x, h, w), y.reshape(-1, ho, wo)
        plain = _plain_geometry(geom)
        if plain is None:
            index3 = index.reshape(ys.shape) if return_indices else None
            _adaptive.max_forward(xs, ys, index3, threads)
        else:
            _max_planes(xs, ys, index, plain, threads)
    return (y, index) if return_indices else y


def _adaptive_max_pool_backward(gy, x, geom: AdaptiveGeometry, indices):
    """adaptive_max_pool2d_backward: scatter gy through ``indices`` (found again in x
    when None); overlapping windows' shared maxima add up."""
    h, w, ho, wo = geom.plane
    gx = _outputs.empty_shaped(geom.input_shape, gy.dtype)
    if gx.size == 0:
        return gx
    if indices is None:
        _, indices = _adaptive_max_pool(x, geom, True)
    gys, index = _flat_rows(gy, indices, ho, wo)
    _adaptive.max_backward(gys, index, gx.reshape(-1, h * w), team_size())
    return gx


register_adaptive_pools(
    "cpu",
    _adaptive_avg_pool,
    _adaptive_avg_pool_backward,
    _adaptive_max_pool,
    _adaptive_max_pool_backward,
)
