# Convolution as im2col + GEMM, 1-D and 2-D (1-D is 2-D with H = 1), forward and
# backward, float32 and float64.
#
# The column matrix is never built for a whole batch: each OpenMP thread owns a buffer of
# C*R*S x `tile` columns and processes work items -- (image, tile of output positions) --
# one at a time: im2col of the tile into its buffer, then one single-threaded GEMM per
# group straight into the output (row stride Ho*Wo), the bias fused as the GEMM's C
# operand.  The caller (fastnn/backends/cpu/conv_im2col.py) limits BLAS to one thread
# around these calls, so BLAS never spawns threads inside the OpenMP region.
#
# A 1x1 convolution with stride 1 and no padding over a contiguous image needs no
# im2col: the image itself is the column matrix.
import numpy as np

cimport openmp
from cython cimport floating
from cython.parallel cimport parallel

from blas cimport gemm_rowmajor
from col2im cimport col2im_tile
from conv_shape cimport ConvShape, ceil_div, make_shape
from im2col cimport im2col_tile


cdef inline Py_ssize_t share(Py_ssize_t items, int part) noexcept nogil:
    """Where this thread's contiguous share of items starts (part 0) or ends (part 1),
    inside a parallel block."""
    cdef Py_ssize_t tid = openmp.omp_get_thread_num()
    return items * (tid + part) // openmp.omp_get_num_threads()


cdef inline bint is_pointwise(ConvShape* s, Py_ssize_t xc, Py_ssize_t xh,
                              Py_ssize_t xw) noexcept nogil:
    """A 1x1, stride-1, unpadded convolution over contiguous images: the columns are the
    image itself, (C, H*W) with row stride H*W."""
    return (s.R == 1 and s.S == 1 and s.sh == 1 and s.sw == 1 and s.pt == 0 and s.pb == 0
            and s.pl == 0 and s.pr == 0 and xw == 1 and xh == s.W and xc == s.H * s.W)


cdef struct Columns:
    # Where the GEMM finds the columns of one tile: row q at ptr + q * ld.
    void* ptr
    Py_ssize_t ld


cdef inline Columns tile_columns(const floating* x, Py_ssize_t xn, Py_ssize_t xc,
                                 Py_ssize_t xh, Py_ssize_t xw, ConvShape* s, bint pointwise,
                                 Py_ssize_t n, Py_ssize_t p0, Py_ssize_t npos,
                                 floating* col) noexcept nogil:
    """The column matrix of positions [p0, p0 + npos) of image n, all channels."""
    cdef Columns cols
    if pointwise:
        cols.ptr = <void*>(x + n * xn + p0)
        cols.ld = s.H * s.W
    else:
        im2col_tile(x + n * xn, xc, xh, xw, s, s.C, p0, npos, col)
        cols.ptr = <void*>col
        cols.ld = npos
    return cols


# ---------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------

cdef void fwd_items(const floating* x, Py_ssize_t xn, Py_ssize_t xc, Py_ssize_t xh,
                    Py_ssize_t xw, const floating* w, const floating* bias, floating* y,
                    ConvShape* s, Py_ssize_t tile, Py_ssize_t start, Py_ssize_t end,
                    floating* col) noexcept nogil:
    """Items start..end-1 of the forward pass; item = (image, tile of positions)."""
    cdef Py_ssize_t howo = s.Ho * s.Wo, ntiles = ceil_div(howo, tile)
    cdef Py_ssize_t item, n, p0, npos, g, k, j
    cdef bint pointwise = is_pointwise(s, xc, xh, xw)
    cdef Columns cols
    cdef const floating* b
    cdef floating* yb
    cdef floating beta = 1 if bias != NULL else 0
    for item in range(start, end):
        n = item // ntiles
        p0 = (item % ntiles) * tile
        npos = min(tile, howo - p0)
        cols = tile_columns(x, xn, xc, xh, xw, s, pointwise, n, p0, npos, col)
        for g in range(s.G):
            yb = y + (n * s.K + g * s.Kg) * howo + p0
            if bias != NULL:  # the GEMM adds onto the bias: C = bias, beta = 1
                for k in range(s.Kg):
                    for j in range(npos):
                        yb[k * howo + j] = bias[g * s.Kg + k]
            gemm_rowmajor(False, False, <int>s.Kg, <int>npos, <int>s.Q, 1,
                          w + g * s.Kg * s.Q, <int>s.Q,
                          <const floating*>cols.ptr + g * s.Q * cols.ld, <int>cols.ld,
                          beta, yb, <int>howo)


