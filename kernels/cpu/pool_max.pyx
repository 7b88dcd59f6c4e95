# Max pooling, forward and backward, float32 and float64 through fused types.
#
# The loops are the C row kernels of pool_rows.h; this module splits the work over OpenMP
# threads with the GIL released.  Arrays arrive as C-contiguous stacks of planes,
# x (P, H, W) and y (P, Ho, Wo) with P = N * C; the Python wrapper
# (fastnn/_backends/cpu/pool.py) makes them so after fastnn.ops validated the call.  The
# forward passes allocate their per-thread scratch rows here; the backward passes take
# theirs from the wrapper.
#
# Forward passes split the P * Ho output rows into one contiguous run per thread, so a
# few large planes still use every thread.  Backward passes scatter into the input
# gradient, where windows may overlap, so they give each thread whole planes instead.
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free

from pool_common cimport (
    pool_argmax_rows_f32, pool_argmax_rows_f64, pool_max_backward_indices_f32,
    pool_max_backward_indices_f64, pool_max_backward_recompute_f32,
    pool_max_backward_recompute_f64, pool_max_rows_f32, pool_max_rows_f64, pool_set_avx2,
    padded, plane_rows, pool_shape, scratch_rows, unpack_shape,
)
from work_split cimport fnn_set_parallel_scale, split, threads_for


def use_avx2(bint enabled):
    """Run this module's kernels in their AVX2 build (True, the default where the CPU has
    AVX2) or their portable build (False), for tests.  Returns whether AVX2 is used."""
    return bool(pool_set_avx2(enabled))


cdef void _max_run(const pool_shape* s, const floating* x, floating* y, Py_ssize_t lo,
                   Py_ssize_t hi, floating* buf) noexcept nogil:
    """Output rows [lo, hi) of the flattened (plane, row) order."""
    cdef Py_ssize_t p, oh, stop
    cdef Py_ssize_t plane = s.H * s.W, out_plane = s.Ho * s.Wo
    while lo < hi:
        stop = plane_rows(s, lo, hi, &p, &oh)
        if floating is float:
            pool_max_rows_f32(s, x + p * plane, y + p * out_plane, oh, stop, buf)
        else:
            pool_max_rows_f64(s, x + p * plane, y + p * out_plane, oh, stop, buf)
        lo += stop - oh


cdef void _argmax_run(const pool_shape* s, const floating* x, floating* y, int64_t* index,
                      Py_ssize_t lo, Py_ssize_t hi, floating* buf, int32_t* fbuf,
                      int32_t* frow) noexcept nogil:
    """Output rows [lo, hi) of the flattened (plane, row) order, with indices."""
    cdef Py_ssize_t p, oh, stop
    cdef Py_ssize_t plane = s.H * s.W, out_plane = s.Ho * s.Wo
    while lo < hi:
        stop = plane_rows(s, lo, hi, &p, &oh)
        if floating is float:
            pool_argmax_rows_f32(s, x + p * plane, y + p * out_plane, index + p * out_plane,
                                 oh, stop, buf, fbuf, frow)
        else:
            pool_argmax_rows_f64(s, x + p * plane, y + p * out_plane, index + p * out_plane,
                                 oh, stop, buf, fbuf, frow)
        lo += stop - oh


def forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, tuple geometry,
            int num_threads):
    """y = max pooling of x (P planes)."""
    cdef pool_shape s = unpack_shape(geometry)
    cdef Py_ssize_t items = x.shape[0] * s.Ho
    cdef int c, chunks = threads_for(x.shape[0] * s.H * s.W, items, num_threads)
    if items == 0:
        return
    cdef Py_ssize_t stride = padded(max(s.W, 1))  # no two threads write one cache line
    cdef floating* buf = <floating*>scratch_rows(chunks * stride * sizeof(floating),
                                                 "max_pool")
    try:
        if chunks == 1:  # no parallel region for one chunk
            with nogil:
                _max_run(&s, &x[0, 0, 0], &y[0, 0, 0], 0, items, buf)
        else:
            for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
                _max_run(&s, &x[0, 0, 0], &y[0, 0, 0], split(items, c, chunks),
                         split(items, c + 1, chunks), buf + c * stride)
    finally:
        free(buf)


def forward_with_indices(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                         int64_t[:, :, ::1] index, tuple geometry, int num_threads):
    """y, index = max pooling of x and the flat (row * W + column) index of each maximum.
    Needs H * W < 2**31."""
    cdef pool_shape s = unpack_shape(geometry)
    cdef Py_ssize_t items = x.shape[0] * s.Ho
    cdef int c, chunks = threads_for(x.shape[0] * s.H * s.W, items, num_threads)
    if items == 0:
        return
    cdef Py_ssize_t w = max(s.W, 1), wo = max(s.Wo, 1)
    # per chunk one row of values, then per chunk an input and an output row of indices,
    # each chunk's rows padded (no two threads write one cache line)
    cdef Py_ssize_t vstride = padded(w), istride = padded(w + wo)
    cdef floating* buf = <floating*>scratch_rows(
        chunks * (vstride * sizeof(floating) + istride * sizeof(int32_t)), "max_pool")
    cdef int32_t* fbuf = <int32_t*>(buf + chunks * vstride)
    try:
        if chunks == 1:  # no parallel region for one chunk
            with nogil:
                _argmax_run(&s, &x[0, 0, 0], &y[0, 0, 0], &index[0, 0, 0], 0, items, buf,
                            fbuf, fbuf + w)
        else:
            for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
                _argmax_run(&s, &x[0, 0, 0], &y[0, 0, 0], &index[0, 0, 0],
                            split(items, c, chunks), split(items, c + 1, chunks),
                            buf + c * vstride, fbuf + c * istride, fbuf + c * istride + w)
    finally:
        free(buf)


