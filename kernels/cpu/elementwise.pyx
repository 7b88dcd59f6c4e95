# Dropout (forward, backward) and the fused residual add act(a + b), float32 and float64.
#
# The loops are those of dropout_add.h (vectorised, AVX2 chosen at run time); this module
# takes flat C-contiguous arrays that the Python wrapper (fastnn/_backends/cpu/
# regularization.py) allocates and validates, and splits them into one contiguous chunk
# per OpenMP thread with the GIL released.  Dropout's random words depend only on (seed,
# element index), so the split does not change the mask.
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint32_t, uint64_t

from work_split cimport fnn_scaled_min, fnn_set_parallel_scale, split

cdef extern from "dropout_add.h" nogil:
    int FNN_ADD_IDENTITY, FNN_ADD_RELU, FNN_ADD_RELU6
    void fnn_dropout_f32(const float* x, float* y, uint8_t* mask, Py_ssize_t n,
                         uint64_t first, uint64_t seed, uint32_t threshold, float scale)
    void fnn_dropout_f64(const double* x, double* y, uint8_t* mask, Py_ssize_t n,
                         uint64_t first, uint64_t seed, uint32_t threshold, double scale)
    void fnn_dropout_backward_f32(const float* g, const uint8_t* mask, float* out,
                                  Py_ssize_t n, float scale)
    void fnn_dropout_backward_f64(const double* g, const uint8_t* mask, double* out,
                                  Py_ssize_t n, double scale)
    void fnn_add_f32(int act, const float* a, const float* b, float* y, Py_ssize_t n)
    void fnn_add_f64(int act, const double* a, const double* b, double* y, Py_ssize_t n)

# Activation codes of add, for the Python wrapper.
ADD_CODES = {None: FNN_ADD_IDENTITY, "relu": FNN_ADD_RELU, "relu6": FNN_ADD_RELU6}

# Elements per thread below which waking another thread costs more than it saves.
cdef Py_ssize_t PER_THREAD = 1 << 16


cdef inline int _chunks(Py_ssize_t n, int num_threads) noexcept nogil:
    cdef Py_ssize_t c = n // max(fnn_scaled_min(PER_THREAD), 1)
    if c < 1:
        return 1
    return <int>c if c < num_threads else num_threads


cdef enum:
    K_DROPOUT = 0  # y = a * keep * scale, mask = keep
    K_DROPOUT_BACKWARD = 1  # y = a * [mask != 0] * scale
    K_ADD = 2  # y = act(a + b)


cdef void _chunk(int kind, int act, const floating* a, const floating* b, uint8_t* mask,
                 floating* y, Py_ssize_t lo, Py_ssize_t hi, uint64_t seed,
                 uint32_t threshold, floating scale) noexcept nogil:
    """Elements [lo, hi) of the kernel `kind` (b, mask, seed, threshold, scale and act are
    read only by the kernels that use them)."""
    if kind == K_DROPOUT:
        if floating is float:
            fnn_dropout_f32(a + lo, y + lo, mask + lo, hi - lo, lo, seed, threshold, scale)
        else:
            fnn_dropout_f64(a + lo, y + lo, mask + lo, hi - lo, lo, seed, threshold, scale)
    elif kind == K_DROPOUT_BACKWARD:
        if floating is float:
            fnn_dropout_backward_f32(a + lo, mask + lo, y + lo, hi - lo, scale)
        else:
            fnn_dropout_backward_f64(a + lo, mask + lo, y + lo, hi - lo, scale)
    elif floating is float:
        fnn_add_f32(act, a + lo, b + lo, y + lo, hi - lo)
    else:
        fnn_add_f64(act, a + lo, b + lo, y + lo, hi - lo)


cdef void _run(int kind, int act, const floating* a, const floating* b, uint8_t* mask,
               floating* y, Py_ssize_t n, int num_threads, uint64_t seed,
               uint32_t threshold, floating scale) noexcept nogil:
    """The n elements in one call, or in one contiguous chunk per thread."""
    cdef int c, chunks = _chunks(n, num_threads)
    if chunks == 1:
        _chunk(kind, act, a, b, mask, y, 0, n, seed, threshold, scale)
        return
    for c in prange(chunks, schedule="static", num_threads=chunks):
        _chunk(kind, act, a, b, mask, y, split(n, c, chunks), split(n, c + 1, chunks), seed,
               threshold, scale)


def dropout(const floating[::1] x, floating[::1] y, uint8_t[::1] mask, uint64_t seed,
            uint32_t threshold, double scale, int num_threads):
    """y = x * keep * scale and mask = keep, keep from the counter-based stream."""
    cdef Py_ssize_t n = x.shape[0]
    if n == 0:
        return
    with nogil:
        _run(K_DROPOUT, 0, &x[0], NULL, &mask[0], &y[0], n, num_threads, seed, threshold,
             <floating>scale)


def dropout_backward(const floating[::1] g, const uint8_t[::1] mask, floating[::1] out,
                     double scale, int num_threads):
    """out = g * [mask != 0] * scale."""
    cdef Py_ssize_t n = g.shape[0]
    if n == 0:
        return
    with nogil:  # the mask is only read
        _run(K_DROPOUT_BACKWARD, 0, &g[0], NULL, <uint8_t*>&mask[0], &out[0], n,
             num_threads, 0, 0, <floating>scale)


def add(int act, const floating[::1] a, const floating[::1] b, floating[::1] y,
        int num_threads):
    """y = act(a + b) (act: a code of ADD_CODES)."""
    cdef Py_ssize_t n = a.shape[0]
    if n == 0:
        return
    with nogil:
        _run(K_ADD, act, &a[0], &b[0], NULL, &y[0], n, num_threads, 0, 0, 0)


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    fnn_set_parallel_scale(scale)


include "elementwise_level.pxi"  # set_elementwise_level, elementwise_level
