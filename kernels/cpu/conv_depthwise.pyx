# Depthwise convolution (groups == input channels, any channel multiplier), forward and
# both gradients, float32 and float64: the Python face of depthwise.h.  fastnn/ops
# validated the arguments; fastnn/_backends/cpu/_conv_depthwise.py decides when it runs.
import numpy as np

from cython cimport floating

cdef extern from "depthwise.h" nogil:
    ctypedef struct fnn_dw_args:
        const void* x
        Py_ssize_t sn, sc, sh_, sw_
        Py_ssize_t N, C, H, W
        Py_ssize_t KM
        Py_ssize_t R, S, Ho, Wo, sh, sw, dh, dw, pt, pl
        const void* w
        const void* bias
        int act
        const void* gy
        void* out
        int threads
        int gw_bias
    int fnn_dw_run_f32(const fnn_dw_args* a, int pass_, int isa, int lanes)
    int fnn_dw_run_f64(const fnn_dw_args* a, int pass_, int isa, int lanes)
    int fnn_dw_isa(int requested)


cdef int _fill(fnn_dw_args* a, tuple shape, Py_ssize_t itemsize) except -1:
    (n, c, h, w, k, g, r, s, ho, wo, sh, sw, dh, dw, pt, pb, pl, pr) = shape
    if g != c or k % c:
        raise ValueError("depthwise: groups must equal the input channels")
    a.N, a.C, a.H, a.W = n, c, h, w
    a.KM = k // c
    a.R, a.S, a.Ho, a.Wo = r, s, ho, wo
    a.sh, a.sw, a.dh, a.dw, a.pt, a.pl = sh, sw, dh, dw, pt, pl
    a.act = 0
    a.gw_bias = 0
    return 0


cdef int _run(fnn_dw_args* a, int pass_, int isa, bint is_double, bint lanes) except -1:
    cdef int rc
    with nogil:
        if is_double:
            rc = fnn_dw_run_f64(a, pass_, isa, lanes)
        else:
            rc = fnn_dw_run_f32(a, pass_, isa, lanes)
    if rc != 0:
        raise MemoryError("depthwise: could not allocate the per-thread scratch")
    return 0


def level(int requested):
    """The instruction-set level that runs for ``requested`` on this CPU."""
    return fnn_dw_isa(requested)


def forward(const floating[:, :, :, :] x, const floating[::1] w, object bias,
            floating[::1] y, tuple shape, int num_threads, int isa, bint lanes=False,
            int act=0):
    """y (flat contiguous (N, K, Ho, Wo)) = act(the depthwise convolution of x (any
    strides) with the flat contiguous weight w (K, 1, R, S), plus bias (K,) or None).
    ``lanes``: the channels-in-lanes variant (small planes) instead of plane by plane;
    act: 0 none, 1 relu, 4 relu6 (conv_epilogue.h), applied where the output is written."""
    cdef fnn_dw_args a
    cdef Py_ssize_t isz = sizeof(floating)
    cdef const floating[::1] b
    _fill(&a, shape, isz)
    if w.shape[0] != a.C * a.KM * a.R * a.S or y.shape[0] != a.N * a.C * a.KM * a.Ho * a.Wo:
        raise ValueError("depthwise: sizes do not match the geometry")
    a.x = &x[0, 0, 0, 0]
    a.sn, a.sc = x.strides[0] // isz, x.strides[1] // isz
    a.sh_, a.sw_ = x.strides[2] // isz, x.strides[3] // isz
    a.w = &w[0]
    a.bias = NULL
    if bias is not None:
        b = bias
        a.bias = &b[0]
    a.act = act
    a.gy = NULL
    a.out = &y[0]
    a.threads = max(1, num_threads)
    _run(&a, 0, isa, floating is double, lanes)


def backward_input(const floating[::1] gy, const floating[::1] w, floating[::1] gx,
                   tuple shape, int num_threads, int isa, bint lanes=False):
    """gx (flat contiguous (N, C, H, W)) from the flat contiguous grad_output gy."""
    cdef fnn_dw_args a
    _fill(&a, shape, sizeof(floating))
    if gy.shape[0] < a.N * a.C * a.KM * a.Ho * a.Wo or gx.shape[0] != a.N * a.C * a.H * a.W:
        raise ValueError("depthwise: sizes do not match the geometry")
    a.x = NULL
    a.sn = a.sc = a.sh_ = a.sw_ = 0
    a.w = &w[0]
    a.bias = NULL
    a.gy = &gy[0]
    a.out = &gx[0]
    a.threads = max(1, num_threads)
    _run(&a, 1, isa, floating is double, lanes)


def backward_weight(const floating[:, :, :, :] x, const floating[::1] gy, tuple shape,
                    int num_threads, int isa, bint lanes=False, bint with_bias=False):
    """grad_weight as a float64 (K, R*S) array from x (any strides) and the flat
    contiguous grad_output gy; ``with_bias`` (plane by plane only): the pair (grad_weight,
    grad_bias as a float64 (K,) array), both from the one pass over gy."""
    cdef fnn_dw_args a
    cdef Py_ssize_t isz = sizeof(floating)
    _fill(&a, shape, isz)
    if gy.shape[0] < a.N * a.C * a.KM * a.Ho * a.Wo:
        raise ValueError("depthwise: sizes do not match the geometry")
    if with_bias and lanes:
        raise ValueError("depthwise: the channels-in-lanes variant has no fused bias")
    threads = max(1, num_threads)
    cdef Py_ssize_t K = a.C * a.KM, Q = K * a.R * a.S
    # a row of partial sums per thread (the plane variant splits channels' images too)
    acc_array = np.zeros((threads, Q + (K if with_bias else 0)), dtype=np.float64)
    cdef double[:, ::1] acc = acc_array
    a.x = &x[0, 0, 0, 0]
    a.sn, a.sc = x.strides[0] // isz, x.strides[1] // isz
    a.sh_, a.sw_ = x.strides[2] // isz, x.strides[3] // isz
    a.w = NULL
    a.bias = NULL
    a.gy = &gy[0]
    a.out = &acc[0, 0]
    a.threads = threads
    a.gw_bias = with_bias
    _run(&a, 2, isa, floating is double, lanes)
    total = acc_array[0] if threads == 1 else acc_array.sum(axis=0)
    if with_bias:
        return total[:Q].reshape(K, a.R * a.S), total[Q:]
    return total.reshape(K, a.R * a.S)
