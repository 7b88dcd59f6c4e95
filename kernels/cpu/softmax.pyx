# softmax / log_softmax forward and backward along any axis, float32 and float64.
#
# The array is viewed as (outer, D, inner) around the reduced axis (softmax_rows.h has the
# loops).  inner == 1: rows of D contiguous elements, split over threads by rows.
# inner > 1: each (D, inner) slab is cut into column chunks narrow enough that a chunk's
# D x width block stays in L2 across the kernel's passes; threads take (slab, chunk)
# pairs.  Inputs that are not C-contiguous are copied once.
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc

cimport numpy as cnp

cimport dense_arrays as da

cnp.import_array()

from fastnn.kernels.cpu.output_cache import HANDLER as _CACHE, MIN_BYTES as _CACHE_MIN

#: Results of at least this many bytes come from fastnn's output cache (output_cache.h).
cdef Py_ssize_t _cache_min = _CACHE_MIN

cdef extern from "softmax_rows.h" nogil:
    void fnn_softmax_rows_f32(int log_mode, const float* x, float* y, Py_ssize_t rows,
                              Py_ssize_t d)
    void fnn_softmax_rows_f64(int log_mode, const double* x, double* y, Py_ssize_t rows,
                              Py_ssize_t d)
    void fnn_softmax_columns_f32(int log_mode, const float* x, float* y, Py_ssize_t d,
                                 Py_ssize_t inner, Py_ssize_t c0, Py_ssize_t c1, float* mx,
                                 double* s)
    void fnn_softmax_columns_f64(int log_mode, const double* x, double* y, Py_ssize_t d,
                                 Py_ssize_t inner, Py_ssize_t c0, Py_ssize_t c1, double* mx,
                                 double* s)
    void fnn_softmax_backward_rows_f32(int log_mode, const float* g, const float* y,
                                       float* gx, Py_ssize_t rows, Py_ssize_t d)
    void fnn_softmax_backward_rows_f64(int log_mode, const double* g, const double* y,
                                       double* gx, Py_ssize_t rows, Py_ssize_t d)
    void fnn_softmax_backward_columns_f32(int log_mode, const float* g, const float* y,
                                          float* gx, Py_ssize_t d, Py_ssize_t inner,
                                          Py_ssize_t c0, Py_ssize_t c1, double* s)
    void fnn_softmax_backward_columns_f64(int log_mode, const double* g, const double* y,
                                          double* gx, Py_ssize_t d, Py_ssize_t inner,
                                          Py_ssize_t c0, Py_ssize_t c1, double* s)

# Work (elements) below which a second thread does not pay for its wake-up.
cdef Py_ssize_t PARALLEL_MIN = 1 << 14
# Column chunks: a (D x width) block is read up to three times, so it should stay in
# cache between passes (CHUNK_ELEMENTS: about an L2); but each of its D rows is another
# page once rows are 4 KiB or longer, so narrow chunks pay a TLB miss per few elements
# (MIN_WIDTH keeps a row segment at 1 KiB or more: blocks then fall back on the L3).
cdef Py_ssize_t CHUNK_ELEMENTS = 1 << 16
cdef Py_ssize_t MIN_WIDTH = 256


cdef struct Shape3:
    Py_ssize_t outer, d, inner


cdef Shape3 _around(cnp.ndarray x, int dim):
    cdef Shape3 s
    cdef int i
    s.outer = 1
    s.inner = 1
    s.d = cnp.PyArray_DIM(x, dim)
    for i in range(dim):
        s.outer *= cnp.PyArray_DIM(x, i)
    for i in range(dim + 1, cnp.PyArray_NDIM(x)):
        s.inner *= cnp.PyArray_DIM(x, i)
    return s


