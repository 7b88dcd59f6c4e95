# Batch normalisation on (N, C, *) arrays, float32 and float64: per-channel statistics,
# the normalising pass (with relu / relu6 fused) and the backward (two passes).
#
# The loops live in batch_norm.h (OpenMP over positions of the flat array, so they scale
# for any C; AVX2 chosen at run time).  This module turns numpy arrays into pointers
# (non-contiguous ones are copied once), allocates results and releases the GIL.  The
# calling Python layer (fastnn/_backends/cpu/normalization.py) has checked every shape and
# dtype; it computes the forward's per-channel coefficients, the backward's are computed
# here in C (per-call overhead matters for small inputs).
cimport numpy as cnp

cimport dense_arrays as da

cnp.import_array()

from fastnn.kernels.cpu.output_cache import HANDLER as _CACHE, MIN_BYTES as _CACHE_MIN

cdef Py_ssize_t _cache_min = _CACHE_MIN

cdef extern from "batch_norm.h" nogil:
    int FNN_BN_NONE, FNN_BN_RELU, FNN_BN_RELU6
    int fnn_bn_stats_f32(const float* x, Py_ssize_t N, Py_ssize_t C, Py_ssize_t P,
                         double* mean, double* var, int threads)
    int fnn_bn_stats_f64(const double* x, Py_ssize_t N, Py_ssize_t C, Py_ssize_t P,
                         double* mean, double* var, int threads)
    void fnn_bn_affine_f32(const float* x, float* y, Py_ssize_t N, Py_ssize_t C,
                           Py_ssize_t P, const float* m, const float* a, const float* b,
                           int act, int threads)
    void fnn_bn_affine_f64(const double* x, double* y, Py_ssize_t N, Py_ssize_t C,
                           Py_ssize_t P, const double* m, const double* a, const double* b,
                           int act, int threads)
    int fnn_bn_backward_f32(const float* g, const float* x, const float* y, int act,
                            Py_ssize_t N, Py_ssize_t C, Py_ssize_t P, const float* mean,
                            const float* invstd, const float* w, int training, float* gx,
                            float* gw, float* gb, int threads)
    int fnn_bn_backward_f64(const double* g, const double* x, const double* y, int act,
                            Py_ssize_t N, Py_ssize_t C, Py_ssize_t P, const double* mean,
                            const double* invstd, const double* w, int training, double* gx,
                            double* gw, double* gb, int threads)

# Activation codes, for the Python wrappers.
NONE = FNN_BN_NONE
RELU = FNN_BN_RELU
RELU6 = FNN_BN_RELU6


cdef inline Py_ssize_t _plane(cnp.ndarray x):
    """The product of the dims after the first two."""
    cdef Py_ssize_t p = 1
    cdef int d
    for d in range(2, cnp.PyArray_NDIM(x)):
        p *= cnp.PyArray_DIM(x, d)
    return p


cdef cnp.ndarray _doubles(Py_ssize_t n):
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    return <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)


cdef cnp.ndarray _channel(object v, int typenum, Py_ssize_t C):
    """A (C,) per-channel array as a C-contiguous array of `typenum`, checked."""
    cdef cnp.ndarray a = <cnp.ndarray>cnp.PyArray_FROMANY(v, typenum, 1, 1,
                                                          cnp.NPY_ARRAY_CARRAY_RO | cnp.NPY_ARRAY_FORCECAST)
    if cnp.PyArray_DIM(a, 0) != C:
        raise ValueError("batch_norm kernel: per-channel arrays must have C values")
    return a


def stats(object input, int num_threads):
    """(mean, biased var) per channel of the (N, C, *) input as float64 (C,) arrays; N
    times the trailing size must be > 0."""
    cdef cnp.ndarray x = da.carray(input)
    if cnp.PyArray_NDIM(x) < 2:
        raise ValueError("batch_norm stats: input must have at least 2 dims")
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0), C = cnp.PyArray_DIM(x, 1), P = _plane(x)
    if N * P <= 0:
        raise ValueError("batch_norm stats: no values per channel")
    cdef cnp.ndarray mean = _doubles(C)
    cdef cnp.ndarray var = _doubles(C)
    cdef int status
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef double* mp = <double*>cnp.PyArray_DATA(mean)
    cdef double* vp = <double*>cnp.PyArray_DATA(var)
    cdef int typenum = cnp.PyArray_TYPE(x)
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            status = fnn_bn_stats_f32(<const float*>xp, N, C, P, mp, vp, num_threads)
        else:
            status = fnn_bn_stats_f64(<const double*>xp, N, C, P, mp, vp, num_threads)
    if status != 0:
        raise MemoryError("batch_norm stats: out of memory")
    return mean, var