def forward(const floating[:, :, :, :] x, const floating[::1] w, const floating[::1] bias,
            bint has_bias, floating[::1] y, tuple shape, Py_ssize_t tile, int num_threads):
    """y = conv(x, w) + bias for x (N, C, H, W) with any strides, w the flat contiguous
    (K, Cg, R, S) weight and y the flat contiguous (N, K, Ho, Wo) output.

    tile: output positions per work item (the column buffer holds C*R*S x tile)."""
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t items = s.N * ceil_div(s.Ho * s.Wo, tile)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t start = 0, end = 0
    if s.N == 0:
        return
    cdef Py_ssize_t xn = x.strides[0] // isz, xc = x.strides[1] // isz
    cdef Py_ssize_t xh = x.strides[2] // isz, xw = x.strides[3] // isz
    cdef Py_ssize_t per_thread = 0 if is_pointwise(&s, xc, xh, xw) else s.C * s.R * s.S * tile
    cdef floating[::1] col = np.empty(max(nt * per_thread, 1), dtype=DTYPE)
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* bp = &bias[0] if has_bias else NULL
    with nogil:
        if nt == 1:
            fwd_items(xp, xn, xc, xh, xw, &w[0], bp, &y[0], &s, tile, 0, items, &col[0])
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                fwd_items(xp, xn, xc, xh, xw, &w[0], bp, &y[0], &s, tile, start, end,
                          &col[0] + openmp.omp_get_thread_num() * per_thread)


# ---------------------------------------------------------------------------------------
# Weight gradient: grad_weight[g] += grad_output[n, g] (Kg x tile) @ columns^T
# ---------------------------------------------------------------------------------------

cdef void gw_items(const floating* x, Py_ssize_t xn, Py_ssize_t xc, Py_ssize_t xh,
                   Py_ssize_t xw, const floating* gy, ConvShape* s, Py_ssize_t tile,
                   Py_ssize_t start, Py_ssize_t end, floating* col,
                   floating* acc) noexcept nogil:
    """Items start..end-1; item = (image, tile).  Adds into this thread's (K, Q) acc."""
    cdef Py_ssize_t howo = s.Ho * s.Wo, ntiles = ceil_div(howo, tile)
    cdef Py_ssize_t item, n, p0, npos, g
    cdef bint pointwise = is_pointwise(s, xc, xh, xw)
    cdef Columns cols
    for item in range(start, end):
        n = item // ntiles
        p0 = (item % ntiles) * tile
        npos = min(tile, howo - p0)
        cols = tile_columns(x, xn, xc, xh, xw, s, pointwise, n, p0, npos, col)
        for g in range(s.G):
            gemm_rowmajor(False, True, <int>s.Kg, <int>s.Q, <int>npos, 1,
                          gy + (n * s.K + g * s.Kg) * howo + p0, <int>howo,
                          <const floating*>cols.ptr + g * s.Q * cols.ld, <int>cols.ld,
                          1, acc + g * s.Kg * s.Q, <int>s.Q)


