# How the pooling and elementwise kernel modules split independent pieces of work (planes,
# rows, runs of elements) over OpenMP threads: nogil helpers, no numpy.
# (The dense family has its own, 16-element-aligned chunks: dense_arrays.pxd.)

cdef extern from "parallel_scale.h" nogil:
    Py_ssize_t fnn_scaled_min(Py_ssize_t prior)
    void fnn_set_parallel_scale(double scale)

cdef enum:
    # Below this many input elements an OpenMP region costs more than it saves (the prior:
    # scaled by the measured break-even, parallel_scale.h).
    PARALLEL_MIN = 1 << 15


cdef inline int threads_for(Py_ssize_t work, Py_ssize_t items, int num_threads) noexcept nogil:
    """Threads for `work` input elements spread over `items` independent pieces."""
    if work < fnn_scaled_min(PARALLEL_MIN) or items < 2:
        return 1
    return <int>min(<Py_ssize_t>num_threads, items)


cdef inline Py_ssize_t split(Py_ssize_t n, int c, int chunks) noexcept nogil:
    """Start of part c of `chunks` near-equal parts of range(n); split(n, chunks) == n."""
    return n * c // chunks
