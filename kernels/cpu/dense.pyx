# Reductions: column sums (the dense layer's bias gradient, BP3), and the value range
# that the argument checks take of class targets, pooling indices and probabilities.
import numpy as np

cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t

cimport dense_arrays as da

cnp.import_array()

from fastnn.kernels.cpu.output_cache import HANDLER as _CACHE, MIN_BYTES as _CACHE_MIN

#: Results of at least this many bytes come from fastnn's output cache (output_cache.h).
cdef Py_ssize_t _cache_min = _CACHE_MIN

cdef extern from "dense_reduce.h" nogil:
    int fnn_column_sums_f32(const float* x, Py_ssize_t m, Py_ssize_t n, float* out,
                            int threads)
    int fnn_column_sums_f64(const double* x, Py_ssize_t m, Py_ssize_t n, double* out,
                            int threads)


def column_sums(x, int num_threads):
    """A new (n,) array: the sum over the rows of the 2-d (m, n) x, accumulated in double."""
    cdef cnp.ndarray xc = da.carray(x)
    if cnp.PyArray_NDIM(xc) != 2:
        raise ValueError("column_sums: x must be 2-d")
    cdef Py_ssize_t m = cnp.PyArray_DIM(xc, 0), n = cnp.PyArray_DIM(xc, 1)
    cdef int typenum = cnp.PyArray_TYPE(xc), status
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, typenum, 0)
    cdef void* xp = cnp.PyArray_DATA(xc)
    cdef void* op = cnp.PyArray_DATA(out)
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            status = fnn_column_sums_f32(<const float*>xp, m, n, <float*>op, num_threads)
        else:
            status = fnn_column_sums_f64(<const double*>xp, m, n, <double*>op, num_threads)
    if status != 0:
        raise MemoryError("column_sums: out of memory")
    return out


cdef extern from "small_dense.h" nogil:
    void fnn_small_linear_backward_f32(const float* gy, const float* x, const float* w,
                                       float* gi, float* gw, float* gb, Py_ssize_t m,
                                       Py_ssize_t n, Py_ssize_t k)
    void fnn_small_linear_backward_f64(const double* gy, const double* x, const double* w,
                                       double* gi, double* gw, double* gb, Py_ssize_t m,
                                       Py_ssize_t n, Py_ssize_t k)
    void fnn_small_linear_f32(const float* x, const float* w, const float* bias, float* y,
                              Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, int act)
    void fnn_small_linear_f64(const double* x, const double* w, const double* bias,
                              double* y, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, int act)


#: The largest m * n * k that :func:`small_linear_backward` takes (a bound on its cost:
#: single-threaded loops; whether a layer under it runs there is measured by the caller,
#: fastnn/_backends/cpu/_small_dense.py).
SMALL_LINEAR_WORK = 1 << 16


