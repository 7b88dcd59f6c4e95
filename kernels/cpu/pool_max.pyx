# Max pooling, forward and backward, float32 and float64 through fused types.
#
# Arrays arrive as C-contiguous stacks of planes: x (P, H, W), y (P, Ho, Wo), where
# P = N * C; fastnn/backends/cpu/pool.py makes them so, after fastnn.ops validated the
# call.  One output row is computed in two passes through a padded row buffer (see
# pool_common.pxd): a vertical pass folds the real input rows of the window into the
# buffer, column by column (contiguous, vectorised), then a horizontal pass folds each
# window's columns of the buffer.
#
# PyTorch's rule, which the reference backend also follows: each window starts from its
# first real element and takes a later one when it is larger or NaN, in row-major order.
# So the result is NaN when a NaN is present (the index of the LAST NaN), otherwise the
# maximum (the index of its FIRST occurrence).  That rule does not depend on the order in
# which partial results are combined, which is what allows the two passes; ``_better``
# states it for two candidates.  Padding is never a candidate.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy, memset

from pool_common cimport PoolShape, real_taps, unpack_shape

# Below this many input elements an OpenMP region costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN = 1 << 15


cdef inline int _threads(Py_ssize_t work, int num_threads) noexcept nogil:
    return num_threads if work >= PARALLEL_MIN else 1


cdef inline floating _nan_max(floating a, floating b) noexcept nogil:
    """b when it is larger than a or NaN, else a: a NaN on either side wins."""
    return b if (b > a) | (b != b) else a


cdef inline bint _better(floating v, int64_t f, floating best, int64_t best_f) noexcept nogil:
    """Whether element (value v, flat index f) beats the current winner (best, best_f):
    among NaNs the largest index wins, a NaN beats any number, and among numbers the
    larger value wins, ties going to the smaller index."""
    if best != best:
        return (v != v) and f > best_f
    if v != v:
        return True
    return v > best or (v == best and f < best_f)


# ------------------------------------------------------------------------------------
# Vertical pass: fold the window's real rows into the padded row buffer
# ------------------------------------------------------------------------------------

cdef void _fold_rows(const floating* x, floating* c, Py_ssize_t oh,
                     const PoolShape* s) noexcept nogil:
    """c[iw] = NaN-propagating max over the real rows of output row oh's windows, for
    iw in [0, W) (c points at the first real column of the buffer)."""
    cdef Py_ssize_t w = s.width, first, stop, i, iw
    cdef Py_ssize_t start = oh * s.stride_h - s.pad_h
    cdef const floating* r0
    cdef const floating* r1
    real_taps(start, s.kernel_h, s.dil_h, s.height, &first, &stop)
    if first >= stop:  # a window of padding rows only
        for iw in range(w):
            c[iw] = -INFINITY
        return
    r0 = x + (start + first * s.dil_h) * w
    if stop - first == 1:
        memcpy(c, r0, w * sizeof(floating))
        return
    r1 = r0 + s.dil_h * w
    for iw in range(w):
        c[iw] = _nan_max(r0[iw], r1[iw])
    for i in range(first + 2, stop):
        r0 = x + (start + i * s.dil_h) * w
        for iw in range(w):
            c[iw] = _nan_max(c[iw], r0[iw])


cdef void _fold_rows_argmax(const floating* x, floating* c, int32_t* rows, Py_ssize_t oh,
                            const PoolShape* s) noexcept nogil:
    """Like _fold_rows, and rows[iw] = the input row of the winner in column iw (-1 when
    the window has padding rows only)."""
    cdef Py_ssize_t w = s.width, first, stop, i, iw
    cdef Py_ssize_t start = oh * s.stride_h - s.pad_h
    cdef int32_t ih
    cdef const floating* r
    cdef floating v
    cdef bint take
    real_taps(start, s.kernel_h, s.dil_h, s.height, &first, &stop)
    if first >= stop:
        for iw in range(w):
            c[iw] = -INFINITY
            rows[iw] = -1
        return
    ih = <int32_t>(start + first * s.dil_h)
    memcpy(c, x + ih * w, w * sizeof(floating))
    for iw in range(w):
        rows[iw] = ih
    for i in range(first + 1, stop):
        ih = <int32_t>(start + i * s.dil_h)
        r = x + ih * w
        for iw in range(w):
            v = r[iw]
            take = (v > c[iw]) | (v != v)
            c[iw] = v if take else c[iw]
            rows[iw] = ih if take else rows[iw]


# ------------------------------------------------------------------------------------
# Horizontal pass: fold each window's columns of the buffer
# ------------------------------------------------------------------------------------

cdef void _fold_columns(const floating* col, floating* y, const PoolShape* s) noexcept nogil:
    """y[ow] = NaN-propagating max of col[ow * sw + j * dw], j < kw (col is the whole
    padded buffer, padding columns hold -inf)."""
    cdef Py_ssize_t wo = s.out_width, kw = s.kernel_w, sw = s.stride_w, dw = s.dil_w
    cdef Py_ssize_t ow, j, off
    if kw == 2 and sw == 2 and dw == 1:  # the most common pooling, spelled out
        for ow in range(wo):
            y[ow] = _nan_max(col[2 * ow], col[2 * ow + 1])
        return
    if sw == 1:
        memcpy(y, col, wo * sizeof(floating))
    elif sw == 2:
        for ow in range(wo):
            y[ow] = col[2 * ow]
    else:
        for ow in range(wo):
            y[ow] = col[ow * sw]
    for j in range(1, kw):
        off = j * dw
        if sw == 1:
            for ow in range(wo):
                y[ow] = _nan_max(y[ow], col[ow + off])
        elif sw == 2:
            for ow in range(wo):
                y[ow] = _nan_max(y[ow], col[2 * ow + off])
        else:
            for ow in range(wo):
                y[ow] = _nan_max(y[ow], col[ow * sw + off])


