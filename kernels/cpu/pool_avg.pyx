# Average pooling, forward and backward, float32 and float64 through fused types.
#
# Arrays arrive as C-contiguous stacks of planes: x (P, H, W), y (P, Ho, Wo), where
# P = N * C; fastnn/backends/cpu/pool.py makes them so, after fastnn.ops validated the
# call, and computes the divisors: window ow of output row oh is divided by
# div_h[oh] * div_w[ow] (PyTorch's rules for count_include_pad and ceil_mode windows).
#
# Forward, per output row: a vertical pass sums the window's real input rows into a padded
# row buffer (see pool_common.pxd; padding columns hold 0), a horizontal pass sums each
# window's columns.  Backward runs the same two passes in reverse: each output's share
# is spread over a row buffer, which is then added to every real input row of the window.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from pool_common cimport PoolShape, real_taps, unpack_shape

# Below this many input elements an OpenMP region costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN = 1 << 15


cdef inline int _threads(Py_ssize_t work, int num_threads) noexcept nogil:
    return num_threads if work >= PARALLEL_MIN else 1


cdef void _sum_rows(const floating* x, floating* c, Py_ssize_t oh,
                    const PoolShape* s) noexcept nogil:
    """c[iw] = sum over the real rows of output row oh's windows, for iw in [0, W)."""
    cdef Py_ssize_t w = s.width, first, stop, i, iw
    cdef Py_ssize_t start = oh * s.stride_h - s.pad_h
    cdef const floating* r0
    cdef const floating* r1
    real_taps(start, s.kernel_h, s.dil_h, s.height, &first, &stop)
    if first >= stop:  # cannot happen for valid average pooling; kept total
        memset(c, 0, w * sizeof(floating))
        return
    r0 = x + (start + first * s.dil_h) * w
    if stop - first == 1:
        memcpy(c, r0, w * sizeof(floating))
        return
    r1 = r0 + s.dil_h * w
    for iw in range(w):
        c[iw] = r0[iw] + r1[iw]
    for i in range(first + 2, stop):
        r0 = x + (start + i * s.dil_h) * w
        for iw in range(w):
            c[iw] += r0[iw]


cdef void _sum_columns(const floating* col, floating* y, floating div_h,
                       const floating* div_w, const PoolShape* s) noexcept nogil:
    """y[ow] = sum of col[ow * sw + j * dw], j < kw, divided by div_h * div_w[ow]."""
    cdef Py_ssize_t wo = s.out_width, kw = s.kernel_w, sw = s.stride_w, dw = s.dil_w
    cdef Py_ssize_t ow, j, off
    if kw == 2 and sw == 2 and dw == 1:  # the most common pooling, spelled out
        for ow in range(wo):
            y[ow] = (col[2 * ow] + col[2 * ow + 1]) / (div_h * div_w[ow])
        return
    if sw == 1:
        memcpy(y, col, wo * sizeof(floating))
    else:
        for ow in range(wo):
            y[ow] = col[ow * sw]
    for j in range(1, kw):
        off = j * dw
        if sw == 1:
            for ow in range(wo):
                y[ow] += col[ow + off]
        elif sw == 2:
            for ow in range(wo):
                y[ow] += col[2 * ow + off]
        else:
            for ow in range(wo):
                y[ow] += col[ow * sw + off]
    for ow in range(wo):
        y[ow] /= div_h * div_w[ow]


cdef void _spread_columns(const floating* share, floating* col,
                          const PoolShape* s) noexcept nogil:
    """col[ow * sw + j * dw] += share[ow] for every window ow and j < kw, over a buffer
    that starts zeroed (the transpose of _sum_columns without the division)."""
    cdef Py_ssize_t wo = s.out_width, kw = s.kernel_w, sw = s.stride_w, dw = s.dil_w
    cdef Py_ssize_t ow, j, off
    if sw == kw and dw == 1:  # windows side by side: each column gets one share
        for ow in range(wo):
            for j in range(kw):
                col[ow * kw + j] = share[ow]
        memset(col + wo * kw, 0, (s.row_len - wo * kw) * sizeof(floating))
        return
    memset(col, 0, s.row_len * sizeof(floating))
    for j in range(kw):
        off = j * dw
        for ow in range(wo):
            col[ow * sw + off] += share[ow]


cdef void _spread_rows(const floating* c, floating* gx, Py_ssize_t oh,
                       const PoolShape* s) noexcept nogil:
    """gx[ih, :] += c[0:W] for every real input row ih of output row oh's windows."""
    cdef Py_ssize_t w = s.width, first, stop, i, iw
    cdef Py_ssize_t start = oh * s.stride_h - s.pad_h
    cdef floating* r
    real_taps(start, s.kernel_h, s.dil_h, s.height, &first, &stop)
    for i in range(first, stop):
        r = gx + (start + i * s.dil_h) * w
        for iw in range(w):
            r[iw] += c[iw]


def forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, tuple geometry,
            const floating[::1] div_h, const floating[::1] div_w, floating[:, ::1] col,
            int num_threads):
    """y = average pooling of x.  col: (num_threads, row_len) scratch filled with 0."""
    cdef PoolShape s = unpack_shape(geometry)
    cdef Py_ssize_t item, p, oh, ho = s.out_height, items = x.shape[0] * ho
    cdef int n = _threads(x.shape[0] * x.shape[1] * x.shape[2], num_threads)
    cdef floating* c
    # one item per output row, so that a few large planes still use every thread
    for item in prange(items, nogil=True, schedule="static", num_threads=n):
        p = item // ho
        oh = item % ho
        c = &col[threadid(), 0]
        _sum_rows(&x[p, 0, 0], c + s.pad_w, oh, &s)
        _sum_columns(c, &y[p, oh, 0], div_h[oh], &div_w[0], &s)


def backward(const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in, tuple geometry,
             const floating[::1] div_h, const floating[::1] div_w, floating[:, ::1] col,
             floating[:, ::1] share, int num_threads):
    """grad_in = gradient of average pooling.  Scratch per thread: col (row_len) and share
    (Wo)."""
    cdef PoolShape s = unpack_shape(geometry)
    cdef Py_ssize_t planes = grad_in.shape[0], p, oh, ow
    cdef Py_ssize_t size = s.height * s.width
    cdef int t
    cdef floating* c
    cdef floating* sh
    cdef floating* g
    cdef const floating* go
    cdef int n = _threads(planes * size, num_threads)
    for p in prange(planes, nogil=True, schedule="static", num_threads=n):
        t = threadid()
        c = &col[t, 0]
        sh = &share[t, 0]
        g = &grad_in[p, 0, 0]
        memset(g, 0, size * sizeof(floating))
        for oh in range(s.out_height):
            go = &grad_out[p, oh, 0]
            for ow in range(s.out_width):
                sh[ow] = go[ow] / (div_h[oh] * div_w[ow])
            _spread_columns(sh, c, &s)
            _spread_rows(c + s.pad_w, g, oh, &s)