def affine(object input, object m, object a, object b, int act, int num_threads):
    """A new array act((x - m[c]) * a[c] + b[c]) for the (N, C, *) input."""
    cdef cnp.ndarray x = da.carray(input)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0), C = cnp.PyArray_DIM(x, 1), P = _plane(x)
    cdef cnp.ndarray mc = _channel(m, typenum, C)
    cdef cnp.ndarray ac = _channel(a, typenum, C)
    cdef cnp.ndarray bc = _channel(b, typenum, C)
    cdef cnp.ndarray out = da.empty_like_cached(x, _CACHE, _cache_min)
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* yp = cnp.PyArray_DATA(out)
    cdef void* mp = cnp.PyArray_DATA(mc)
    cdef void* ap = cnp.PyArray_DATA(ac)
    cdef void* bp = cnp.PyArray_DATA(bc)
    if act != FNN_BN_NONE and act != FNN_BN_RELU and act != FNN_BN_RELU6:
        raise ValueError(f"batch_norm affine: unknown activation code {act}")
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            fnn_bn_affine_f32(<const float*>xp, <float*>yp, N, C, P, <const float*>mp,
                              <const float*>ap, <const float*>bp, act, num_threads)
        else:
            fnn_bn_affine_f64(<const double*>xp, <double*>yp, N, C, P, <const double*>mp,
                              <const double*>ap, <const double*>bp, act, num_threads)
    return out


cdef tuple _grad_arrays(object grad, object input, object output, int act):
    cdef cnp.ndarray g = da.carray(grad)
    cdef cnp.ndarray x = da.carray(input)
    cdef cnp.ndarray y = da.carray(output) if act != FNN_BN_NONE else g
    if cnp.PyArray_NDIM(g) < 2 or not (da.same_layout(g, x) and da.same_layout(g, y)):
        raise ValueError("batch_norm backward: grad, input and output must match")
    if act != FNN_BN_NONE and act != FNN_BN_RELU and act != FNN_BN_RELU6:
        raise ValueError(f"batch_norm backward: unknown activation code {act}")
    return g, x, y


cdef void* _data_or_null(cnp.ndarray a):
    return NULL if a is None else cnp.PyArray_DATA(a)


def backward(object grad, object input, object output, int act, object mean, object invstd,
             object weight, bint training, bint want_gx, bint want_gw, bint want_gb,
             int num_threads):
    """(grad_input, grad_weight, grad_bias) of batch norm, None where not wanted: one
    reduction pass (when training or a parameter gradient is wanted) and one elementwise
    pass, the per-channel coefficients computed in between, in C."""
    cdef cnp.ndarray g, x, y
    g, x, y = _grad_arrays(grad, input, output, act)
    cdef int typenum = cnp.PyArray_TYPE(g)
    cdef Py_ssize_t N = cnp.PyArray_DIM(g, 0), C = cnp.PyArray_DIM(g, 1), P = _plane(g)
    cdef cnp.ndarray mc = _channel(mean, typenum, C)
    cdef cnp.ndarray ic = _channel(invstd, typenum, C)
    cdef cnp.ndarray wc = None if weight is None else _channel(weight, typenum, C)
    cdef cnp.ndarray gx = da.empty_like_cached(g, _CACHE, _cache_min) if want_gx else None
    cdef cnp.ndarray gw = _empty_channels(C, typenum) if want_gw else None
    cdef cnp.ndarray gb = _empty_channels(C, typenum) if want_gb else None
    cdef void* gp = cnp.PyArray_DATA(g)
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* yp = cnp.PyArray_DATA(y)
    cdef void* mp = cnp.PyArray_DATA(mc)
    cdef void* ip = cnp.PyArray_DATA(ic)
    cdef void* wp = _data_or_null(wc)
    cdef void* gxp = _data_or_null(gx)
    cdef void* gwp = _data_or_null(gw)
    cdef void* gbp = _data_or_null(gb)
    cdef int status
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            status = fnn_bn_backward_f32(<const float*>gp, <const float*>xp, <const float*>yp,
                                         act, N, C, P, <const float*>mp, <const float*>ip,
                                         <const float*>wp, training, <float*>gxp,
                                         <float*>gwp, <float*>gbp, num_threads)
        else:
            status = fnn_bn_backward_f64(<const double*>gp, <const double*>xp,
                                         <const double*>yp, act, N, C, P,
                                         <const double*>mp, <const double*>ip,
                                         <const double*>wp, training, <double*>gxp,
                                         <double*>gwp, <double*>gbp, num_threads)
    if status != 0:
        raise MemoryError("batch_norm backward: out of memory")
    return gx, gw, gb


cdef cnp.ndarray _empty_channels(Py_ssize_t C, int typenum):
    cdef cnp.npy_intp dims[1]
    dims[0] = C
    return <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, typenum, 0)


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    da.fnn_set_parallel_scale(scale)


include "elementwise_level.pxi"  # set_elementwise_level, elementwise_level
