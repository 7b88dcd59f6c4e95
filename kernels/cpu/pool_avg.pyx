# Average pooling, forward and backward, float32 and float64 through fused types.
#
# The loops are the C row kernels of pool_rows.h; this module splits the work over OpenMP
# threads with the GIL released.  Arrays arrive as C-contiguous stacks of planes,
# x (P, H, W) and y (P, Ho, Wo) with P = N * C, with per-thread scratch rows; the Python
# wrapper (fastnn/_backends/cpu/pool.py) makes them.  Window (oh, ow) is divided by
# div_h[oh] * div_w[ow], filled in here by PyTorch's count_include_pad / ceil_mode rules.
#
# The forward pass splits the P * Ho output rows into one contiguous run per thread; the
# backward pass, whose windows may overlap in the input gradient, gives each thread whole
# planes.
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free

from pool_common cimport (
    pool_avg_backward_f32, pool_avg_backward_f64, pool_avg_rows_f32, pool_avg_rows_f64,
    padded, plane_rows, pool_set_avx2, pool_shape, scratch_rows, unpack_shape,
)
from work_split cimport fnn_set_parallel_scale, split, threads_for


def use_avx2(bint enabled):
    """Run this module's kernels in their AVX2 build (True, the default where the CPU has
    AVX2) or their portable build (False), for tests.  Returns whether AVX2 is used."""
    return bool(pool_set_avx2(enabled))


cdef void _fill_divisors(floating* div, Py_ssize_t out, Py_ssize_t size, Py_ssize_t kernel,
                        Py_ssize_t stride, Py_ssize_t pad, bint count_include_pad) noexcept nogil:
    """div[o] = the divisor of window o along one axis: the window [start, start + kernel)
    clipped to the padded input [-pad, size + pad) when padding counts, otherwise to the
    input [0, size)."""
    cdef Py_ssize_t o, start, end
    for o in range(out):
        start = o * stride - pad
        end = min(start + kernel, size + pad)
        if count_include_pad:
            div[o] = end - start
        else:
            div[o] = min(end, size) - max(start, 0)


cdef void _divisors(const pool_shape* s, bint count_include_pad, floating* div) noexcept nogil:
    """div[0:Ho] = div_h, div[Ho:Ho + Wo] = div_w."""
    _fill_divisors(div, s.Ho, s.H, s.kh, s.sh, s.ph, count_include_pad)
    _fill_divisors(div + s.Ho, s.Wo, s.W, s.kw, s.sw, s.pw, count_include_pad)


cdef void _avg_run(const pool_shape* s, const floating* x, floating* y, Py_ssize_t lo,
                   Py_ssize_t hi, const floating* div_h, const floating* div_w,
                   floating* buf) noexcept nogil:
    """Output rows [lo, hi) of the flattened (plane, row) order."""
    cdef Py_ssize_t p, oh, stop
    cdef Py_ssize_t plane = s.H * s.W, out_plane = s.Ho * s.Wo
    while lo < hi:
        stop = plane_rows(s, lo, hi, &p, &oh)
        if floating is float:
            pool_avg_rows_f32(s, x + p * plane, y + p * out_plane, oh, stop, div_h, div_w,
                              buf)
        else:
            pool_avg_rows_f64(s, x + p * plane, y + p * out_plane, oh, stop, div_h, div_w,
                              buf)
        lo += stop - oh


def forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, tuple geometry,
            bint count_include_pad, int num_threads):
    """y = average pooling of x (P planes)."""
    cdef pool_shape s = unpack_shape(geometry)
    cdef Py_ssize_t items = x.shape[0] * s.Ho
    cdef int c, chunks = threads_for(x.shape[0] * s.H * s.W, items, num_threads)
    if items == 0:
        return
    cdef Py_ssize_t w = max(s.W, 1)
    # the divisors (Ho + Wo), then one scratch row (W) per chunk, each padded (no two
    # threads write one cache line)
    cdef Py_ssize_t head = padded(s.Ho + s.Wo), stride = padded(w)
    cdef floating* div = <floating*>scratch_rows(
        (head + chunks * stride) * sizeof(floating), "avg_pool")
    cdef floating* buf = div + head
    try:
        _divisors(&s, count_include_pad, div)
        if chunks == 1:  # no parallel region for one chunk
            with nogil:
                _avg_run(&s, &x[0, 0, 0], &y[0, 0, 0], 0, items, div, div + s.Ho, buf)
        else:
            for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
                _avg_run(&s, &x[0, 0, 0], &y[0, 0, 0], split(items, c, chunks),
                         split(items, c + 1, chunks), div, div + s.Ho, buf + c * stride)
    finally:
        free(div)


def backward(const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in, tuple geometry,
             bint count_include_pad, int num_threads):
    """grad_in = gradient of average pooling (P planes); the scratch rows (the divisors,
    then per chunk one input row and one output row) are allocated here."""
    cdef pool_shape s = unpack_shape(geometry)
    cdef Py_ssize_t planes = grad_in.shape[0]
    cdef int c, chunks = threads_for(planes * s.H * s.W, planes, num_threads)
    if planes == 0:
        return
    cdef Py_ssize_t w = max(s.W, 1), wo = max(s.Wo, 1)
    cdef Py_ssize_t head = padded(s.Ho + s.Wo), stride = padded(w + wo)
    cdef floating* div = <floating*>scratch_rows(
        (head + chunks * stride) * sizeof(floating), "avg_pool backward")
    cdef floating* rows = div + head
    try:
        _divisors(&s, count_include_pad, div)
        if chunks == 1:  # no parallel region for one chunk
            with nogil:
                _avg_backward_planes(&s, grad_out, grad_in, div, rows, rows + w, 0, planes)
        else:
            for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
                _avg_backward_planes(&s, grad_out, grad_in, div, rows + c * stride,
                                     rows + c * stride + w, split(planes, c, chunks),
                                     split(planes, c + 1, chunks))
    finally:
        free(div)


cdef void _avg_backward_planes(const pool_shape* s, const floating[:, :, ::1] grad_out,
                               floating[:, :, ::1] grad_in, const floating* div,
                               floating* buf, floating* share, Py_ssize_t lo,
                               Py_ssize_t hi) noexcept nogil:
    """Planes lo .. hi-1 of the average-pooling gradient."""
    cdef Py_ssize_t p
    for p in range(lo, hi):
        if floating is float:
            pool_avg_backward_f32(s, &grad_out[p, 0, 0], &grad_in[p, 0, 0], div,
                                  div + s.Ho, buf, share)
        else:
            pool_avg_backward_f64(s, &grad_out[p, 0, 0], &grad_in[p, 0, 0], div,
                                  div + s.Ho, buf, share)


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    fnn_set_parallel_scale(scale)