def small_linear_backward(gy, x, w, bint want_input, bint want_weight, bint want_bias):
    """(grad_input, grad_weight, grad_bias) of a tiny dense layer in one call: gy (m, n),
    x (m, k), w (n, k), all C-contiguous float32 or all float64; None where not wanted.
    The caller checks shapes and keeps m * n * k <= SMALL_LINEAR_WORK."""
    cdef cnp.ndarray g = da.carray(gy), xc = da.carray(x), wc = da.carray(w)
    cdef int typenum = cnp.PyArray_TYPE(g)
    if cnp.PyArray_TYPE(xc) != typenum or cnp.PyArray_TYPE(wc) != typenum:
        raise TypeError("small_linear_backward: gy, x and w must share a dtype")
    if cnp.PyArray_NDIM(g) != 2 or cnp.PyArray_NDIM(xc) != 2 or cnp.PyArray_NDIM(wc) != 2:
        raise ValueError("small_linear_backward: gy, x and w must be 2-d")
    cdef Py_ssize_t m = cnp.PyArray_DIM(g, 0), n = cnp.PyArray_DIM(g, 1)
    cdef Py_ssize_t k = cnp.PyArray_DIM(xc, 1)
    if (cnp.PyArray_DIM(xc, 0) != m or cnp.PyArray_DIM(wc, 0) != n
            or cnp.PyArray_DIM(wc, 1) != k):
        raise ValueError("small_linear_backward: shapes of gy (m, n), x (m, k), w (n, k) "
                         "disagree")
    if m * n * k > SMALL_LINEAR_WORK:
        raise ValueError(f"small_linear_backward: m * n * k = {m * n * k} exceeds "
                         f"{SMALL_LINEAR_WORK}")
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    gi = da.empty_2d_cached(m, k, typenum, _CACHE, _cache_min) if want_input else None
    gw = da.empty_2d_cached(n, k, typenum, _CACHE, _cache_min) if want_weight else None
    gb = <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, typenum, 0) if want_bias else None
    cdef void* pi = NULL if gi is None else cnp.PyArray_DATA(<cnp.ndarray>gi)
    cdef void* pw = NULL if gw is None else cnp.PyArray_DATA(<cnp.ndarray>gw)
    cdef void* pb = NULL if gb is None else cnp.PyArray_DATA(<cnp.ndarray>gb)
    cdef void* pg = cnp.PyArray_DATA(g)
    cdef void* px = cnp.PyArray_DATA(xc)
    cdef void* pwt = cnp.PyArray_DATA(wc)
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            fnn_small_linear_backward_f32(<const float*>pg, <const float*>px,
                                          <const float*>pwt, <float*>pi, <float*>pw,
                                          <float*>pb, m, n, k)
        else:
            fnn_small_linear_backward_f64(<const double*>pg, <const double*>px,
                                          <const double*>pwt, <double*>pi, <double*>pw,
                                          <double*>pb, m, n, k)
    return gi, gw, gb


def small_linear(x, w, bias, int act):
    """act(x @ w.T + bias) of a tiny dense layer in one call: x (m, k), w (n, k), bias (n,)
    or None, all float32 or all float64; act a kernel code (0 none, 1 relu, 2 sigmoid,
    3 tanh).  The caller keeps m * n * k <= SMALL_LINEAR_WORK."""
    cdef cnp.ndarray xc = da.carray(x), wc = da.carray(w), bc
    cdef int typenum = cnp.PyArray_TYPE(xc)
    if cnp.PyArray_TYPE(wc) != typenum:
        raise TypeError("small_linear: x and w must share a dtype")
    if cnp.PyArray_NDIM(xc) != 2 or cnp.PyArray_NDIM(wc) != 2:
        raise ValueError("small_linear: x and w must be 2-d")
    cdef Py_ssize_t m = cnp.PyArray_DIM(xc, 0), k = cnp.PyArray_DIM(xc, 1)
    cdef Py_ssize_t n = cnp.PyArray_DIM(wc, 0)
    if cnp.PyArray_DIM(wc, 1) != k:
        raise ValueError("small_linear: x (m, k) and w (n, k) disagree")
    if m * n * k > SMALL_LINEAR_WORK:
        raise ValueError(f"small_linear: m * n * k = {m * n * k} exceeds {SMALL_LINEAR_WORK}")
    if act < 0 or act > 3:
        raise ValueError(f"small_linear: unknown activation code {act}")
    cdef void* pb = NULL
    if bias is not None:
        bc = da.carray(bias)
        if cnp.PyArray_TYPE(bc) != typenum or cnp.PyArray_SIZE(bc) != n:
            raise ValueError(f"small_linear: bias must hold {n} values of x's dtype")
        pb = cnp.PyArray_DATA(bc)
    cdef cnp.ndarray y = da.empty_2d_cached(m, n, typenum, _CACHE, _cache_min)
    cdef void* px = cnp.PyArray_DATA(xc)
    cdef void* pw = cnp.PyArray_DATA(wc)
    cdef void* py = cnp.PyArray_DATA(y)
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            fnn_small_linear_f32(<const float*>px, <const float*>pw, <const float*>pb,
                                 <float*>py, m, n, k, act)
        else:
            fnn_small_linear_f64(<const double*>px, <const double*>pw, <const double*>pb,
                                 <double*>py, m, n, k, act)
    return y