def backward_from_indices(const floating[:, ::1] grad_out, const int64_t[:, ::1] index,
                          floating[:, ::1] grad_in, tuple geometry, int num_threads):
    """grad_in[p] = 0, then grad_in[p, index[p, o]] += grad_out[p, o]: (P, Ho*Wo) planes
    to (P, H*W), each thread a run of whole planes.  Entries outside [0, H*W) are skipped
    (fastnn.ops rejects them)."""
    cdef pool_shape s = unpack_shape(geometry)
    cdef Py_ssize_t planes = grad_in.shape[0], outs = s.Ho * s.Wo, size = s.H * s.W
    cdef Py_ssize_t lo, hi
    cdef int c, chunks = threads_for(planes * size, planes, num_threads)
    if planes == 0 or size == 0:
        return
    cdef const floating* gy = &grad_out[0, 0] if outs else NULL
    cdef const int64_t* ix = &index[0, 0] if outs else NULL
    cdef floating* gx = &grad_in[0, 0]
    if chunks == 1:  # no parallel region for one chunk
        with nogil:
            _from_indices(&s, gy, ix, gx, 0, planes)
        return
    for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
        lo = split(planes, c, chunks)
        hi = split(planes, c + 1, chunks)
        _from_indices(&s, gy, ix, gx, lo, hi)


cdef void _from_indices(const pool_shape* s, const floating* gy, const int64_t* index,
                        floating* gx, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """backward_from_indices of planes [lo, hi)."""
    cdef Py_ssize_t outs = s.Ho * s.Wo, size = s.H * s.W
    if hi <= lo:
        return
    if floating is float:
        pool_max_backward_indices_f32(s, gy + lo * outs, index + lo * outs, gx + lo * size,
                                      hi - lo)
    else:
        pool_max_backward_indices_f64(s, gy + lo * outs, index + lo * outs, gx + lo * size,
                                      hi - lo)


def backward_recompute(const floating[:, :, ::1] grad_out, const floating[:, :, ::1] x,
                       floating[:, :, ::1] grad_in, tuple geometry, int num_threads):
    """grad_in = gradient of max pooling, finding each window's argmax again in x; the
    scratch rows (per chunk: an input row and an output row of values and of flat
    indices) are allocated here.  Needs H * W < 2**31."""
    cdef pool_shape s = unpack_shape(geometry)
    cdef Py_ssize_t planes = x.shape[0]
    cdef int c, chunks = threads_for(planes * s.H * s.W, planes, num_threads)
    if planes == 0:
        return
    cdef Py_ssize_t w = max(s.W, 1), wo = max(s.Wo, 1), per = padded(w + wo)
    # the value rows of every chunk, then their index rows
    cdef floating* vals = <floating*>scratch_rows(
        chunks * per * (sizeof(floating) + sizeof(int32_t)), "max_pool backward")
    cdef int32_t* flat = <int32_t*>(vals + chunks * per)
    try:
        if chunks == 1:  # no parallel region for one chunk
            with nogil:
                _recompute_planes(&s, grad_out, x, grad_in, vals, flat, vals + w, flat + w,
                                  0, planes)
        else:
            for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
                _recompute_planes(&s, grad_out, x, grad_in, vals + c * per, flat + c * per,
                                  vals + c * per + w, flat + c * per + w,
                                  split(planes, c, chunks), split(planes, c + 1, chunks))
    finally:
        free(vals)


cdef void _recompute_planes(const pool_shape* s, const floating[:, :, ::1] grad_out,
                            const floating[:, :, ::1] x, floating[:, :, ::1] grad_in,
                            floating* buf, int32_t* fbuf, floating* vrow, int32_t* frow,
                            Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Planes lo .. hi-1 of the max-pooling gradient, maxima found again in x."""
    cdef Py_ssize_t p
    for p in range(lo, hi):
        if floating is float:
            pool_max_backward_recompute_f32(s, &grad_out[p, 0, 0], &x[p, 0, 0],
                                            &grad_in[p, 0, 0], buf, fbuf, vrow, frow)
        else:
            pool_max_backward_recompute_f64(s, &grad_out[p, 0, 0], &x[p, 0, 0],
                                            &grad_in[p, 0, 0], buf, fbuf, vrow, frow)


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    fnn_set_parallel_scale(scale)
