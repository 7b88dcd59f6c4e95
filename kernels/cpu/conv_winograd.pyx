# Winograd convolution F(m x m, 3 x 3), m = 2, 4 or 6, float32 and float64: the Python
# face of winograd.h.  fastnn/ops validated the arguments; fastnn/_backends/cpu/
# conv_winograd.py checks that the problem is a 3x3 stride-1 undilated one, chooses the
# tile size, the blocking and the instruction set, and calls these two steps:
#
#   transform_filters  U = G w G^T for every filter, packed for the micro-kernel
#   convolve           the whole convolution of a source tensor with U (its own OpenMP
#                      threads, GIL released)
import numpy as np

from cython cimport floating

cdef extern from "winograd.h" nogil:
    ctypedef struct fnn_wino_args:
        const void* src
        Py_ssize_t sn, sc, sh, sw
        Py_ssize_t N, C, H, W
        Py_ssize_t K, G
        Py_ssize_t Ho, Wo, pt, pl
        const void* u
        const void* bias
        int act
        void* dst
        Py_ssize_t pb, kc
        Py_ssize_t tk, tp
    int fnn_wino_run_f32(const fnn_wino_args* a, const float* w, int transposed, int m,
                         int isa)
    int fnn_wino_run_f64(const fnn_wino_args* a, const double* w, int transposed, int m,
                         int isa)
    int fnn_wino_filter_f32(const float* w, int transposed, Py_ssize_t groups,
                            Py_ssize_t kg, Py_ssize_t cg, int m, int isa, float* u,
                            int threads)
    int fnn_wino_filter_f64(const double* w, int transposed, Py_ssize_t groups,
                            Py_ssize_t kg, Py_ssize_t cg, int m, int isa, double* u,
                            int threads)
    ctypedef struct fnn_wino_wargs:
        const void* x
        Py_ssize_t sn, sc, sh, sw
        const void* gy
        Py_ssize_t N, C, H, W, K, G, Ho, Wo, pt, pl
        void* gw
        Py_ssize_t pb, kc, cc
        int threads
    int fnn_wino_wgrad_run_f32(const fnn_wino_wargs* a, int m, int isa)
    int fnn_wino_wgrad_run_f64(const fnn_wino_wargs* a, int m, int isa)
    int fnn_wino_isa(int requested)
    Py_ssize_t fnn_wino_filter_elements(int m, int isa, int is_double, Py_ssize_t groups,
                                        Py_ssize_t kg, Py_ssize_t cg)
    void fnn_wino_tile(int isa, int is_double, Py_ssize_t* mr, Py_ssize_t* nr)
    size_t fnn_wino_scratch_bytes(int m, int isa, int is_double, Py_ssize_t cg,
                                  Py_ssize_t kc, Py_ssize_t pb, int jit)

