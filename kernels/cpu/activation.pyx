# Elementwise activations and their gradients, float32 and float64 through fused types.
#
# Every array is a flat C-contiguous buffer; the Python side (fastnn/backends/cpu) makes
# them so and checks that the sizes agree.  Large arrays are split over OpenMP threads;
# small ones run serially, where thread start-up would cost more than the work.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, tanh, tanhf

# Below this many elements an OpenMP region costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN = 1 << 15


cdef inline int _threads(Py_ssize_t n, int num_threads) noexcept nogil:
    return num_threads if n >= PARALLEL_MIN else 1


cdef inline floating _sigmoid(floating v) noexcept nogil:
    # exp of a non-positive number only: no overflow for any input
    cdef floating e
    if floating is float:
        if v >= 0:
            return 1.0 / (1.0 + expf(-v))
        e = expf(v)
        return e / (1.0 + e)
    else:
        if v >= 0:
            return 1.0 / (1.0 + exp(-v))
        e = exp(v)
        return e / (1.0 + e)


def relu(const floating[::1] x, floating[::1] out, int num_threads):
    """out = max(x, 0); NaN stays NaN."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads(n, num_threads)):
        v = x[i]
        out[i] = 0 if v <= 0 else v


def sigmoid(const floating[::1] x, floating[::1] out, int num_threads):
    """out = 1 / (1 + exp(-x)), overflow-free."""
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads(n, num_threads)):
        out[i] = _sigmoid(x[i])


def tanh_(const floating[::1] x, floating[::1] out, int num_threads):
    """out = tanh(x)."""
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads(n, num_threads)):
        if floating is float:
            out[i] = tanhf(x[i])
        else:
            out[i] = tanh(x[i])


def backward(int which, const floating[::1] grad, const floating[::1] y, floating[::1] out,
             int num_threads):
    """Gradient through an activation from its output y.
    which: 0 relu (g where y > 0), 1 sigmoid (g y (1 - y)), 2 tanh (g (1 - y^2))."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating v
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads(n, num_threads)):
        v = y[i]
        if which == 0:
            out[i] = grad[i] if v > 0 else 0
        elif which == 1:
            out[i] = grad[i] * v * (1 - v)
        else:
            out[i] = grad[i] * (1 - v * v)
