# Adaptive pooling, forward and backward, float32 and float64 through fused types.
#
# The loops are the C kernels of pool_adaptive.h; this module splits the planes (P = N * C)
# over OpenMP threads with the GIL released, one contiguous run of planes per thread, and
# skips the parallel region for small inputs.  Arrays arrive C-contiguous as stacks of
# planes, x (P, H, W) and y (P, Ho, Wo); the Python wrapper (fastnn/_backends/cpu/pool.py)
# makes them and has validated every index given to max_backward.
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.stdlib cimport free

from pool_common cimport padded, scratch_rows
from work_split cimport fnn_set_parallel_scale, split, threads_for

cdef extern from "pool_adaptive.h" nogil:
    int fnn_adaptive_set_avx2(int enabled)
    void fnn_adaptive_avg_global_f32(const float* x, float* y, Py_ssize_t n, Py_ssize_t lo,
                                     Py_ssize_t hi)
    void fnn_adaptive_avg_global_f64(const double* x, double* y, Py_ssize_t n,
                                     Py_ssize_t lo, Py_ssize_t hi)
    void fnn_adaptive_avg_f32(const float* x, float* y, Py_ssize_t H, Py_ssize_t W,
                              Py_ssize_t Ho, Py_ssize_t Wo, double* buf, Py_ssize_t lo,
                              Py_ssize_t hi)
    void fnn_adaptive_avg_f64(const double* x, double* y, Py_ssize_t H, Py_ssize_t W,
                              Py_ssize_t Ho, Py_ssize_t Wo, double* buf, Py_ssize_t lo,
                              Py_ssize_t hi)
    void fnn_adaptive_avg_backward_f32(const float* gy, float* gx, Py_ssize_t H,
                                       Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo,
                                       double* buf, Py_ssize_t lo, Py_ssize_t hi)
    void fnn_adaptive_avg_backward_f64(const double* gy, double* gx, Py_ssize_t H,
                                       Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo,
                                       double* buf, Py_ssize_t lo, Py_ssize_t hi)
    void fnn_adaptive_max_f32(const float* x, float* y, int64_t* index, Py_ssize_t H,
                              Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t lo,
                              Py_ssize_t hi)
    void fnn_adaptive_max_f64(const double* x, double* y, int64_t* index, Py_ssize_t H,
                              Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t lo,
                              Py_ssize_t hi)
    void fnn_adaptive_max_backward_f32(const float* gy, const int64_t* index, float* gx,
                                       Py_ssize_t plane, Py_ssize_t outputs, Py_ssize_t lo,
                                       Py_ssize_t hi)
    void fnn_adaptive_max_backward_f64(const double* gy, const int64_t* index, double* gx,
                                       Py_ssize_t plane, Py_ssize_t outputs, Py_ssize_t lo,
                                       Py_ssize_t hi)

def use_avx2(bint enabled):
    """Run global average pooling in its AVX2 build (True, the default where the CPU has
    AVX2) or its portable build (False), for tests.  Returns whether AVX2 is used."""
    return bool(fnn_adaptive_set_avx2(enabled))


cdef void _avg_run(const floating* src, floating* dst, bint backward, Py_ssize_t H,
                   Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo, double* buf, Py_ssize_t lo,
                   Py_ssize_t hi) noexcept nogil:
    """Planes [lo, hi): the forward pass (src = x, dst = y) or the backward pass (src =
    gy, dst = gx); one branch per run of planes, none per element."""
    if backward:
        if floating is float:
            fnn_adaptive_avg_backward_f32(src, dst, H, W, Ho, Wo, buf, lo, hi)
        else:
            fnn_adaptive_avg_backward_f64(src, dst, H, W, Ho, Wo, buf, lo, hi)
    elif Ho == 1 and Wo == 1:  # global pooling: a flat sum per plane
        if floating is float:
            fnn_adaptive_avg_global_f32(src, dst, H * W, lo, hi)
        else:
            fnn_adaptive_avg_global_f64(src, dst, H * W, lo, hi)
    elif floating is float:
        fnn_adaptive_avg_f32(src, dst, H, W, Ho, Wo, buf, lo, hi)
    else:
        fnn_adaptive_avg_f64(src, dst, H, W, Ho, Wo, buf, lo, hi)