cdef extern from "value_range.h" nogil:
    void fnn_range_i32(const int32_t* x, Py_ssize_t n, int64_t* lo, int64_t* hi)
    void fnn_range_i64(const int64_t* x, Py_ssize_t n, int64_t* lo, int64_t* hi)
    void fnn_range_f32(const void* x, Py_ssize_t n, int64_t* lo, int64_t* hi, int64_t* nan)
    void fnn_range_f64(const void* x, Py_ssize_t n, int64_t* lo, int64_t* hi, int64_t* nan)
    double fnn_from_key_f32(int64_t k)
    double fnn_from_key_f64(int64_t k)

#: Elements per thread below which value_range stays on one thread.
cdef Py_ssize_t RANGE_PER_THREAD = 1 << 16
cdef int RANGE_MAX_CHUNKS = 64

#: The dtypes value_range takes, native byte order (others: the caller uses NumPy).
RANGE_DTYPES = frozenset(np.dtype(name) for name in ("int32", "int64", "float32", "float64"))


cdef void _range_chunk(int kind, const char* x, Py_ssize_t n, int64_t* lo, int64_t* hi,
                       int64_t* nan) noexcept nogil:
    if kind == 0:
        fnn_range_i32(<const int32_t*>x, n, lo, hi)
    elif kind == 1:
        fnn_range_i64(<const int64_t*>x, n, lo, hi)
    elif kind == 2:
        fnn_range_f32(x, n, lo, hi, nan)
    else:
        fnn_range_f64(x, n, lo, hi, nan)


def value_range(x, int num_threads):
    """(min, max) of the non-empty, C-contiguous array x as Python numbers, in one pass
    (NaN, NaN when x holds a NaN).  dtype: one of RANGE_DTYPES."""
    cdef cnp.ndarray a = <cnp.ndarray?>x
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a), start, stop, item
    cdef int kind, chunks, c
    cdef int64_t lo[64]
    cdef int64_t hi[64]
    cdef int64_t nan[64]
    cdef int typenum = cnp.PyArray_TYPE(a)
    if n == 0 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError("value_range: x must be a non-empty C-contiguous array")
    item = cnp.PyArray_ITEMSIZE(a)
    if typenum == cnp.NPY_FLOAT:
        kind = 2
    elif typenum == cnp.NPY_DOUBLE:
        kind = 3
    elif cnp.PyTypeNum_ISINTEGER(typenum) and cnp.PyTypeNum_ISSIGNED(typenum) and item in (4, 8):
        kind = 0 if item == 4 else 1
    else:
        kind = -1
    if kind < 0 or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"value_range: unsupported dtype {a.dtype}")
    cdef const char* data = <const char*>cnp.PyArray_DATA(a)
    chunks = da.threads_for(n, RANGE_PER_THREAD, num_threads)
    chunks = chunks if chunks < RANGE_MAX_CHUNKS else RANGE_MAX_CHUNKS
    for c in range(chunks):
        nan[c] = 0
    with nogil:
        if chunks == 1:
            _range_chunk(kind, data, n, &lo[0], &hi[0], &nan[0])
        else:
            for c in prange(chunks, schedule="static", num_threads=chunks):
                start = da.split_start(n, c, chunks)
                stop = da.split_start(n, c + 1, chunks)
                _range_chunk(kind, data + start * item, stop - start, &lo[c], &hi[c], &nan[c])
    low = min([lo[c] for c in range(chunks)])
    high = max([hi[c] for c in range(chunks)])
    if kind < 2:
        return low, high
    if any([nan[c] for c in range(chunks)]):
        return float("nan"), float("nan")
    if kind == 2:
        return fnn_from_key_f32(low), fnn_from_key_f32(high)
    return fnn_from_key_f64(low), fnn_from_key_f64(high)


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    da.fnn_set_parallel_scale(scale)


include "elementwise_level.pxi"  # set_elementwise_level, elementwise_level