cdef void _fold_columns_argmax(const floating* col, const int32_t* rows, floating* y,
                               int64_t* index, const PoolShape* s) noexcept nogil:
    """y[ow], index[ow] = the winner of window ow and its flat input index (row * W +
    column), or -inf and -1 for a window of padding only.  rows[p] < 0 marks padding."""
    cdef Py_ssize_t ow, j, p
    cdef floating v, best
    cdef int64_t f, best_f
    for ow in range(s.out_width):
        best = -INFINITY
        best_f = -1
        for j in range(s.kernel_w):
            p = ow * s.stride_w + j * s.dil_w
            if rows[p] < 0:
                continue
            v = col[p]
            f = rows[p] * s.width + (p - s.pad_w)
            if best_f < 0 or _better(v, f, best, best_f):
                best = v
                best_f = f
        y[ow] = best
        index[ow] = best_f


cdef inline void _argmax_row(const floating* x, floating* y, int64_t* index, floating* col,
                             int32_t* rows, Py_ssize_t oh, const PoolShape* s) noexcept nogil:
    _fold_rows_argmax(x, col + s.pad_w, rows + s.pad_w, oh, s)
    _fold_columns_argmax(col, rows, y, index, s)


# ------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------

def forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, tuple geometry,
            floating[:, ::1] col, int num_threads):
    """y = max pooling of x.  col: (num_threads, row_len) scratch filled with -inf."""
    cdef PoolShape s = unpack_shape(geometry)
    cdef Py_ssize_t item, p, oh, ho = s.out_height, items = x.shape[0] * ho
    cdef int n = _threads(x.shape[0] * x.shape[1] * x.shape[2], num_threads)
    cdef floating* c
    # one item per output row, so that a few large planes still use every thread
    for item in prange(items, nogil=True, schedule="static", num_threads=n):
        p = item // ho
        oh = item % ho
        c = &col[threadid(), 0]
        _fold_rows(&x[p, 0, 0], c + s.pad_w, oh, &s)
        _fold_columns(c, &y[p, oh, 0], &s)


def forward_with_indices(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                         int64_t[:, :, ::1] index, tuple geometry, floating[:, ::1] col,
                         int32_t[:, ::1] rows, int num_threads):
    """y, index = max pooling of x and the flat (row * W + column) index of each maximum.
    col: (num_threads, row_len) scratch; rows: same shape, filled with -1."""
    cdef PoolShape s = unpack_shape(geometry)
    cdef Py_ssize_t item, p, oh, ho = s.out_height, items = x.shape[0] * ho
    cdef int n = _threads(x.shape[0] * x.shape[1] * x.shape[2], num_threads)
    cdef int t
    for item in prange(items, nogil=True, schedule="static", num_threads=n):
        p = item // ho
        oh = item % ho
        t = threadid()
        _argmax_row(&x[p, 0, 0], &y[p, oh, 0], &index[p, oh, 0], &col[t, 0], &rows[t, 0],
                    oh, &s)


def backward_from_indices(const floating[:, ::1] grad_out, const int64_t[:, ::1] index,
                          floating[:, ::1] grad_in, int num_threads):
    """grad_in[p, index[p, o]] += grad_out[p, o]: planes (P, Ho*Wo) -> (P, H*W).  Entries
    outside [0, H*W) are skipped (fastnn.ops rejects them before this runs)."""
    cdef Py_ssize_t planes = grad_in.shape[0], size = grad_in.shape[1]
    cdef Py_ssize_t outs = grad_out.shape[1], p, o
    cdef int64_t f
    cdef floating* g
    cdef int n = _threads(planes * (size + outs), num_threads)
    for p in prange(planes, nogil=True, schedule="static", num_threads=n):
        g = &grad_in[p, 0]
        memset(g, 0, size * sizeof(floating))
        for o in range(outs):
            f = index[p, o]
            if 0 <= f < size:
                g[f] += grad_out[p, o]


def backward_recompute(const floating[:, :, ::1] grad_out, const floating[:, :, ::1] x,
                       floating[:, :, ::1] grad_in, tuple geometry, floating[:, ::1] col,
                       int32_t[:, ::1] rows, floating[:, ::1] values, int64_t[:, ::1] index,
                       int num_threads):
    """grad_in = gradient of max pooling, finding each window's argmax again in x.
    Scratch per thread: col and rows (row_len, as in forward_with_indices), values and
    index (Wo)."""
    cdef PoolShape s = unpack_shape(geometry)
    cdef Py_ssize_t planes = x.shape[0], size = s.height * s.width, p, oh, ow
    cdef int64_t f
    cdef int t
    cdef floating* g
    cdef int64_t* at
    cdef int n = _threads(planes * size, num_threads)
    for p in prange(planes, nogil=True, schedule="static", num_threads=n):
        t = threadid()
        g = &grad_in[p, 0, 0]
        at = &index[t, 0]
        memset(g, 0, size * sizeof(floating))
        for oh in range(s.out_height):
            _argmax_row(&x[p, 0, 0], &values[t, 0], at, &col[t, 0], &rows[t, 0], oh, &s)
            for ow in range(s.out_width):
                f = at[ow]
                if f >= 0:  # -1: a window of padding only, which has no input
                    g[f] += grad_out[p, oh, ow]
