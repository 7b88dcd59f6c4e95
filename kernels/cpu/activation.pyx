# Elementwise activations (relu, sigmoid, tanh; hardtanh / relu6, leaky_relu, silu, gelu)
# and their gradients, float32 and float64.
#
# The loops live in activation_loops.h (vectorised, AVX2 chosen at run time) and, for
# arrays far beyond the caches, activation_stream.h (relu's result written with streaming
# stores); hardtanh, leaky_relu, silu and gelu in activation_extra.h.  This module
# only turns numpy arrays into pointers, allocates the result and splits large arrays
# over OpenMP threads.  Entry points take any float32/float64 array: a non-contiguous or
# misaligned one is copied first (np.require semantics), the result is a new C-contiguous
# array, or `out` when given: a C-contiguous, writeable array of x's shape and dtype,
# which may be x itself (in place).  The calling Python layer has checked dtypes, shapes
# and `out` (and that out does not partly overlap x) already.
cimport numpy as cnp
from cython.parallel cimport prange

cimport dense_arrays as da
from dense_arrays cimport chunk_start

cnp.import_array()

from fastnn.kernels.cpu.output_cache import HANDLER as _CACHE, MIN_BYTES as _CACHE_MIN

cdef Py_ssize_t _cache_min = _CACHE_MIN

cdef extern from "activation_stream.h" nogil:
    int FNN_ACT_IDENTITY, FNN_ACT_RELU, FNN_ACT_SIGMOID, FNN_ACT_TANH
    void fnn_activate_array_f32(int act, const float* x, float* y, Py_ssize_t n, int stream)
    void fnn_activate_array_f64(int act, const double* x, double* y, Py_ssize_t n,
                                int stream)
    void fnn_backward_array_f32(int act, const float* g, const float* y, float* out,
                                Py_ssize_t n, int stream)
    void fnn_backward_array_f64(int act, const double* g, const double* y, double* out,
                                Py_ssize_t n, int stream)

cdef extern from "activation_extra.h" nogil:
    int FNN_XACT_HARDTANH, FNN_XACT_LEAKY_RELU, FNN_XACT_SILU, FNN_XACT_GELU
    int FNN_XACT_GELU_TANH
    void fnn_xact_forward_f32(int act, const float* x, float* y, Py_ssize_t n, float p0,
                              float p1)
    void fnn_xact_forward_f64(int act, const double* x, double* y, Py_ssize_t n,
                              double p0, double p1)
    void fnn_xact_backward_f32(int act, const float* g, const float* v, float* out,
                               Py_ssize_t n, float p0, float p1)
    void fnn_xact_backward_f64(int act, const double* g, const double* v, double* out,
                               Py_ssize_t n, double p0, double p1)

# Codes of the activations of activation_extra.h (entry points activate_extra and
# backward_extra).
HARDTANH = FNN_XACT_HARDTANH
LEAKY_RELU = FNN_XACT_LEAKY_RELU
SILU = FNN_XACT_SILU
GELU = FNN_XACT_GELU
GELU_TANH = FNN_XACT_GELU_TANH

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

# A call whose arrays (inputs and result) hold at least this many bytes writes relu's
# result with streaming stores (activation_stream.h): it would not stay in the cache for
# its reader anyway.  Set from the last-level cache size when fastnn loads the module.
cdef Py_ssize_t _stream_bytes = 8 << 20


def set_stream_bytes(Py_ssize_t nbytes):
    """Stream relu's result from calls whose arrays hold at least ``nbytes`` bytes."""
    global _stream_bytes
    _stream_bytes = max(nbytes, 1)


def stream_bytes():
    """The footprint from which relu streams its result (:func:`set_stream_bytes`)."""
    return _stream_bytes


cdef cnp.ndarray _result(cnp.ndarray src, object out):
    """`out` (checked by the caller; compared here once more, cheaply) or a new array."""
    if out is None:
        return da.empty_like_cached(src, _CACHE, _cache_min)
    if (not cnp.PyArray_Check(out) or not da.same_layout(src, <cnp.ndarray>out)
            or not cnp.PyArray_ISCARRAY(<cnp.ndarray>out)):
        raise ValueError("activation: out must be a writeable C-contiguous array of the "
                         "input's size and dtype")
    return <cnp.ndarray>out


cdef enum:
    K_FORWARD = 0  # f(a) into out (b unused)
    K_BACKWARD = 1  # a * f' through the forward output b
    K_XFORWARD = 2  # the extra activations: f(a; p0, p1)
    K_XBACKWARD = 3  # a * f' through b (forward output or input, by code)


