# Losses (mse, binary cross-entropy, cross-entropy over logits) and their gradients,
# float32 and float64; loss_kernels.h holds the loops.
#
# Reductions: "none" returns the per-element (per-row for cross-entropy) losses; "sum"
# and "mean" a 0-d array.  Sums run in double over chunks, one per thread, added in a
# fixed order.  The Python layer (fastnn/ops/loss.py) has checked shapes, the [0, 1]
# range of BCE probabilities and the [0, C) range of class indices.
import numpy as np

from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

cimport numpy as cnp

cimport dense_arrays as da

cnp.import_array()

from fastnn.kernels.cpu.output_cache import HANDLER as _CACHE, MIN_BYTES as _CACHE_MIN

#: Results of at least this many bytes come from fastnn's output cache (output_cache.h).
cdef Py_ssize_t _cache_min = _CACHE_MIN

cdef extern from "loss_kernels.h" nogil:
    void fnn_pointwise_chunk_f32(int bce, int mode, const float* x, const float* t,
                                 float* out, Py_ssize_t lo, Py_ssize_t hi, double scale,
                                 double* s)
    void fnn_pointwise_chunk_f64(int bce, int mode, const double* x, const double* t,
                                 double* out, Py_ssize_t lo, Py_ssize_t hi, double scale,
                                 double* s)
    void fnn_cross_entropy_rows_f32(const float* x, const Py_ssize_t* target,
                                    Py_ssize_t rows, Py_ssize_t c, double* nll)
    void fnn_cross_entropy_rows_f64(const double* x, const Py_ssize_t* target,
                                    Py_ssize_t rows, Py_ssize_t c, double* nll)
    void fnn_cross_entropy_grad_rows_f32(const float* x, const Py_ssize_t* target,
                                         float* gx, Py_ssize_t rows, Py_ssize_t c,
                                         float scale)
    void fnn_cross_entropy_grad_rows_f64(const double* x, const Py_ssize_t* target,
                                         double* gx, Py_ssize_t rows, Py_ssize_t c,
                                         double scale)

cdef enum:
    R_NONE = 0
    R_MEAN = 1
    R_SUM = 2
    L_MSE = 0
    L_BCE = 1

#: Reduction codes, for the Python wrappers.
NONE, MEAN, SUM = R_NONE, R_MEAN, R_SUM
#: Pointwise loss codes.
MSE, BCE = L_MSE, L_BCE

cdef Py_ssize_t PARALLEL_MIN = 1 << 15
cdef Py_ssize_t BCE_PARALLEL_MIN = 1 << 12  # two logs per element: worth threads sooner


cdef object _scalar(double value, int typenum):
    return np.asarray(value, dtype=np.float32 if typenum == cnp.NPY_FLOAT else np.float64)


cdef double _scale(int reduction, Py_ssize_t count):
    if reduction != R_MEAN:
        return 1.0
    return 1.0 / count if count else float("nan")


cdef void _pointwise_chunk(int loss, int mode, int typenum, char* xp, char* tp, char* op,
                           Py_ssize_t lo, Py_ssize_t hi, double scale,
                           double* partial) noexcept nogil:
    """mode 0: partial sum; 1: per-element losses; 2: gradient (times scale)."""
    partial[0] = 0.0
    if typenum == cnp.NPY_FLOAT:
        fnn_pointwise_chunk_f32(loss != L_MSE, mode, <float*>xp, <float*>tp, <float*>op,
                                lo, hi, scale, partial)
    else:
        fnn_pointwise_chunk_f64(loss != L_MSE, mode, <double*>xp, <double*>tp,
                                <double*>op, lo, hi, scale, partial)


cdef object _pointwise(int loss, int mode, x, target, int reduction, int num_threads):
    cdef cnp.ndarray xc = da.carray(x), tc = da.carray(target), out = None
    cdef int typenum = cnp.PyArray_TYPE(xc), chunks, c
    cdef Py_ssize_t n = cnp.PyArray_SIZE(xc)
    cdef double scale = _scale(reduction, n), total = 0.0
    cdef double* partial
    cdef char* op = NULL
    if not da.same_layout(xc, tc):
        raise ValueError("loss: input and target must have one shape and dtype")
    if mode != 0:
        out = da.empty_like_cached(xc, _CACHE, _cache_min)
        op = <char*>cnp.PyArray_DATA(out)
    chunks = da.threads_for(n, BCE_PARALLEL_MIN if loss == L_BCE else PARALLEL_MIN,
                            num_threads)
    partial = <double*>malloc(chunks * sizeof(double))
    if partial == NULL:
        raise MemoryError("loss: out of memory")
    cdef char* xp = <char*>cnp.PyArray_DATA(xc)
    cdef char* tp = <char*>cnp.PyArray_DATA(tc)
    try:
        if chunks == 1:
            with nogil:
                _pointwise_chunk(loss, mode, typenum, xp, tp, op, 0, n, scale, partial)
        else:
            for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
                _pointwise_chunk(loss, mode, typenum, xp, tp, op,
                                 da.chunk_start(n, c, chunks), da.chunk_start(n, c + 1, chunks),
                                 scale, partial + c)
        for c in range(chunks):
            total += partial[c]
    finally:
        free(partial)
    if mode != 0:
        return out
    return _scalar(total * scale, typenum)


