# The bias gradient of a convolution, shared by both algorithms: the sum of grad_output
# over images and positions, per output channel, accumulated in double.
from cython cimport floating
from cython.parallel cimport prange

from work_split cimport fnn_scaled_min, fnn_set_parallel_scale

# Below this many elements an OpenMP region costs more than it saves (a prior, scaled by
# the measured break-even: parallel_scale.h).
cdef Py_ssize_t PARALLEL_MIN = 1 << 16


cdef inline double _sum(const floating* row, Py_ssize_t n) noexcept nogil:
    """sum(row[:n]) in double, over eight independent accumulators: one running total
    waits on each add's latency (~1 element per ns); eight keep the loads streaming."""
    cdef double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        a0 += row[i]
        a1 += row[i + 1]
        a2 += row[i + 2]
        a3 += row[i + 3]
        a4 += row[i + 4]
        a5 += row[i + 5]
        a6 += row[i + 6]
        a7 += row[i + 7]
        i += 8
    cdef double total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    while i < n:
        total += row[i]
        i += 1
    return total


def backward_bias(const floating[::1] gy, floating[::1] gb, Py_ssize_t N, Py_ssize_t K,
                  Py_ssize_t plane, int num_threads):
    """gb[k] = sum_{n, i} gy[(n * K + k) * plane + i] for the flat contiguous (N, K, plane)
    grad_output gy (gb: K entries; callers check the sizes)."""
    cdef Py_ssize_t k, n
    cdef double total
    cdef int nt = num_threads if N * K * plane >= fnn_scaled_min(PARALLEL_MIN) else 1
    if N == 0 or plane == 0:
        gb[:] = 0
        return
    for k in prange(K, nogil=True, schedule="static", num_threads=nt):
        total = 0
        for n in range(N):
            total = total + _sum(&gy[0] + (n * K + k) * plane, plane)
        gb[k] = <floating>total


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    fnn_set_parallel_scale(scale)