cdef void _chunk(int kind, int act, int typenum, char* a, char* b, char* out, Py_ssize_t lo,
                 Py_ssize_t hi, double p0, double p1, int stream) noexcept nogil:
    """Elements [lo, hi) of one of the four kernels, on float32 or float64 data."""
    cdef Py_ssize_t n = hi - lo
    if typenum == cnp.NPY_FLOAT:
        if kind == K_FORWARD:
            fnn_activate_array_f32(act, <float*>a + lo, <float*>out + lo, n, stream)
        elif kind == K_BACKWARD:
            fnn_backward_array_f32(act, <float*>a + lo, <float*>b + lo, <float*>out + lo, n,
                                   stream)
        elif kind == K_XFORWARD:
            fnn_xact_forward_f32(act, <float*>a + lo, <float*>out + lo, n, <float>p0,
                                 <float>p1)
        else:
            fnn_xact_backward_f32(act, <float*>a + lo, <float*>b + lo, <float*>out + lo, n,
                                  <float>p0, <float>p1)
    elif kind == K_FORWARD:
        fnn_activate_array_f64(act, <double*>a + lo, <double*>out + lo, n, stream)
    elif kind == K_BACKWARD:
        fnn_backward_array_f64(act, <double*>a + lo, <double*>b + lo, <double*>out + lo, n,
                               stream)
    elif kind == K_XFORWARD:
        fnn_xact_forward_f64(act, <double*>a + lo, <double*>out + lo, n, p0, p1)
    else:
        fnn_xact_backward_f64(act, <double*>a + lo, <double*>b + lo, <double*>out + lo, n,
                              p0, p1)


cdef object _run(int kind, int act, cnp.ndarray a, cnp.ndarray b, cnp.ndarray out,
                 Py_ssize_t parallel_min, int num_threads, double p0=0.0, double p1=0.0):
    """out = the kernel `kind` over a (and b), in one call or in chunks over threads."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a)
    cdef int typenum = cnp.PyArray_TYPE(a)
    cdef char* ap = <char*>cnp.PyArray_DATA(a)
    cdef char* bp = <char*>cnp.PyArray_DATA(b) if b is not None else NULL
    cdef char* op = <char*>cnp.PyArray_DATA(out)
    cdef int c, chunks = da.threads_for(n, parallel_min, num_threads)
    cdef int stream = cnp.PyArray_NBYTES(a) * (3 if b is not None else 2) >= _stream_bytes
    if chunks == 1:
        with nogil:
            _chunk(kind, act, typenum, ap, bp, op, 0, n, p0, p1, stream)
        return out
    for c in prange(chunks, nogil=True, schedule="static", num_threads=chunks):
        _chunk(kind, act, typenum, ap, bp, op, chunk_start(n, c, chunks),
               chunk_start(n, c + 1, chunks), p0, p1, stream)
    return out


def activate(int act, object x, int num_threads, object out=None):
    """f(x) for activation code `act` (RELU, SIGMOID, TANH) into `out` (which may be x
    itself) or a new C-contiguous array; returns it."""
    cdef cnp.ndarray src = da.carray(x)
    return _run(K_FORWARD, act, src, None, _result(src, out),
                PARALLEL_MIN_CHEAP if act == FNN_ACT_RELU else PARALLEL_MIN_EXP, num_threads)


def backward(int act, object grad, object y, int num_threads):
    """A new array grad * f'(input), f' written through the forward output y:
    relu grad [y > 0], sigmoid grad y (1 - y), tanh grad (1 - y^2).  Same shapes."""
    cdef cnp.ndarray g = da.carray(grad)
    cdef cnp.ndarray yc = da.carray(y)
    cdef cnp.ndarray out = da.empty_like_cached(g, _CACHE, _cache_min)
    if not da.same_layout(g, yc):
        raise ValueError("activation backward: grad and y must have one shape and dtype")
    return _run(K_BACKWARD, act, g, yc, out, PARALLEL_MIN_CHEAP, num_threads)


cdef Py_ssize_t _extra_min(int act):
    if act == FNN_XACT_HARDTANH or act == FNN_XACT_LEAKY_RELU:
        return PARALLEL_MIN_CHEAP
    return PARALLEL_MIN_EXP


def activate_extra(int act, object x, int num_threads, double p0=0.0, double p1=0.0,
                   object out=None):
    """f(x) for code `act` (HARDTANH with p0, p1 = min_val, max_val; LEAKY_RELU with
    p0 = negative_slope; SILU, GELU, GELU_TANH) into `out` (which may be x itself) or a
    new C-contiguous array; returns it."""
    cdef cnp.ndarray src = da.carray(x)
    return _run(K_XFORWARD, act, src, None, _result(src, out), _extra_min(act), num_threads,
                p0, p1)


def backward_extra(int act, object grad, object v, int num_threads, double p0=0.0,
                   double p1=0.0):
    """A new array grad * f' for code `act`: HARDTANH and LEAKY_RELU read the forward
    output v (parameters as in activate_extra), SILU, GELU and GELU_TANH the input."""
    cdef cnp.ndarray g = da.carray(grad)
    cdef cnp.ndarray vc = da.carray(v)
    cdef cnp.ndarray out = da.empty_like_cached(g, _CACHE, _cache_min)
    if not da.same_layout(g, vc):
        raise ValueError("activation backward: grad and v must have one shape and dtype")
    return _run(K_XBACKWARD, act, g, vc, out, _extra_min(act), num_threads, p0, p1)


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    da.fnn_set_parallel_scale(scale)


include "elementwise_level.pxi"  # set_elementwise_level, elementwise_level