cdef Py_ssize_t _chunk_width(Py_ssize_t d, Py_ssize_t inner):
    """Columns per chunk: a multiple of 16 (whole cache lines), at most inner."""
    cdef Py_ssize_t w = (CHUNK_ELEMENTS // max(d, 1)) & ~(<Py_ssize_t>15)
    w = max(w, MIN_WIDTH)
    return min(w, inner)


cdef void _rows(bint backward, int log_mode, int typenum, char* ap, char* yp, char* op,
               Shape3 s, int part, int parts) noexcept nogil:
    """Rows [part/parts, (part+1)/parts) of the (outer, D) array: out = softmax(a), or
    with `backward` the gradient from a = grad and the forward output y."""
    cdef Py_ssize_t r0 = da.split_start(s.outer, part, parts) * s.d
    cdef Py_ssize_t r1 = da.split_start(s.outer, part + 1, parts) * s.d
    cdef Py_ssize_t rows = (r1 - r0) // s.d
    if typenum == cnp.NPY_FLOAT:
        if backward:
            fnn_softmax_backward_rows_f32(log_mode, <float*>ap + r0, <float*>yp + r0,
                                          <float*>op + r0, rows, s.d)
        else:
            fnn_softmax_rows_f32(log_mode, <float*>ap + r0, <float*>op + r0, rows, s.d)
    elif backward:
        fnn_softmax_backward_rows_f64(log_mode, <double*>ap + r0, <double*>yp + r0,
                                      <double*>op + r0, rows, s.d)
    else:
        fnn_softmax_rows_f64(log_mode, <double*>ap + r0, <double*>op + r0, rows, s.d)


cdef void _columns(bint backward, int log_mode, int typenum, char* ap, char* yp, char* op,
                   Shape3 s, Py_ssize_t job, Py_ssize_t chunks, Py_ssize_t width,
                   double* buffer) noexcept nogil:
    """Column chunk job % chunks of slab job // chunks, as _rows; buffer: 2 * width
    doubles forward, width backward."""
    cdef Py_ssize_t base = (job // chunks) * s.d * s.inner, c0 = (job % chunks) * width
    cdef Py_ssize_t c1 = min(c0 + width, s.inner)
    if typenum == cnp.NPY_FLOAT:
        if backward:
            fnn_softmax_backward_columns_f32(log_mode, <float*>ap + base, <float*>yp + base,
                                             <float*>op + base, s.d, s.inner, c0, c1, buffer)
        else:
            fnn_softmax_columns_f32(log_mode, <float*>ap + base, <float*>op + base, s.d,
                                    s.inner, c0, c1, <float*>buffer, buffer + width)
    elif backward:
        fnn_softmax_backward_columns_f64(log_mode, <double*>ap + base, <double*>yp + base,
                                         <double*>op + base, s.d, s.inner, c0, c1, buffer)
    else:
        fnn_softmax_columns_f64(log_mode, <double*>ap + base, <double*>op + base, s.d,
                                s.inner, c0, c1, buffer, buffer + width)


cdef object _run(bint backward, int log_mode, cnp.ndarray a, cnp.ndarray y, cnp.ndarray out,
                 int dim, int num_threads):
    """out = softmax(a) along dim, or with `backward` its gradient (a = grad, y the
    forward output): rows or column chunks over threads."""
    cdef Shape3 s = _around(a, dim)
    cdef int typenum = cnp.PyArray_TYPE(a), threads, t
    cdef char* ap = <char*>cnp.PyArray_DATA(a)
    cdef char* yp = <char*>cnp.PyArray_DATA(y) if y is not None else NULL
    cdef char* op = <char*>cnp.PyArray_DATA(out)
    cdef Py_ssize_t width, chunks, jobs, job, per = 1 if backward else 2
    cdef double* buffer
    if cnp.PyArray_SIZE(a) == 0:
        return out
    threads = da.threads_for(cnp.PyArray_SIZE(a), PARALLEL_MIN, num_threads)
    if s.inner == 1:
        threads = <int>min(<Py_ssize_t>threads, s.outer)
        if threads == 1:
            with nogil:
                _rows(backward, log_mode, typenum, ap, yp, op, s, 0, 1)
        else:
            for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
                _rows(backward, log_mode, typenum, ap, yp, op, s, t, threads)
        return out
    width = _chunk_width(s.d, s.inner)
    chunks = (s.inner + width - 1) // width
    jobs = s.outer * chunks
    threads = <int>min(<Py_ssize_t>threads, jobs)
    buffer = <double*>malloc(threads * per * width * sizeof(double))
    if buffer == NULL:
        raise MemoryError("softmax backward: out of memory" if backward
                          else "softmax: out of memory")
    try:
        if threads == 1:
            with nogil:
                for job in range(jobs):
                    _columns(backward, log_mode, typenum, ap, yp, op, s, job, chunks, width,
                             buffer)
        else:
            for job in prange(jobs, nogil=True, schedule="static", num_threads=threads):
                _columns(backward, log_mode, typenum, ap, yp, op, s, job, chunks, width,
                         buffer + per * width * threadid())
    finally:
        free(buffer)
    return out


def forward(int log_mode, x, int dim, int num_threads):
    """A new array: softmax (log_mode 0) or log_softmax (1) of x along axis dim >= 0."""
    cdef cnp.ndarray xc = da.carray(x)
    return _run(False, log_mode, xc, None, da.empty_like_cached(xc, _CACHE, _cache_min), dim, num_threads)


def backward(int log_mode, grad, y, int dim, int num_threads):
    """A new array: the gradient of softmax (log_mode 0) or log_softmax (1) along dim
    from the incoming gradient and the forward output y (same shape)."""
    cdef cnp.ndarray gc = da.carray(grad), yc = da.carray(y)
    cdef cnp.ndarray out = da.empty_like_cached(gc, _CACHE, _cache_min)
    if not da.same_layout(gc, yc):
        raise ValueError("softmax backward: grad and y must have one shape and dtype")
    return _run(True, log_mode, gc, yc, out, dim, num_threads)


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    da.fnn_set_parallel_scale(scale)


include "elementwise_level.pxi"  # set_elementwise_level, elementwise_level