cdef tuple _dims(Py_ssize_t* shape, Py_ssize_t* strides, Py_ssize_t itemsize):
    """(N, C, H, W) and the element strides of a 4-D memoryview."""
    return (shape[0], shape[1], shape[2], shape[3], strides[0] // itemsize,
            strides[1] // itemsize, strides[2] // itemsize, strides[3] // itemsize)


#: Tile sizes m of F(m x m, 3 x 3) this module runs.
TILE_SIZES = (2, 4, 6)


def level(int requested):
    """The instruction-set level that runs for ``requested`` (0 base, 1 AVX2, 2 AVX-512):
    capped at what this CPU supports."""
    return fnn_wino_isa(requested)


def register_tile(int isa, bint is_double):
    """(MR, NR): output channels and tiles of the micro-kernel's register tile."""
    cdef Py_ssize_t mr = 0, nr = 0
    fnn_wino_tile(fnn_wino_isa(isa), is_double, &mr, &nr)
    return mr, nr


def scratch_bytes(int m, int isa, bint is_double, Py_ssize_t cg, Py_ssize_t kc,
                  Py_ssize_t pb, bint jit):
    """Bytes of per-thread scratch of one call (transformed input of a block, products
    of a chunk, and with ``jit`` the chunk's transformed filters)."""
    return fnn_wino_scratch_bytes(m, fnn_wino_isa(isa), is_double, cg, kc, pb, jit)


def transform_filters(const floating[::1] w, bint transposed, Py_ssize_t groups,
                      Py_ssize_t kg, Py_ssize_t cg, int m, int isa, int num_threads):
    """U for the flat contiguous 3x3 weight w, packed for the micro-kernel of ``isa``.

    Forward: w is (groups * kg, cg, 3, 3).  transposed (the input gradient): w is the
    forward weight (groups * cg, kg, 3, 3), read flipped with its two channel axes
    swapped, so that U convolves grad_output (kg channels per group in) into cg channels.
    """
    if m not in TILE_SIZES:
        raise ValueError(f"winograd: tile size must be one of {TILE_SIZES}, got {m}")
    cdef Py_ssize_t mr = 0, nr = 0
    isa = fnn_wino_isa(isa)
    fnn_wino_tile(isa, floating is double, &mr, &nr)
    if w.shape[0] != groups * kg * cg * 9:
        raise ValueError("winograd: weight size does not match the channels")
    dtype = np.float32 if floating is float else np.float64
    u_arr = np.empty(fnn_wino_filter_elements(m, isa, floating is double, groups, kg, cg),
                     dtype=dtype)
    cdef floating[::1] u = u_arr
    cdef int rc
    with nogil:
        if floating is float:
            rc = fnn_wino_filter_f32(&w[0], transposed, groups, kg, cg, m, isa, &u[0],
                                     num_threads)
        else:
            rc = fnn_wino_filter_f64(&w[0], transposed, groups, kg, cg, m, isa, &u[0],
                                     num_threads)
    if rc != 0:
        raise MemoryError("winograd: could not allocate the filter transform's scratch")
    return u_arr


cdef _check_sizes(Py_ssize_t n, Py_ssize_t c, Py_ssize_t out_channels, Py_ssize_t groups,
                  Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t out_size, str out_name,
                  Py_ssize_t weight_size):
    """ValueError unless the channels split into groups and the flat ``out_name`` (N, K,
    ho, wo) and weight (K, C // groups, 3, 3) have their sizes, for an input of n
    images of c channels and K = out_channels."""
    if c % groups or out_channels % groups:
        raise ValueError("winograd: channels must divide into groups")
    if out_size != n * out_channels * ho * wo:
        raise ValueError(f"winograd: {out_name} size does not match")
    if weight_size != out_channels * (c // groups) * 9:
        raise ValueError("winograd: weight size does not match the channels")


def convolve(const floating[:, :, :, :] src, object u, const floating[::1] w,
             bint transposed, object bias, floating[::1] dst, Py_ssize_t out_channels,
             Py_ssize_t groups, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t pt, Py_ssize_t pl,
             int m, int isa, Py_ssize_t pb, Py_ssize_t kc, Py_ssize_t tk, Py_ssize_t tp,
             int act=0):
    """dst (flat contiguous (N, out_channels, ho, wo)) = act(the convolution of src (any
    strides) with the 3x3 filters, plus ``bias`` ((out_channels,) contiguous, or None));
    the source window of output (oh, ow) starts at (oh - pt, ow - pl).  act: 0 none,
    1 relu, 4 relu6 (conv_epilogue.h), applied in the output transform.

    The filters are ``u`` from :func:`transform_filters` (same m and isa), or, when u is
    None, transformed per thread just in time from the flat weight ``w`` (laid out as
    transform_filters takes it, ``transposed`` likewise).  pb: tiles per block, a multiple
    of the register tile's NR; kc: output channels per chunk, a multiple of its MR; the
    threads form a tk x tp grid (chunks of channels x blocks of tiles).
    """
    cdef Py_ssize_t mr = 0, nr = 0
    cdef fnn_wino_args a
    cdef const floating[::1] b
    cdef const floating[::1] uu
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef int rc
    isa = fnn_wino_isa(isa)
    fnn_wino_tile(isa, floating is double, &mr, &nr)
    if m not in TILE_SIZES:
        raise ValueError(f"winograd: tile size must be one of {TILE_SIZES}, got {m}")
    if pb < nr or pb % nr or kc < mr or kc % mr or tk < 1 or tp < 1:
        raise ValueError(f"winograd: pb={pb} must be a multiple of {nr}, kc={kc} of {mr}")
    _check_sizes(src.shape[0], src.shape[1], out_channels, groups, ho, wo, dst.shape[0],
                 "output", w.shape[0])
    a.src = &src[0, 0, 0, 0]
    a.N, a.C, a.H, a.W, a.sn, a.sc, a.sh, a.sw = _dims(src.shape, src.strides, itemsize)
    a.K, a.G = out_channels, groups
    a.Ho, a.Wo, a.pt, a.pl = ho, wo, pt, pl
    a.u = NULL
    if u is not None:
        uu = u
        a.u = &uu[0]
    a.bias = NULL
    if bias is not None:
        b = bias
        if b.shape[0] != out_channels:
            raise ValueError("winograd: bias size does not match")
        a.bias = &b[0]
    a.act = act
    a.dst = &dst[0]
    a.pb, a.kc, a.tk, a.tp = pb, kc, tk, tp
    with nogil:
        if floating is float:
            rc = fnn_wino_run_f32(&a, &w[0], transposed, m, isa)
        else:
            rc = fnn_wino_run_f64(&a, &w[0], transposed, m, isa)
    if rc != 0:
        raise MemoryError("winograd: could not allocate the per-thread scratch")


def weight_gradient(const floating[:, :, :, :] x, const floating[::1] gy, floating[::1] gw,
                    Py_ssize_t out_channels, Py_ssize_t groups, Py_ssize_t ho, Py_ssize_t wo,
                    Py_ssize_t pt, Py_ssize_t pl, int m, int isa, Py_ssize_t pb,
                    Py_ssize_t kc, Py_ssize_t cc, int num_threads):
    """gw (flat contiguous (out_channels, C // groups, 3, 3), overwritten) = the weight
    gradient of the 3x3 stride-1 convolution of x (any strides) whose output gradient is
    gy (flat contiguous (N, out_channels, ho, wo)); window offsets pt, pl.

    pb: tiles per block; kc x cc: output x input channels per work item.
    """
    cdef fnn_wino_wargs a
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef int rc
    isa = fnn_wino_isa(isa)
    if m not in TILE_SIZES:
        raise ValueError(f"winograd: tile size must be one of {TILE_SIZES}, got {m}")
    if pb < 1 or kc < 1 or cc < 1:
        raise ValueError("winograd: pb, kc and cc must be positive")
    _check_sizes(x.shape[0], x.shape[1], out_channels, groups, ho, wo, gy.shape[0],
                 "grad_output", gw.shape[0])
    a.x = &x[0, 0, 0, 0]
    a.N, a.C, a.H, a.W, a.sn, a.sc, a.sh, a.sw = _dims(x.shape, x.strides, itemsize)
    a.gy = &gy[0]
    a.K, a.G, a.Ho, a.Wo, a.pt, a.pl = out_channels, groups, ho, wo, pt, pl
    a.gw = &gw[0]
    a.pb, a.kc, a.cc, a.threads = pb, kc, cc, max(1, num_threads)
    with nogil:
        if floating is float:
            rc = fnn_wino_wgrad_run_f32(&a, m, isa)
        else:
            rc = fnn_wino_wgrad_run_f64(&a, m, isa)
    if rc != 0:
        raise MemoryError("winograd: could not allocate the per-thread scratch")