cdef _avg_planes(const floating[:, :, ::1] src, floating[:, :, ::1] dst, bint backward,
                 Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo, int num_threads,
                 str op):
    """Run _avg_run over the P planes, split over threads, with W doubles of scratch per
    thread; (H, W) is the input plane, (Ho, Wo) the pooled one."""
    cdef Py_ssize_t P = dst.shape[0]
    cdef int c, chunks = threads_for(P * H * W, P, num_threads)
    if P == 0:
        return
    cdef Py_ssize_t stride = padded(W)  # no two threads write one cache line
    cdef double* buf = <double*>scratch_rows(chunks * stride * sizeof(double), op)
    try:
        if chunks == 1:
            with nogil:
                _avg_run(&src[0, 0, 0], &dst[0, 0, 0], backward, H, W, Ho, Wo, buf, 0, P)
        else:
            for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
                _avg_run(&src[0, 0, 0], &dst[0, 0, 0], backward, H, W, Ho, Wo,
                         buf + c * stride, split(P, c, chunks), split(P, c + 1, chunks))
    finally:
        free(buf)


def avg_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int num_threads):
    """y = adaptive average pooling of the planes of x."""
    _avg_planes(x, y, False, x.shape[1], x.shape[2], y.shape[1], y.shape[2], num_threads,
                "adaptive_avg_pool")


def avg_backward(const floating[:, :, ::1] gy, floating[:, :, ::1] gx, int num_threads):
    """gx = gradient of adaptive average pooling (every window spreads gy / its size)."""
    _avg_planes(gy, gx, True, gx.shape[1], gx.shape[2], gy.shape[1], gy.shape[2],
                num_threads, "adaptive_avg_pool_backward")


cdef void _max_run(const floating* x, floating* y, int64_t* index, Py_ssize_t H,
                   Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t lo,
                   Py_ssize_t hi) noexcept nogil:
    if floating is float:
        fnn_adaptive_max_f32(x, y, index, H, W, Ho, Wo, lo, hi)
    else:
        fnn_adaptive_max_f64(x, y, index, H, W, Ho, Wo, lo, hi)


def max_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int64_t[:, :, ::1] index,
                int num_threads):
    """y = adaptive max pooling of x; index (or None) gets the flat positions."""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t Ho = y.shape[1], Wo = y.shape[2]
    cdef int c, chunks = threads_for(P * H * W, P, num_threads)
    cdef int64_t* at = NULL
    if P == 0:
        return
    if index is not None:
        at = &index[0, 0, 0]
    if chunks == 1:
        with nogil:
            _max_run(&x[0, 0, 0], &y[0, 0, 0], at, H, W, Ho, Wo, 0, P)
        return
    for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
        _max_run(&x[0, 0, 0], &y[0, 0, 0], at, H, W, Ho, Wo, split(P, c, chunks),
                 split(P, c + 1, chunks))


cdef void _max_back_run(const floating* gy, const int64_t* index, floating* gx,
                        Py_ssize_t plane, Py_ssize_t outputs, Py_ssize_t lo,
                        Py_ssize_t hi) noexcept nogil:
    if floating is float:
        fnn_adaptive_max_backward_f32(gy, index, gx, plane, outputs, lo, hi)
    else:
        fnn_adaptive_max_backward_f64(gy, index, gx, plane, outputs, lo, hi)


def max_backward(const floating[:, ::1] gy, const int64_t[:, ::1] index,
                 floating[:, ::1] gx, int num_threads):
    """gx (P, H * W) = the scatter-add of gy (P, Ho * Wo) through index (each in
    [0, H * W), checked by the caller)."""
    cdef Py_ssize_t P = gx.shape[0], plane = gx.shape[1], outputs = gy.shape[1]
    cdef int c, chunks = threads_for(P * plane, P, num_threads)
    if P == 0:
        return
    if chunks == 1:
        with nogil:
            _max_back_run(&gy[0, 0], &index[0, 0], &gx[0, 0], plane, outputs, 0, P)
        return
    for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
        _max_back_run(&gy[0, 0], &index[0, 0], &gx[0, 0], plane, outputs,
                      split(P, c, chunks), split(P, c + 1, chunks))


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    fnn_set_parallel_scale(scale)


include "elementwise_level.pxi"  # set_elementwise_level, elementwise_level
