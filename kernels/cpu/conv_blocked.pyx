# Channel-blocked direct convolution, float32 and float64: the Python face of
# conv_blocked.h.  fastnn/ops validated the arguments; fastnn/_backends/cpu/_conv_blocked.py
# plans the blocking, picks the instruction set and calls these two steps:
#
#   pack       the weights, in blocks of output channels for the micro-kernel
#   convolve   the whole convolution of a source tensor with packed weights into a
#              destination of any strides (its own OpenMP threads, GIL released)
#   weight_grad  the weight gradient from the input and grad_output
#   transpose  the SIMD transpose the kernels pack with (exposed for its tests)
import numpy as np

from cython cimport floating

cdef extern from "conv_blocked.h" nogil:
    ctypedef struct fnn_cb_geom:
        Py_ssize_t N, H, W, G, Cg, Kg
        Py_ssize_t R, S, str_h, str_w, dil_h, dil_w, pt, pl
        Py_ssize_t Ho, Wo
    ctypedef struct fnn_cb_args:
        const void* src
        Py_ssize_t sn, sc, sh, sw
        fnn_cb_geom geo
        const void* wp
        const void* w
        Py_ssize_t wk, wc, wr, ws
        const void* bias
        int act
        int stream
        void* dst
        Py_ssize_t dn, dk, dh, dw
        int in_place
        Py_ssize_t rows, kbs, kc
        int threads
    ctypedef struct fnn_cb_wargs:
        const void* x
        Py_ssize_t sn, sc, sh, sw
        const void* gy
        Py_ssize_t gn, gk, gh, gw_
        fnn_cb_geom geo
        void* out
        Py_ssize_t rows, kbs, cc, imgs
        int threads
    int fnn_cb_wgrad_run_f32(const fnn_cb_wargs* a, int isa)
    int fnn_cb_wgrad_run_f64(const fnn_cb_wargs* a, int isa)
    int fnn_cb_run_f32(const fnn_cb_args* a, int isa)
    int fnn_cb_run_f64(const fnn_cb_args* a, int isa)
    void fnn_cb_pack_f32(const float* w, Py_ssize_t wk, Py_ssize_t wc, Py_ssize_t wr,
                         Py_ssize_t ws, Py_ssize_t G, Py_ssize_t Kg, Py_ssize_t Cg,
                         Py_ssize_t R, Py_ssize_t S, float* wp, int isa, int threads)
    void fnn_cb_pack_f64(const double* w, Py_ssize_t wk, Py_ssize_t wc, Py_ssize_t wr,
                         Py_ssize_t ws, Py_ssize_t G, Py_ssize_t Kg, Py_ssize_t Cg,
                         Py_ssize_t R, Py_ssize_t S, double* wp, int isa, int threads)
    void fnn_cb_transpose_run_f32(const float* src, Py_ssize_t lds, Py_ssize_t ni,
                                  Py_ssize_t nj, float* dst, Py_ssize_t ldd, int isa,
                                  int epi, const float* bias, int act, int stream)
    void fnn_cb_transpose_run_f64(const double* src, Py_ssize_t lds, Py_ssize_t ni,
                                  Py_ssize_t nj, double* dst, Py_ssize_t ldd, int isa,
                                  int epi, const double* bias, int act, int stream)
    int fnn_cb_isa(int requested)
    void fnn_cb_tile(int isa, int is_double, Py_ssize_t* ob, Py_ssize_t* nw)
    Py_ssize_t fnn_cb_packed_elements(int isa, int is_double, Py_ssize_t G, Py_ssize_t Kg,
                                      Py_ssize_t Cg, Py_ssize_t R, Py_ssize_t S)


cdef fnn_cb_geom _geometry(Py_ssize_t* src, Py_ssize_t* dst, Py_ssize_t groups,
                           tuple kernel, tuple stride, tuple dilation, tuple offset):
    """The geometry of a convolution of src (N, C, H, W) producing dst (N, K, Ho, Wo)."""
    cdef fnn_cb_geom g
    g.N, g.H, g.W = src[0], src[2], src[3]
    g.G, g.Cg, g.Kg = groups, src[1] // groups, dst[1] // groups
    g.R, g.S = kernel
    g.str_h, g.str_w = stride
    g.dil_h, g.dil_w = dilation
    g.pt, g.pl = offset
    g.Ho, g.Wo = dst[2], dst[3]
    return g


def level(int requested):
    """The instruction-set level that runs for ``requested`` (0 base, 1 AVX2, 2 AVX-512):
    capped at what this CPU supports."""
    return fnn_cb_isa(requested)


def register_tile(int isa, bint is_double):
    """(OB, NW): output channels per block and output positions of the register tile."""
    cdef Py_ssize_t ob = 0, nw = 0
    fnn_cb_tile(fnn_cb_isa(isa), is_double, &ob, &nw)
    return ob, nw


