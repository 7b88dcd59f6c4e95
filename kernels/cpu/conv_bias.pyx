# The bias gradient of a convolution, shared by every algorithm: the sum of grad_output
# over images and positions, per output channel (conv_bias_sums.h holds the loop).
from cython cimport floating
from cython.parallel cimport prange

cimport dense_arrays as da

from work_split cimport fnn_scaled_min, fnn_set_parallel_scale

# Below this many elements an OpenMP region costs more than it saves (a prior, scaled by
# the measured break-even: parallel_scale.h).
cdef Py_ssize_t PARALLEL_MIN = 1 << 16

cdef extern from "conv_bias_sums.h" nogil:
    void fnn_bias_sums_f32(const float* gy, float* gb, Py_ssize_t images, Py_ssize_t channels,
                           Py_ssize_t plane, Py_ssize_t k0, Py_ssize_t k1)
    void fnn_bias_sums_f64(const double* gy, double* gb, Py_ssize_t images,
                           Py_ssize_t channels, Py_ssize_t plane, Py_ssize_t k0, Py_ssize_t k1)


def backward_bias(const floating[::1] gy, floating[::1] gb, Py_ssize_t N, Py_ssize_t K,
                  Py_ssize_t plane, int num_threads):
    """gb[k] = sum_{n, i} gy[(n * K + k) * plane + i] for the flat contiguous (N, K, plane)
    grad_output gy (gb: K entries; callers check the sizes)."""
    cdef int t
    cdef int nt = num_threads if N * K * plane >= fnn_scaled_min(PARALLEL_MIN) else 1
    if N == 0 or plane == 0:
        gb[:] = 0
        return
    nt = min(nt, K)
    for t in prange(nt, nogil=True, schedule="static", num_threads=nt):
        if floating is float:
            fnn_bias_sums_f32(&gy[0], &gb[0], N, K, plane, da.split_start(K, t, nt),
                              da.split_start(K, t + 1, nt))
        else:
            fnn_bias_sums_f64(&gy[0], &gb[0], N, K, plane, da.split_start(K, t, nt),
                              da.split_start(K, t + 1, nt))


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    fnn_set_parallel_scale(scale)


include "elementwise_level.pxi"  # set_elementwise_level, elementwise_level
