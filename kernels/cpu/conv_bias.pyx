# The bias gradient of a convolution, shared by both algorithms: the sum of grad_output
# over images and positions, per output channel, accumulated in double.
from cython cimport floating
from cython.parallel cimport prange

# Below this many elements an OpenMP region costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN = 1 << 16


def backward_bias(const floating[::1] gy, floating[::1] gb, Py_ssize_t N, Py_ssize_t K,
                  Py_ssize_t plane, int num_threads):
    """gb[k] = sum_{n, i} gy[(n * K + k) * plane + i] for the flat contiguous (N, K, plane)
    grad_output gy (gb: K entries; callers check the sizes)."""
    cdef Py_ssize_t k, n, i
    cdef double total
    cdef const floating* row
    cdef int nt = num_threads if N * K * plane >= PARALLEL_MIN else 1
    if N == 0 or plane == 0:
        gb[:] = 0
        return
    for k in prange(K, nogil=True, schedule="static", num_threads=nt):
        total = 0
        for n in range(N):
            row = &gy[0] + (n * K + k) * plane
            for i in range(plane):
                total = total + row[i]
        gb[k] = <floating>total