def backward_weight(const floating[:, :, :, :] x, const floating[::1] gy, tuple shape,
                    Py_ssize_t tile, int num_threads):
    """grad_weight as a float64 (K, Cg*R*S) array from x (N, C, H, W, any strides) and
    the flat contiguous grad_output gy (N, K, Ho, Wo).  Each thread accumulates its items
    in its own buffer; the buffers are summed at the end."""
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t items = s.N * ceil_div(s.Ho * s.Wo, tile)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t start = 0, end = 0
    acc_array = np.zeros((nt, s.K * s.Q), dtype=DTYPE)
    cdef floating[:, ::1] acc = acc_array
    if s.N == 0:
        return np.zeros((s.K, s.Q))
    cdef Py_ssize_t xn = x.strides[0] // isz, xc = x.strides[1] // isz
    cdef Py_ssize_t xh = x.strides[2] // isz, xw = x.strides[3] // isz
    cdef Py_ssize_t per_thread = 0 if is_pointwise(&s, xc, xh, xw) else s.C * s.R * s.S * tile
    cdef floating[::1] col = np.empty(max(nt * per_thread, 1), dtype=DTYPE)
    cdef const floating* xp = &x[0, 0, 0, 0]
    with nogil:
        if nt == 1:
            gw_items(xp, xn, xc, xh, xw, &gy[0], &s, tile, 0, items, &col[0], &acc[0, 0])
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                gw_items(xp, xn, xc, xh, xw, &gy[0], &s, tile, start, end,
                         &col[0] + openmp.omp_get_thread_num() * per_thread,
                         &acc[openmp.omp_get_thread_num(), 0])
    return acc_array.sum(axis=0, dtype=np.float64).reshape(s.K, s.Q)


# ---------------------------------------------------------------------------------------
# Input gradient: columns = weight[g]^T @ grad_output[n, g], then col2im
# ---------------------------------------------------------------------------------------

cdef void gx_items(const floating* gy, const floating* w, floating* gx, ConvShape* s,
                   Py_ssize_t tile, Py_ssize_t cpc, bint pointwise, Py_ssize_t start,
                   Py_ssize_t end, floating* col) noexcept nogil:
    """Items start..end-1; item = (image, group, chunk of cpc input channels), each
    looping over the tiles of positions.  An item owns its channels of gx."""
    cdef Py_ssize_t howo = s.Ho * s.Wo, plane = s.H * s.W, rs = s.R * s.S
    cdef Py_ssize_t ncc = ceil_div(s.Cg, cpc)
    cdef Py_ssize_t item, cc, g, n, c0, nch, t, p0, npos
    cdef const floating* gyb
    cdef floating* gxb
    for item in range(start, end):
        cc = item % ncc
        g = (item // ncc) % s.G
        n = item // (ncc * s.G)
        c0 = cc * cpc
        nch = min(cpc, s.Cg - c0)
        gyb = gy + (n * s.K + g * s.Kg) * howo
        gxb = gx + (n * s.C + g * s.Cg + c0) * plane
        for t in range(ceil_div(howo, tile)):
            p0 = t * tile
            npos = min(tile, howo - p0)
            if pointwise:  # the columns are gx itself
                gemm_rowmajor(True, False, <int>nch, <int>npos, <int>s.Kg, 1,
                              w + g * s.Kg * s.Q + c0, <int>s.Q, gyb + p0, <int>howo,
                              0, gxb + p0, <int>plane)
            else:
                gemm_rowmajor(True, False, <int>(nch * rs), <int>npos, <int>s.Kg, 1,
                              w + g * s.Kg * s.Q + c0 * rs, <int>s.Q, gyb + p0, <int>howo,
                              0, col, <int>npos)
                col2im_tile(col, s, nch, p0, npos, gxb)


def backward_input(const floating[::1] gy, const floating[::1] w, floating[::1] gx,
                   tuple shape, Py_ssize_t tile, Py_ssize_t channels, int num_threads):
    """gx (flat contiguous (N, C, H, W), zero on entry) = the gradient of conv(x, w) for
    the flat contiguous grad_output gy.  channels: input channels per work item."""
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t items = s.N * s.G * ceil_div(s.Cg, channels)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t start = 0, end = 0
    cdef bint pointwise = is_pointwise(&s, s.H * s.W, s.W, 1)
    cdef Py_ssize_t per_thread = 0 if pointwise else channels * s.R * s.S * tile
    cdef floating[::1] col = np.empty(max(nt * per_thread, 1), dtype=DTYPE)
    if s.N == 0:
        return
    with nogil:
        if nt == 1:
            gx_items(&gy[0], &w[0], &gx[0], &s, tile, channels, pointwise, 0, items, &col[0])
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                gx_items(&gy[0], &w[0], &gx[0], &s, tile, channels, pointwise, start, end,
                         &col[0] + openmp.omp_get_thread_num() * per_thread)
