"""Max and average pooling as a scan over kernel offsets, with PyTorch's rules.

Windows start at ``o * stride - padding``; ``ceil_mode`` may add a last window that hangs
over the right edge.  Max pooling never looks at padding: each window starts from its
first real element and takes a later one when it is larger or NaN (so NaN propagates and
the index of the last NaN wins, as in PyTorch's CPU kernel).  Average pooling divides by
the window size clipped to ``input + padding`` (``count_include_pad``) or by the number of
real elements in the window.
"""

from __future__ import annotations

import numpy as np

from fastnn._backends import register_adaptive_pools
from fastnn._backends.reference._util import f64, finish
from fastnn._dispatch import register
from fastnn._geometry import AdaptiveGeometry, PoolGeometry, window_bounds


def _spatial_2d(geom: PoolGeometry):
    """(in_size, kernel, stride, pad, dilation, out_size) as 2-D tuples."""
    fields = (geom.in_size, geom.kernel, geom.stride, geom.pad, geom.dilation, geom.out_size)
    if geom.nd == 2:
        return fields
    defaults = (1, 1, 1, 0, 1, 1)
    return tuple((d,) + f for d, f in zip(defaults, fields))


def _padded(a: np.ndarray, geom2d, fill: float) -> np.ndarray:
    """Pad the two spatial axes of ``a`` by ``pad`` before and enough after that the last
    (ceil_mode) window fits."""
    in_size, kernel, stride, pad, dil, out = geom2d
    widths = [(0, 0)] * (a.ndim - 2)
    for size, k, s, p, d, o in zip(in_size, kernel, stride, pad, dil, out):
        needed = (o - 1) * s + d * (k - 1) + 1
        widths.append((p, max(p, needed - size - p)))
    return np.pad(a, widths, constant_values=fill)


def _offsets(geom2d):
    """Every kernel offset (i, j) with the padded-input slices it reads."""
    _, (kh, kw), (sh, sw), _, (dh, dw), (ho, wo) = geom2d
    for i in range(kh):
        for j in range(kw):
            yield (
                slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                slice(j * dw, j * dw + sw * (wo - 1) + 1, sw),
            )


def _max_scan(x, geom: PoolGeometry):
    """(max values, flat indices) of every window, as float64 / int64 (N, C, Ho, Wo)."""
    g2 = _spatial_2d(geom)
    (h, w), _, _, _, _, (ho, wo) = g2
    n, c = geom.batch, geom.channels
    xp = _padded(f64(x).reshape(n, c, h, w), g2, -np.inf)
    where = _padded(np.arange(h * w).reshape(h, w), g2, -1)  # flat index, -1 in padding
    best = np.full((n, c, ho, wo), -np.inf)
    index = np.full((n, c, ho, wo), -1, dtype=np.int64)
    for rows, cols in _offsets(g2):
        value = xp[:, :, rows, cols]
        position = np.broadcast_to(where[rows, cols], value.shape)
        take = (position >= 0) & ((index < 0) | (value > best) | np.isnan(value))
        best = np.where(take, value, best)
        index = np.where(take, position, index)
    return best, index


def _maxima(scan, x, geom, return_indices: bool):
    """The output of a max pooling whose ``scan(x, geom)`` gives (maxima, argmaxes)."""
    best, index = scan(x, geom)
    out = finish(best.reshape(geom.output_shape), x.dtype)
    if return_indices:
        return out, np.ascontiguousarray(index.reshape(geom.output_shape))
    return out


def _to_argmax(scan, gy, x, geom, indices):
    """The gradient of a max pooling (``scan`` as in :func:`_maxima`): each output sends its
    gradient to its argmax (``indices``, or found again in ``x``); repeated argmaxes (as in
    overlapping windows) add up."""
    index = scan(x, geom)[1] if indices is None else np.asarray(indices, dtype=np.int64)
    planes = geom.batch * geom.channels
    windows = int(np.prod(geom.out_size))  # explicit: reshape(-1) fails for an empty batch
    gx = np.zeros((planes, int(np.prod(geom.in_size))))
    rows = np.arange(planes)[:, None]
    np.add.at(gx, (rows, index.reshape(planes, windows)), f64(gy).reshape(planes, windows))
    return finish(gx.reshape(geom.input_shape), gy.dtype)


def _max_pool(x, geom: PoolGeometry, return_indices: bool):
    return _maxima(_max_scan, x, geom, return_indices)


def _max_pool_backward(gy, x, geom: PoolGeometry, indices):
    # (every window holds an input element: fastnn._geometry rejects windows that read
    # only padding)
    return _to_argmax(_max_scan, gy, x, geom, indices)


def _divisors(geom: PoolGeometry, count_include_pad: bool) -> np.ndarray:
    """The divisor of every output window, (Ho, Wo)."""
    g2 = _spatial_2d(geom)
    per_axis = []
    for size, k, s, p, _, o in zip(*g2):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        with_pad = end - start
        real = np.minimum(end, size) - np.maximum(start, 0)
        per_axis.append(with_pad if count_include_pad else real)
    return np.outer(per_axis[0], per_axis[1]).astype(np.float64)