def pointwise(int loss, x, target, int reduction, int num_threads):
    """The L_MSE or L_BCE loss (`loss` code) of x against target, reduced by `reduction`."""
    return _pointwise(loss, 1 if reduction == R_NONE else 0, x, target, reduction, num_threads)


def pointwise_backward(int loss, x, target, int reduction, int num_threads):
    """d loss / d x of the L_MSE or L_BCE loss (`loss` code), reduced by `reduction`."""
    return _pointwise(loss, 2, x, target, reduction, num_threads)


cdef cnp.ndarray _class_indices(target, Py_ssize_t classes):
    """target as contiguous intp; every index must be in [0, classes) (the Python layer
    checked already: this guard only keeps a direct caller from reading out of bounds)."""
    cdef cnp.ndarray t = np.ascontiguousarray(target, dtype=np.intp)
    cdef const Py_ssize_t* tp = <const Py_ssize_t*>cnp.PyArray_DATA(t)
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(t)
    cdef bint bad = False
    with nogil:
        for i in range(n):  # one pass in C (two NumPy reductions cost more on small batches)
            if tp[i] < 0 or tp[i] >= classes:
                bad = True
                break
    if bad:
        raise ValueError(f"cross_entropy: class indices must be in [0, {classes})")
    return t


cdef void _ce_rows(int typenum, char* xp, Py_ssize_t* tp, double* nll, char* grad,
                   double scale, Py_ssize_t rows, Py_ssize_t c, int part,
                   int parts) noexcept nogil:
    """Rows [part/parts, (part+1)/parts): the losses into nll, or (nll NULL) the gradient
    times scale into grad."""
    cdef Py_ssize_t r0 = da.split_start(rows, part, parts)
    cdef Py_ssize_t r1 = da.split_start(rows, part + 1, parts)
    if nll != NULL:
        if typenum == cnp.NPY_FLOAT:
            fnn_cross_entropy_rows_f32(<float*>xp + r0 * c, tp + r0, r1 - r0, c, nll + r0)
        else:
            fnn_cross_entropy_rows_f64(<double*>xp + r0 * c, tp + r0, r1 - r0, c, nll + r0)
    elif typenum == cnp.NPY_FLOAT:
        fnn_cross_entropy_grad_rows_f32(<float*>xp + r0 * c, tp + r0, <float*>grad + r0 * c,
                                        r1 - r0, c, <float>scale)
    else:
        fnn_cross_entropy_grad_rows_f64(<double*>xp + r0 * c, tp + r0, <double*>grad + r0 * c,
                                        r1 - r0, c, scale)


cdef int _ce_run(cnp.ndarray xc, cnp.ndarray tc, double* nll, char* grad, double scale,
                 int num_threads) except -1:
    """Rows of logits xc (N, C) against class indices tc: the losses into nll, or with
    nll NULL the gradient times scale into grad; the rows are split over threads."""
    cdef int typenum = cnp.PyArray_TYPE(xc), threads, t
    cdef Py_ssize_t rows = cnp.PyArray_DIM(xc, 0), c = cnp.PyArray_DIM(xc, 1)
    cdef char* xp = <char*>cnp.PyArray_DATA(xc)
    cdef Py_ssize_t* tp = <Py_ssize_t*>cnp.PyArray_DATA(tc)
    if cnp.PyArray_SIZE(tc) != rows:
        raise ValueError("cross_entropy: one target per row")
    threads = min(da.threads_for(rows * c, PARALLEL_MIN, num_threads), max(rows, 1))
    if threads == 1:
        with nogil:
            _ce_rows(typenum, xp, tp, nll, grad, scale, rows, c, 0, 1)
    else:
        for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
            _ce_rows(typenum, xp, tp, nll, grad, scale, rows, c, t, threads)
    return 0


def cross_entropy(x, target, int reduction, int num_threads):
    """Cross-entropy of logits x (N, C) against class indices target (N,)."""
    cdef cnp.ndarray xc = da.carray(x), tc = _class_indices(target, cnp.PyArray_DIM(xc, 1))
    cdef Py_ssize_t rows = cnp.PyArray_DIM(xc, 0)
    cdef cnp.ndarray nll = np.empty(rows, dtype=np.float64)
    cdef double* np_ = <double*>cnp.PyArray_DATA(nll)
    _ce_run(xc, tc, np_, NULL, 0.0, num_threads)
    if reduction == R_NONE:
        return nll.astype(xc.dtype)
    cdef double total = 0.0
    cdef Py_ssize_t i
    for i in range(rows):  # in order: the same sum whatever the thread count
        total += np_[i]
    return _scalar(total * _scale(reduction, rows), cnp.PyArray_TYPE(xc))


def cross_entropy_backward(x, target, int reduction, int num_threads):
    """d cross_entropy / d logits: (softmax(x) - onehot(target)) * scale, (N, C)."""
    cdef cnp.ndarray xc = da.carray(x), tc = _class_indices(target, cnp.PyArray_DIM(xc, 1))
    cdef cnp.ndarray out = da.empty_like_cached(xc, _CACHE, _cache_min)
    _ce_run(xc, tc, NULL, <char*>cnp.PyArray_DATA(out),
            _scale(reduction, cnp.PyArray_DIM(xc, 0)), num_threads)
    return out


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    da.fnn_set_parallel_scale(scale)


include "elementwise_level.pxi"  # set_elementwise_level, elementwise_level
