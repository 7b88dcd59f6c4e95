# Elementwise activations (relu, sigmoid, tanh) and their gradients, float32 and float64.
#
# The loops live in activation_loops.h (vectorised, AVX2 chosen at run time) and, for
# arrays far beyond the caches, activation_stream.h (relu's result written with streaming
# stores).  This module
# only turns numpy arrays into pointers, allocates the result and splits large arrays
# over OpenMP threads.  Entry points take any float32/float64 array: a non-contiguous or
# misaligned one is copied first (np.require semantics), the result is always a new
# C-contiguous array.  The calling Python layer has checked dtypes and shapes already.
cimport numpy as cnp
from cython.parallel cimport prange

cimport dense_arrays as da
from dense_arrays cimport chunk_start

cnp.import_array()

cdef extern from "activation_stream.h" nogil:
    int FNN_ACT_IDENTITY, FNN_ACT_RELU, FNN_ACT_SIGMOID, FNN_ACT_TANH
    void fnn_activate_array_f32(int act, const float* x, float* y, Py_ssize_t n)
    void fnn_activate_array_f64(int act, const double* x, double* y, Py_ssize_t n)
    void fnn_backward_array_f32(int act, const float* g, const float* y, float* out,
                                Py_ssize_t n)
    void fnn_backward_array_f64(int act, const double* g, const double* y, double* out,
                                Py_ssize_t n)

# Activation codes, for the Python wrappers.
IDENTITY = FNN_ACT_IDENTITY
RELU = FNN_ACT_RELU
SIGMOID = FNN_ACT_SIGMOID
TANH = FNN_ACT_TANH

# Below this many elements per thread, waking a second thread costs more than it saves
# (an OpenMP region costs a few microseconds; relu streams ~1 element/ns per core,
# sigmoid and tanh ~0.5).
cdef Py_ssize_t PARALLEL_MIN_CHEAP = 1 << 16
cdef Py_ssize_t PARALLEL_MIN_EXP = 1 << 14


def activate(int act, object x, int num_threads):
    """A new C-contiguous array f(x) for activation code `act` (RELU, SIGMOID, TANH)."""
    cdef cnp.ndarray src = da.carray(x)
    cdef cnp.ndarray out = da.empty_like(src)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(src), lo, hi
    cdef int typenum = cnp.PyArray_TYPE(src)
    cdef char* xp = <char*>cnp.PyArray_DATA(src)
    cdef char* yp = <char*>cnp.PyArray_DATA(out)
    cdef int c, chunks = da.threads_for(
        n, PARALLEL_MIN_CHEAP if act == FNN_ACT_RELU else PARALLEL_MIN_EXP, num_threads)
    if chunks == 1:
        with nogil:
            if typenum == cnp.NPY_FLOAT:
                fnn_activate_array_f32(act, <float*>xp, <float*>yp, n)
            else:
                fnn_activate_array_f64(act, <double*>xp, <double*>yp, n)
        return out
    for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
        lo = chunk_start(n, c, chunks)
        hi = chunk_start(n, c + 1, chunks)
        if typenum == cnp.NPY_FLOAT:
            fnn_activate_array_f32(act, <float*>xp + lo, <float*>yp + lo, hi - lo)
        else:
            fnn_activate_array_f64(act, <double*>xp + lo, <double*>yp + lo, hi - lo)
    return out


def backward(int act, object grad, object y, int num_threads):
    """A new array grad * f'(input), f' written through the forward output y:
    relu grad [y > 0], sigmoid grad y (1 - y), tanh grad (1 - y^2).  Same shapes."""
    cdef cnp.ndarray g = da.carray(grad)
    cdef cnp.ndarray yc = da.carray(y)
    cdef cnp.ndarray out = da.empty_like(g)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(g), lo, hi
    cdef int typenum = cnp.PyArray_TYPE(g)
    cdef char* gp = <char*>cnp.PyArray_DATA(g)
    cdef char* yp = <char*>cnp.PyArray_DATA(yc)
    cdef char* op = <char*>cnp.PyArray_DATA(out)
    cdef int c, chunks = da.threads_for(n, PARALLEL_MIN_CHEAP, num_threads)
    if not da.same_layout(g, yc):
        raise ValueError("activation backward: grad and y must have one shape and dtype")
    if chunks == 1:
        with nogil:
            if typenum == cnp.NPY_FLOAT:
                fnn_backward_array_f32(act, <float*>gp, <float*>yp, <float*>op, n)
            else:
                fnn_backward_array_f64(act, <double*>gp, <double*>yp, <double*>op, n)
        return out
    for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
        lo = chunk_start(n, c, chunks)
        hi = chunk_start(n, c + 1, chunks)
        if typenum == cnp.NPY_FLOAT:
            fnn_backward_array_f32(act, <float*>gp + lo, <float*>yp + lo, <float*>op + lo,
                                  hi - lo)
        else:
            fnn_backward_array_f64(act, <double*>gp + lo, <double*>yp + lo,
                                  <double*>op + lo, hi - lo)
    return out