def _avg_pool(x, geom: PoolGeometry, count_include_pad: bool):
    g2 = _spatial_2d(geom)
    (h, w), _, _, _, _, (ho, wo) = g2
    xp = _padded(f64(x).reshape(geom.batch, geom.channels, h, w), g2, 0.0)
    total = np.zeros((geom.batch, geom.channels, ho, wo))
    for rows, cols in _offsets(g2):
        total += xp[:, :, rows, cols]
    out = total / _divisors(geom, count_include_pad)
    return finish(out.reshape(geom.output_shape), x.dtype)


def _avg_pool_backward(gy, geom: PoolGeometry, count_include_pad: bool):
    g2 = _spatial_2d(geom)
    (h, w), _, _, (ph, pw), _, (ho, wo) = g2
    share = f64(gy).reshape(geom.batch, geom.channels, ho, wo) / _divisors(geom, count_include_pad)
    gxp = _padded(np.zeros((geom.batch, geom.channels, h, w)), g2, 0.0)
    for rows, cols in _offsets(g2):  # every element of a window gets an equal share
        gxp[:, :, rows, cols] += share
    gx = gxp[:, :, ph : ph + h, pw : pw + w]
    return finish(gx.reshape(geom.input_shape), gy.dtype)


for _nd in (1, 2):
    register(f"max_pool{_nd}d", "reference")(_max_pool)
    register(f"max_pool{_nd}d_backward", "reference")(_max_pool_backward)
    register(f"avg_pool{_nd}d", "reference")(_avg_pool)
    register(f"avg_pool{_nd}d_backward", "reference")(_avg_pool_backward)


# ---------------------------------------------------------------------------------------
# Adaptive pooling: window i of an axis covers [floor(i * In / Out), ceil((i+1) In / Out))
# ---------------------------------------------------------------------------------------


def _adaptive_windows(geom: AdaptiveGeometry):
    """Every output window (oh, ow) with its rows and columns, as slices."""
    h, w, ho, wo = geom.plane
    (h0, h1), (w0, w1) = window_bounds(h, ho), window_bounds(w, wo)
    for i in range(ho):
        for j in range(wo):
            yield i, j, slice(int(h0[i]), int(h1[i])), slice(int(w0[j]), int(w1[j]))


def _adaptive_avg_pool(x, geom: AdaptiveGeometry):
    h, w, ho, wo = geom.plane
    xs = f64(x).reshape(geom.planes, h, w)
    out = np.empty((geom.planes, ho, wo))
    with np.errstate(invalid="ignore"):  # inf - inf in a window is NaN, as in PyTorch
        for i, j, rows, cols in _adaptive_windows(geom):
            out[:, i, j] = xs[:, rows, cols].mean(axis=(1, 2))
    return finish(out.reshape(geom.output_shape), x.dtype)


def _adaptive_avg_pool_backward(gy, geom: AdaptiveGeometry):
    h, w, ho, wo = geom.plane
    g = f64(gy).reshape(geom.planes, ho, wo)
    gx = np.zeros((geom.planes, h, w))
    for i, j, rows, cols in _adaptive_windows(geom):
        count = (rows.stop - rows.start) * (cols.stop - cols.start)
        gx[:, rows, cols] += (g[:, i, j] / count)[:, None, None]
    return finish(gx.reshape(geom.input_shape), gy.dtype)


def _adaptive_max_scan(x, geom: AdaptiveGeometry):
    """(max values, flat indices) (planes, Ho, Wo): each window scanned in row-major
    order from its first element, taking a later one when larger or NaN."""
    h, w, ho, wo = geom.plane
    xs = f64(x).reshape(geom.planes, h * w)
    where = np.arange(h * w).reshape(h, w)
    best = np.empty((geom.planes, ho, wo))
    index = np.empty((geom.planes, ho, wo), dtype=np.int64)
    for i, j, rows, cols in _adaptive_windows(geom):
        taps = where[rows, cols].reshape(-1)
        b = xs[:, taps[0]].copy()
        k = np.full(geom.planes, taps[0], dtype=np.int64)
        for t in taps[1:]:
            v = xs[:, t]
            take = (v > b) | np.isnan(v)
            b = np.where(take, v, b)
            k = np.where(take, t, k)
        best[:, i, j], index[:, i, j] = b, k
    return best, index


def _adaptive_max_pool(x, geom: AdaptiveGeometry, return_indices: bool):
    return _maxima(_adaptive_max_scan, x, geom, return_indices)


def _adaptive_max_pool_backward(gy, x, geom: AdaptiveGeometry, indices):
    return _to_argmax(_adaptive_max_scan, gy, x, geom, indices)


register_adaptive_pools(
    "reference",
    _adaptive_avg_pool,
    _adaptive_avg_pool_backward,
    _adaptive_max_pool,
    _adaptive_max_pool_backward,
)