def packed_size(Py_ssize_t K, Py_ssize_t Cg, Py_ssize_t R, Py_ssize_t S,
                Py_ssize_t groups, int isa, bint is_double):
    """Elements of the packed weights of a (K, Cg, R, S) weight at level isa."""
    return fnn_cb_packed_elements(fnn_cb_isa(isa), is_double, groups, K // groups, Cg, R, S)


def pack(const floating[:, :, :, :] w, Py_ssize_t groups, int isa, int threads, out=None):
    """The packed weights of w viewed as (G*Kg, Cg, R, S) with any strides (a flipped or
    transposed view is read in place), for :func:`convolve` at level isa: written into
    ``out`` (flat, contiguous, at least :func:`packed_size` elements; 64-byte aligned is
    best) or a new aligned array."""
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t K = w.shape[0], Cg = w.shape[1], R = w.shape[2], S = w.shape[3]
    cdef Py_ssize_t Kg = K // groups
    cdef bint is_double = floating is double
    cdef Py_ssize_t size = packed_size(K, Cg, R, S, groups, isa, is_double)
    cdef Py_ssize_t skip
    if out is None:
        # 64-byte aligned, so that every weight vector the micro-kernel loads is one line
        raw = np.empty(max(size, 1) + 64 // isz, dtype=np.float64 if is_double else np.float32)
        skip = (-(raw.ctypes.data % 64) % 64) // isz
        out = raw[skip : skip + max(size, 1)]
    cdef floating[::1] wp = out
    if wp.shape[0] < size:
        raise ValueError(f"pack: out holds {wp.shape[0]} elements, {size} needed")
    cdef Py_ssize_t wk = w.strides[0] // isz, wc = w.strides[1] // isz
    cdef Py_ssize_t wr = w.strides[2] // isz, ws = w.strides[3] // isz
    if K == 0 or Cg == 0:
        return out
    with nogil:
        if floating is float:
            fnn_cb_pack_f32(&w[0, 0, 0, 0], wk, wc, wr, ws, groups, Kg, Cg, R, S, &wp[0],
                            isa, threads)
        else:
            fnn_cb_pack_f64(&w[0, 0, 0, 0], wk, wc, wr, ws, groups, Kg, Cg, R, S, &wp[0],
                            isa, threads)
    return out


def convolve(const floating[:, :, :, :] src, const floating[::1] wp, bias,
             floating[:, :, :, :] dst, Py_ssize_t groups, tuple kernel, tuple stride,
             tuple dilation, tuple offset, bint in_place, Py_ssize_t rows, Py_ssize_t kbs,
             Py_ssize_t kc, int isa, int threads, const floating[:, :, :, :] w=None,
             int act=0, bint stream=False):
    """dst[n, k, i, j] = act(bias[k] + sum w * src over the window at
    (i*stride - offset, j*stride - offset)), for dst a view of any strides (N, K, Ho, Wo);
    act: 0 none, 1 relu, 4 relu6 (conv_epilogue.h), applied as the partial sums are
    written out.  stream: write dst with streaming stores where a vector is one whole
    aligned cache line (for outputs that outgrow the last-level cache).

    kernel (R, S), stride, dilation and offset (pt, pl) are pairs; in_place reads src
    without copying (only when nothing is padded and its rows are contiguous); rows, kbs,
    kc: the blocking (output rows and channel blocks per work item, input channels per
    reduction chunk).  Weights: ``wp`` from :func:`pack`, or ``wp`` None and ``w`` the
    (K, Cg, R, S) weights of any strides, packed chunk by chunk just in time (then a
    work item is a group's ``kbs`` channel blocks over every image and row)."""
    cdef Py_ssize_t isz = sizeof(floating)
    cdef fnn_cb_args a
    cdef const floating[::1] b
    cdef int rc
    if wp is None:
        if w is None:
            raise ValueError("convolve: give packed weights wp or the weights w")
        a.wp = NULL
        a.w = &w[0, 0, 0, 0]
        a.wk, a.wc = w.strides[0] // isz, w.strides[1] // isz
        a.wr, a.ws = w.strides[2] // isz, w.strides[3] // isz
    else:
        a.wp = &wp[0]
        a.w = NULL
        a.wk = a.wc = a.wr = a.ws = 0
    a.src = &src[0, 0, 0, 0]
    a.sn, a.sc = src.strides[0] // isz, src.strides[1] // isz
    a.sh, a.sw = src.strides[2] // isz, src.strides[3] // isz
    a.geo = _geometry(src.shape, dst.shape, groups, kernel, stride, dilation, offset)
    a.bias = NULL
    if bias is not None:
        b = bias
        a.bias = &b[0]
    a.act = act
    a.stream = stream
    a.dst = &dst[0, 0, 0, 0]
    a.dn, a.dk = dst.strides[0] // isz, dst.strides[1] // isz
    a.dh, a.dw = dst.strides[2] // isz, dst.strides[3] // isz
    a.in_place = in_place
    a.rows, a.kbs, a.kc = rows, kbs, kc
    a.threads = threads
    with nogil:
        if floating is float:
            rc = fnn_cb_run_f32(&a, isa)
        else:
            rc = fnn_cb_run_f64(&a, isa)
    if rc != 0:
        raise MemoryError("conv_blocked: out of memory for the per-thread buffers")


def weight_grad(const floating[:, :, :, :] x, const floating[:, :, :, :] gy,
                floating[::1] out, Py_ssize_t groups, tuple kernel, tuple stride,
                tuple dilation, tuple offset, Py_ssize_t rows, Py_ssize_t kbs,
                Py_ssize_t cc, Py_ssize_t imgs, int isa, int threads):
    """out (flat (K, Cg, R, S), overwritten) = d loss / d weight of the convolution of x
    (N, C, H, W) producing gy (N, K, Ho, Wo), both of any strides.  rows, kbs, cc: output
    rows per position block, channel blocks and input channels per work item; imgs:
    images whose blocks of rows each register tile reduces over in one call."""
    if min(rows, kbs, cc, imgs) < 1:
        raise ValueError("conv_blocked.weight_grad: rows, kbs, cc and imgs must be >= 1")
    cdef Py_ssize_t isz = sizeof(floating)
    cdef fnn_cb_wargs a
    cdef int rc
    a.x = &x[0, 0, 0, 0]
    a.sn, a.sc = x.strides[0] // isz, x.strides[1] // isz
    a.sh, a.sw = x.strides[2] // isz, x.strides[3] // isz
    a.gy = &gy[0, 0, 0, 0]
    a.gn, a.gk = gy.strides[0] // isz, gy.strides[1] // isz
    a.gh, a.gw_ = gy.strides[2] // isz, gy.strides[3] // isz
    a.geo = _geometry(x.shape, gy.shape, groups, kernel, stride, dilation, offset)
    a.out = &out[0]
    a.rows, a.kbs, a.cc, a.imgs = rows, kbs, cc, imgs
    a.threads = threads
    with nogil:
        if floating is float:
            rc = fnn_cb_wgrad_run_f32(&a, isa)
        else:
            rc = fnn_cb_wgrad_run_f64(&a, isa)
    if rc != 0:
        raise MemoryError("conv_blocked: out of memory for the per-thread buffers")


def transpose(const floating[:, :] src, floating[:, :] dst, int isa, bint epilogue=False,
              const floating[::1] bias=None, int act=0, bint stream=False):
    """dst = src.T through the kernels' SIMD transpose at level isa (exposed for its
    tests): src (ni, nj) with unit column stride, dst (nj, ni) likewise, any row
    strides.  epilogue: the variant the output stores run, dst = act(src.T + bias[:,
    None]) with bias (nj,) or None and act a conv_epilogue.h code (0 none, 1 relu, 4
    relu6); stream: streaming stores for its whole aligned lines."""
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t ni = src.shape[0], nj = src.shape[1]
    cdef const floating* bp = NULL
    if dst.shape[0] != nj or dst.shape[1] != ni:
        raise ValueError(f"transpose: dst must be ({nj}, {ni}), got "
                         f"({dst.shape[0]}, {dst.shape[1]})")
    if (ni > 1 and src.strides[1] != isz) or (nj > 1 and dst.strides[1] != isz):
        raise ValueError("transpose: rows must be contiguous")
    if act not in (0, 1, 4):
        raise ValueError(f"transpose: act must be 0, 1 or 4, got {act}")
    if bias is not None:
        if not epilogue or bias.shape[0] != nj:
            raise ValueError(f"transpose: bias must be ({nj},) and come with epilogue=True")
        if nj > 0:
            bp = &bias[0]
    if ni == 0 or nj == 0:
        return
    if (ni > 1 and src.strides[0] < nj * isz) or (nj > 1 and dst.strides[0] < ni * isz):
        raise ValueError("transpose: rows must not overlap")
    with nogil:
        if floating is float:
            fnn_cb_transpose_run_f32(&src[0, 0], src.strides[0] // isz, ni, nj, &dst[0, 0],
                                     dst.strides[0] // isz, isa, epilogue, bp, act, stream)
        else:
            fnn_cb_transpose_run_f64(&src[0, 0], src.strides[0] // isz, ni, nj, &dst[0, 0],
                                     dst.strides[0] // isz, isa, epilogue, bp, act, stream)
