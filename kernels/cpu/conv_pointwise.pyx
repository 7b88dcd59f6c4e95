# 1x1 convolutions (any stride, no padding) as one GEMM over the whole batch per group,
# on fastnn's blocked GEMM through index maps (gemm_mapped.h): the columns of the product
# are the output positions of every image, read in place from the NCHW input (strided
# layers included) and written straight into the NCHW output.  No column matrix, no
# per-image products, the weights packed once per block for all images.
#
#   forward:      y[n, k, q]  = act(bias[k] + sum_c w[k, c] x[n, c, at(q)])
#   grad_input:   gx[n, c, at(q)] = sum_k w[k, c] gy[n, k, q]        (other positions 0)
#   grad_weight:  gw[k, c]    = sum_{n, q} gy[n, k, q] x[n, c, at(q)]
#
# with q an output position (oh, ow) and at(q) = (oh * sh, ow * sw) its input position.
# The caller (fastnn/_backends/cpu/_conv_pointwise.py) checks the geometry and strides.
from cython cimport floating
from libc.string cimport memset

from conv_shape cimport ConvShape, make_shape
from gemm_blocked cimport (
    fnn_gemm_mapped_args,
    fnn_gemm_mapped_f32,
    fnn_gemm_mapped_f64,
    fnn_map_affine,
    fnn_map_make,
)

include "gemm_tuning.pxi"  # set_t48_time, t48_time


cdef int _run(fnn_gemm_mapped_args* g, int threads, int variant, bint is_float) noexcept nogil:
    if is_float:
        return fnn_gemm_mapped_f32(g, threads, variant)
    return fnn_gemm_mapped_f64(g, threads, variant)


cdef inline Py_ssize_t _stride(const floating[:, :, :, :] x, int axis) noexcept:
    """x's stride along ``axis`` in elements."""
    return x.strides[axis] // <Py_ssize_t>sizeof(floating)


def forward(const floating[:, :, :, :] x, const floating[::1] w, const floating[::1] bias,
            bint has_bias, floating[::1] y, tuple shape, int threads, int act, int variant,
            size_t l2_bytes):
    """y = act(conv(x, w) + bias) for a 1x1 unpadded convolution: x (N, C, H, W) with any
    strides, w the flat (K, Cg) weight, y the flat contiguous (N, K, Ho, Wo) output."""
    cdef ConvShape s = make_shape(shape)
    cdef fnn_gemm_mapped_args g
    cdef Py_ssize_t grp, howo = s.Ho * s.Wo
    cdef Py_ssize_t xn = _stride(x, 0), xc = _stride(x, 1), xh = _stride(x, 2), xw = _stride(x, 3)
    cdef int status = 0
    if s.N == 0 or howo == 0:
        return
    memset(&g, 0, sizeof(g))
    g.m, g.n, g.k = s.Kg, s.N * howo, s.Cg
    g.a_rs = s.Cg
    g.a_k = fnn_map_affine(1)
    g.b_k = fnn_map_affine(xc)
    g.b_n = fnn_map_make(howo, s.Wo, xn, s.sh * xh, s.sw * xw)
    g.ldo = howo
    g.o_n = fnn_map_make(howo, howo, s.K * howo, 0, 1)
    g.act = act
    g.l2_bytes = l2_bytes
    with nogil:
        for grp in range(s.G):
            g.a = &w[grp * s.Kg * s.Cg]
            g.b = &x[0, grp * s.Cg, 0, 0]
            g.out = &y[grp * s.Kg * howo]
            g.bias = &bias[grp * s.Kg] if has_bias else NULL
            status |= _run(&g, threads, variant, floating is float)
    if status != 0:
        raise MemoryError("conv2d: no memory for the packing buffers of the 1x1 convolution")


def grad_input(const floating[::1] gy, const floating[::1] w, floating[::1] gx, tuple shape,
               int threads, int variant, size_t l2_bytes):
    """d loss / d input into the flat (N, C, H, W) gx from the flat contiguous
    grad_output; positions no output reads (a strided layer's) are left as they are (the
    caller zeroes them)."""
    cdef ConvShape s = make_shape(shape)
    cdef fnn_gemm_mapped_args g
    cdef Py_ssize_t grp, howo = s.Ho * s.Wo, hw = s.H * s.W
    cdef int status = 0
    if s.N == 0 or howo == 0:
        return
    memset(&g, 0, sizeof(g))
    g.m, g.n, g.k = s.Cg, s.N * howo, s.Kg
    g.a_rs = 1
    g.a_k = fnn_map_affine(s.Cg)
    g.b_k = fnn_map_affine(howo)
    g.b_n = fnn_map_make(howo, howo, s.K * howo, 0, 1)
    g.ldo = hw
    g.o_n = fnn_map_make(howo, s.Wo, s.C * hw, s.sh * s.W, s.sw)
    g.l2_bytes = l2_bytes
    with nogil:
        for grp in range(s.G):
            g.a = &w[grp * s.Kg * s.Cg]
            g.b = &gy[grp * s.Kg * howo]
            g.out = &gx[grp * s.Cg * hw]
            status |= _run(&g, threads, variant, floating is float)
    if status != 0:
        raise MemoryError("conv2d: no memory for the packing buffers of the 1x1 convolution")


def grad_weight(const floating[:, :, :, :] x, const floating[::1] gy, floating[::1] gw,
                tuple shape, int threads, int variant, size_t l2_bytes):
    """d loss / d weight into the flat (K, Cg) gw (overwritten) from x (any strides) and
    the flat contiguous grad_output."""
    cdef ConvShape s = make_shape(shape)
    cdef fnn_gemm_mapped_args g
    cdef Py_ssize_t grp, howo = s.Ho * s.Wo
    cdef Py_ssize_t xn = _stride(x, 0), xc = _stride(x, 1), xh = _stride(x, 2), xw = _stride(x, 3)
    cdef int status = 0
    if s.N == 0 or howo == 0:
        memset(&gw[0], 0, gw.shape[0] * sizeof(floating))
        return
    memset(&g, 0, sizeof(g))
    g.m, g.n, g.k = s.Kg, s.Cg, s.N * howo
    g.a_rs = howo
    g.a_k = fnn_map_make(howo, howo, s.K * howo, 0, 1)
    g.b_k = fnn_map_make(howo, s.Wo, xn, s.sh * xh, s.sw * xw)
    g.b_n = fnn_map_affine(xc)
    g.ldo = s.Cg
    g.o_n = fnn_map_affine(1)
    g.l2_bytes = l2_bytes
    with nogil:
        for grp in range(s.G):
            g.a = &gy[grp * s.Kg * howo]
            g.b = &x[0, grp * s.Cg, 0, 0]
            g.out = &gw[grp * s.Kg * s.Cg]
            status |= _run(&g, threads, variant, floating is float)
    if status != 0:
        raise MemoryError("conv2d: no memory for the packing buffers of the 1x1 convolution")
