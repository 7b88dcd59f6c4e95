# BP1 of the backprop sensitivity recursion for the pointwise losses (mse, bce), fused
# into one pass over (y, t, u); backprop_kernels.h holds the loop.  BP2-BP4 are GEMMs
# (kernels/cpu/gemm.pyx) and column sums (kernels/cpu/dense.pyx).
from cython.parallel cimport prange

cimport numpy as cnp

cimport dense_arrays as da

cnp.import_array()

from fastnn.kernels.cpu.output_cache import HANDLER as _CACHE, MIN_BYTES as _CACHE_MIN

#: Results of at least this many bytes come from fastnn's output cache (output_cache.h).
cdef Py_ssize_t _cache_min = _CACHE_MIN

cdef extern from "backprop_kernels.h" nogil:
    int FNN_LOSS_MSE, FNN_LOSS_BCE
    void fnn_output_sensitivity_f32(int loss, int act, const float* y, const float* t,
                                    const float* u, float* delta, Py_ssize_t n, float scale)
    void fnn_output_sensitivity_f64(int loss, int act, const double* y, const double* t,
                                    const double* u, double* delta, Py_ssize_t n,
                                    double scale)

#: Loss codes.
MSE = FNN_LOSS_MSE
BCE = FNN_LOSS_BCE

cdef Py_ssize_t PARALLEL_MIN = 1 << 14


def output_sensitivity(int loss, int act, y, target, u, double scale, int num_threads):
    """A new array delta = f'(u) * dJ/dy for the MSE or BCE loss (`loss` code) and the
    activation code `act`, every element times `scale`.  y, target, u: one shape."""
    cdef cnp.ndarray yc = da.carray(y), tc = da.carray(target), uc = da.carray(u)
    cdef cnp.ndarray out = da.empty_like_cached(yc, _CACHE, _cache_min)
    cdef int typenum = cnp.PyArray_TYPE(yc), chunks, c
    cdef Py_ssize_t n = cnp.PyArray_SIZE(yc)
    cdef char* yp = <char*>cnp.PyArray_DATA(yc)
    cdef char* tp = <char*>cnp.PyArray_DATA(tc)
    cdef char* up = <char*>cnp.PyArray_DATA(uc)
    cdef char* op = <char*>cnp.PyArray_DATA(out)
    if not (da.same_layout(yc, tc) and da.same_layout(yc, uc)):
        raise ValueError("output_sensitivity: y, target and u must have one shape and dtype")
    chunks = da.threads_for(n, PARALLEL_MIN, num_threads)
    if chunks == 1:
        with nogil:
            _chunk(loss, act, typenum, yp, tp, up, op, 0, n, scale)
    else:
        for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
            _chunk(loss, act, typenum, yp, tp, up, op, da.chunk_start(n, c, chunks),
                   da.chunk_start(n, c + 1, chunks), scale)
    return out


cdef void _chunk(int loss, int act, int typenum, char* yp, char* tp, char* up, char* op,
                 Py_ssize_t lo, Py_ssize_t hi, double scale) noexcept nogil:
    if typenum == cnp.NPY_FLOAT:
        fnn_output_sensitivity_f32(loss, act, <float*>yp + lo, <float*>tp + lo,
                                   <float*>up + lo, <float*>op + lo, hi - lo, <float>scale)
    else:
        fnn_output_sensitivity_f64(loss, act, <double*>yp + lo, <double*>tp + lo,
                                   <double*>up + lo, <double*>op + lo, hi - lo, scale)


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    da.fnn_set_parallel_scale(scale)


include "elementwise_level.pxi"  # set_elementwise_level, elementwise_level
