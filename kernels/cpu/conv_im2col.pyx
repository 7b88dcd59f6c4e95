# Convolution as im2col + GEMM, 1-D and 2-D (1-D is 2-D with H = 1), forward and
# backward, float32 and float64.
#
# The column matrix is never built for a whole batch: each OpenMP thread owns a buffer of
# C*R*S x (tile columns) and processes work items one at a time -- im2col of the tile into
# its buffer, then one single-threaded GEMM per group.  A tile is either a run of `tile`
# output positions of one image, or, for small images, `ipt` whole images side by side
# (so that the GEMM is wide enough to run fast).  The GEMMs run on SciPy's BLAS or on
# fastnn's blocked kernel (gemm_engine.pxd), as the caller's measured choice says.  A one-image tile's GEMM writes straight
# into the output (row stride Ho*Wo) on top of the bias; a several-image tile's GEMM
# writes a per-thread buffer that is then copied out.  The caller
# (fastnn/_backends/cpu/_conv_im2col.py) limits BLAS to one thread around these calls, so
# BLAS never spawns threads inside the OpenMP region.
#
# A 1x1 convolution with stride 1 and no padding over a contiguous image needs no
# im2col for a one-image tile: the image itself is the column matrix.
import numpy as np

cimport openmp
from cython cimport floating
from cython.parallel cimport parallel
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from gemm_engine cimport GEMM_BLAS, gemm_on
from col2im cimport col2im_tile
from conv_shape cimport ConvShape, ceil_div, make_shape, shape_from, split_channel_item
from im2col cimport im2col_tile

include "gemm_tuning.pxi"  # set_t48_time, t48_time

cdef extern from "conv_epilogue.h" nogil:
    void fnn_conv_rows_f32(int act, float* y, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t ld,
                           const float* bias)
    void fnn_conv_rows_f64(int act, double* y, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t ld,
                           const double* bias)
    void fnn_conv_copy_f32(int act, float* dst, const float* src, Py_ssize_t n, float b)
    void fnn_conv_copy_f64(int act, double* dst, const double* src, Py_ssize_t n, double b)


cdef inline void act_rows(int act, floating* y, Py_ssize_t rows, Py_ssize_t n,
                          Py_ssize_t ld) noexcept nogil:
    """The activation over a block of output rows a GEMM just wrote (bias included)."""
    if floating is float:
        fnn_conv_rows_f32(act, y, rows, n, ld, NULL)
    else:
        fnn_conv_rows_f64(act, y, rows, n, ld, NULL)


cdef inline void copy_out(int act, floating* dst, const floating* src, Py_ssize_t n,
                          floating b) noexcept nogil:
    """dst = act(src + b) over n elements."""
    if floating is float:
        fnn_conv_copy_f32(act, dst, src, n, b)
    else:
        fnn_conv_copy_f64(act, dst, src, n, b)


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


cdef struct Tile:
    Py_ssize_t n0, nimg  # images n0 .. n0 + nimg - 1
    Py_ssize_t p0, npos  # positions p0 .. p0 + npos - 1 of each (all of them if nimg > 1)
    Py_ssize_t cols      # nimg * npos: the GEMM's width


cdef inline Py_ssize_t tiles_per_chunk(ConvShape* s, Py_ssize_t tile,
                                       Py_ssize_t ipt) noexcept nogil:
    """Tiles per chunk of ipt images: 1 for several-image tiles, else one image's tiles."""
    return 1 if ipt > 1 else ceil_div(s.Ho * s.Wo, tile)


cdef inline Tile tile_at(ConvShape* s, Py_ssize_t chunk, Py_ssize_t t, Py_ssize_t tile,
                         Py_ssize_t ipt) noexcept nogil:
    """Tile t of image chunk `chunk` (chunks hold ipt images; ipt > 1 only for tiles of
    whole images)."""
    cdef Tile tl
    cdef Py_ssize_t howo = s.Ho * s.Wo
    tl.n0 = chunk * ipt
    tl.nimg = min(ipt, s.N - tl.n0)
    tl.p0 = 0 if ipt > 1 else t * tile
    tl.npos = howo if ipt > 1 else min(tile, howo - tl.p0)
    tl.cols = tl.nimg * tl.npos
    return tl


cdef struct Matrix:
    # Where a GEMM finds an operand: row i at ptr + i * ld.
    void* ptr
    Py_ssize_t ld


cdef inline Matrix tile_columns(const floating* x, Py_ssize_t xn, Py_ssize_t xc,
                                Py_ssize_t xh, Py_ssize_t xw, ConvShape* s, Tile* tl,
                                bint pointwise, floating* col) noexcept nogil:
    """The column matrix of a tile, all channels: (C*R*S, cols)."""
    cdef Matrix m
    cdef Py_ssize_t i
    if pointwise and tl.nimg == 1:
        m.ptr = <void*>(x + tl.n0 * xn + tl.p0)
        m.ld = s.H * s.W
        return m
    for i in range(tl.nimg):
        im2col_tile(x + (tl.n0 + i) * xn, xc, xh, xw, s, s.C, tl.p0, tl.npos,
                    col + i * tl.npos, tl.cols)
    m.ptr = <void*>col
    m.ld = tl.cols
    return m


cdef inline Matrix tile_grad_output(const floating* gy, ConvShape* s, Tile* tl, Py_ssize_t g,
                                    floating* buf) noexcept nogil:
    """grad_output of a tile for group g as a (Kg, cols) matrix (gathered into buf when the
    tile spans images)."""
    cdef Matrix m
    cdef Py_ssize_t howo = s.Ho * s.Wo, i, k
    if tl.nimg == 1:
        m.ptr = <void*>(gy + (tl.n0 * s.K + g * s.Kg) * howo + tl.p0)
        m.ld = howo
        return m
    for k in range(s.Kg):
        for i in range(tl.nimg):
            memcpy(buf + k * tl.cols + i * howo, gy + ((tl.n0 + i) * s.K + g * s.Kg + k) * howo,
                   howo * sizeof(floating))
    m.ptr = <void*>buf
    m.ld = tl.cols
    return m


# ---------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------

cdef void fwd_items(const floating* x, Py_ssize_t xn, Py_ssize_t xc, Py_ssize_t xh,
                    Py_ssize_t xw, const floating* w, const floating* bias, floating* y,
                    ConvShape* s, Py_ssize_t tile, Py_ssize_t ipt, Py_ssize_t start,
                    Py_ssize_t end, floating* col, floating* ybuf, int act,
                    int engine) noexcept nogil:
    """Items start..end-1 of the forward pass; item = one tile.  The activation ``act``
    (conv_epilogue.h) is applied to each tile's block of outputs right after its GEMM, which
    runs on `engine` (gemm_engine.pxd)."""
    cdef Py_ssize_t howo = s.Ho * s.Wo, per_chunk = tiles_per_chunk(s, tile, ipt)
    cdef Py_ssize_t item, g, k, i, j
    cdef bint pointwise = is_pointwise(s, xc, xh, xw)
    cdef Tile tl
    cdef Matrix cols
    cdef floating* yb
    cdef const floating* src
    cdef floating b
    for item in range(start, end):
        tl = tile_at(s, item // per_chunk, item % per_chunk, tile, ipt)
        cols = tile_columns(x, xn, xc, xh, xw, s, &tl, pointwise, col)
        for g in range(s.G):
            if tl.nimg == 1:  # straight into the output, on top of the bias
                yb = y + (tl.n0 * s.K + g * s.Kg) * howo + tl.p0
                if bias != NULL:
                    for k in range(s.Kg):
                        for j in range(tl.npos):
                            yb[k * howo + j] = bias[g * s.Kg + k]
                gemm_on(engine, False, False, <int>s.Kg, <int>tl.npos, <int>s.Q, 1,
                        w + g * s.Kg * s.Q, <int>s.Q,
                        <const floating*>cols.ptr + g * s.Q * cols.ld, <int>cols.ld,
                        1 if bias != NULL else 0, yb, <int>howo)
                if act != 0:  # the block the GEMM just wrote, still in cache
                    act_rows(act, yb, s.Kg, tl.npos, howo)
                continue
            gemm_on(engine, False, False, <int>s.Kg, <int>tl.cols, <int>s.Q, 1,
                    w + g * s.Kg * s.Q, <int>s.Q,
                    <const floating*>cols.ptr + g * s.Q * cols.ld, <int>cols.ld,
                    0, ybuf, <int>tl.cols)
            for i in range(tl.nimg):  # copy out, adding the bias, through the activation
                for k in range(s.Kg):
                    yb = y + ((tl.n0 + i) * s.K + g * s.Kg + k) * howo
                    src = ybuf + k * tl.cols + i * howo
                    b = bias[g * s.Kg + k] if bias != NULL else 0
                    copy_out(act, yb, src, howo, b)


def forward(const floating[:, :, :, :] x, const floating[::1] w, const floating[::1] bias,
            bint has_bias, floating[::1] y, tuple shape, Py_ssize_t tile, Py_ssize_t ipt,
            int num_threads, int act=0, int engine=GEMM_BLAS):
    """y = act(conv(x, w) + bias) for x (N, C, H, W) with any strides, w the flat
    contiguous (K, Cg, R, S) weight and y the flat contiguous (N, K, Ho, Wo) output;
    act: 0 none, 1 relu, 4 relu6 (conv_epilogue.h).  engine: the GEMMs' engine, GEMM_BLAS
    (-2) or the blocked kernel's variant code (gemm_engine.pxd).

    tile: output positions per tile (= Ho*Wo when ipt > 1); ipt: images per tile."""
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t items = ceil_div(s.N, ipt) * tiles_per_chunk(&s, tile, ipt)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t start = 0, end = 0
    if s.N == 0:
        return
    cdef Py_ssize_t xn = x.strides[0] // isz, xc = x.strides[1] // isz
    cdef Py_ssize_t xh = x.strides[2] // isz, xw = x.strides[3] // isz
    cdef Py_ssize_t width = tile * ipt
    cdef Py_ssize_t col_size = s.C * s.R * s.S * width
    cdef Py_ssize_t ybuf_size = s.Kg * width if ipt > 1 else 0
    cdef Py_ssize_t per_thread = col_size + ybuf_size
    cdef floating[::1] buf = np.empty(max(nt * per_thread, 1), dtype=DTYPE)
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* bp = &bias[0] if has_bias else NULL
    cdef floating* mine = NULL
    with nogil:
        if nt == 1:
            fwd_items(xp, xn, xc, xh, xw, &w[0], bp, &y[0], &s, tile, ipt, 0, items,
                      &buf[0], &buf[0] + col_size, act, engine)
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                mine = &buf[0] + openmp.omp_get_thread_num() * per_thread
                fwd_items(xp, xn, xc, xh, xw, &w[0], bp, &y[0], &s, tile, ipt, start, end,
                          mine, mine + col_size, act, engine)


# ---------------------------------------------------------------------------------------
# Weight gradient: grad_weight[g] += grad_output[tile, g] (Kg x cols) @ columns^T
# ---------------------------------------------------------------------------------------

cdef void gw_items(const floating* x, Py_ssize_t xn, Py_ssize_t xc, Py_ssize_t xh,
                   Py_ssize_t xw, const floating* gy, ConvShape* s, Py_ssize_t tile,
                   Py_ssize_t ipt, Py_ssize_t start, Py_ssize_t end, floating* col,
                   floating* gybuf, floating* acc, int engine) noexcept nogil:
    """Items start..end-1; item = one tile.  Adds into this thread's (K, Q) acc."""
    cdef Py_ssize_t per_chunk = tiles_per_chunk(s, tile, ipt)
    cdef Py_ssize_t item, g
    cdef bint pointwise = is_pointwise(s, xc, xh, xw)
    cdef Tile tl
    cdef Matrix cols, grad
    for item in range(start, end):
        tl = tile_at(s, item // per_chunk, item % per_chunk, tile, ipt)
        cols = tile_columns(x, xn, xc, xh, xw, s, &tl, pointwise, col)
        for g in range(s.G):
            grad = tile_grad_output(gy, s, &tl, g, gybuf)
            gemm_on(engine, False, True, <int>s.Kg, <int>s.Q, <int>tl.cols, 1,
                    <const floating*>grad.ptr, <int>grad.ld,
                    <const floating*>cols.ptr + g * s.Q * cols.ld, <int>cols.ld,
                    1, acc + g * s.Kg * s.Q, <int>s.Q)


def backward_weight(const floating[:, :, :, :] x, const floating[::1] gy, tuple shape,
                    Py_ssize_t tile, Py_ssize_t ipt, int num_threads, int engine=GEMM_BLAS):
    """grad_weight as a float64 (K, Cg*R*S) array from x (N, C, H, W, any strides) and
    the flat contiguous grad_output gy (N, K, Ho, Wo).  Each thread accumulates its items
    in its own buffer; the buffers are summed at the end.  engine: as in forward()."""
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t items = ceil_div(s.N, ipt) * tiles_per_chunk(&s, tile, ipt)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t start = 0, end = 0
    acc_array = np.zeros((nt, s.K * s.Q), dtype=DTYPE)
    cdef floating[:, ::1] acc = acc_array
    if s.N == 0:
        return np.zeros((s.K, s.Q))
    cdef Py_ssize_t xn = x.strides[0] // isz, xc = x.strides[1] // isz
    cdef Py_ssize_t xh = x.strides[2] // isz, xw = x.strides[3] // isz
    cdef Py_ssize_t width = tile * ipt
    cdef Py_ssize_t col_size = s.C * s.R * s.S * width
    cdef Py_ssize_t per_thread = col_size + (s.Kg * width if ipt > 1 else 0)
    cdef floating[::1] buf = np.empty(max(nt * per_thread, 1), dtype=DTYPE)
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* mine = NULL
    with nogil:
        if nt == 1:
            gw_items(xp, xn, xc, xh, xw, &gy[0], &s, tile, ipt, 0, items, &buf[0],
                     &buf[0] + col_size, &acc[0, 0], engine)
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                mine = &buf[0] + openmp.omp_get_thread_num() * per_thread
                gw_items(xp, xn, xc, xh, xw, &gy[0], &s, tile, ipt, start, end, mine,
                         mine + col_size, &acc[openmp.omp_get_thread_num(), 0], engine)
    return acc_array.sum(axis=0, dtype=np.float64).reshape(s.K, s.Q)


cdef void shared_columns(const floating* x, Py_ssize_t xn, Py_ssize_t xc, Py_ssize_t xh,
                         Py_ssize_t xw, const floating* gy, ConvShape* s, Py_ssize_t n0,
                         Py_ssize_t nimg, Py_ssize_t part, Py_ssize_t parts, floating* col,
                         floating* gybuf) noexcept nogil:
    """Part `part` of `parts` of filling one chunk of images n0..n0+nimg-1: the columns of
    all channels (rows (c, r, s), images side by side) and grad_output (K rows)."""
    cdef Py_ssize_t howo = s.Ho * s.Wo, ld = nimg * howo, rs = s.R * s.S
    cdef Py_ssize_t rows = nimg * (s.C + s.K)
    cdef Py_ssize_t lo = rows * part // parts, hi = rows * (part + 1) // parts, row, i, c, k
    for row in range(lo, hi):
        i = row % nimg
        if row < nimg * s.C:
            c = row // nimg
            im2col_tile(x + (n0 + i) * xn + c * xc, xc, xh, xw, s, 1, 0, howo,
                        col + c * rs * ld + i * howo, ld)
        else:
            k = row // nimg - s.C
            memcpy(gybuf + k * ld + i * howo, gy + ((n0 + i) * s.K + k) * howo,
                   howo * sizeof(floating))


cdef void shared_gemm(ConvShape* s, Py_ssize_t ld, const floating* col, const floating* gybuf,
                      floating* gw, floating beta, Py_ssize_t part,
                      Py_ssize_t parts, int engine) noexcept nogil:
    """Part `part` of `parts` of gw[g] (Kg x Q) = beta * gw[g] + gy[g] @ col[g]^T, split
    over the weight columns q (or rows k when there are more of them)."""
    cdef Py_ssize_t g, lo, hi
    cdef bint by_rows = s.Kg > s.Q
    cdef Py_ssize_t length = s.Kg if by_rows else s.Q
    lo = length * part // parts
    hi = length * (part + 1) // parts
    if hi <= lo:
        return
    for g in range(s.G):
        if by_rows:
            gemm_on(engine, False, True, <int>(hi - lo), <int>s.Q, <int>ld, 1,
                    gybuf + (g * s.Kg + lo) * ld, <int>ld, col + g * s.Q * ld, <int>ld,
                    beta, gw + (g * s.Kg + lo) * s.Q, <int>s.Q)
        else:
            gemm_on(engine, False, True, <int>s.Kg, <int>(hi - lo), <int>ld, 1,
                    gybuf + g * s.Kg * ld, <int>ld, col + (g * s.Q + lo) * ld, <int>ld,
                    beta, gw + g * s.Kg * s.Q + lo, <int>s.Q)


def backward_weight_shared(const floating[:, :, :, :] x, const floating[::1] gy,
                           tuple shape, Py_ssize_t images, int num_threads,
                           int engine=GEMM_BLAS):
    """grad_weight as a (K, Cg*R*S) array in x's dtype, for layers whose weight is large:
    chunks of `images` whole images are unfolded into ONE column matrix shared by the
    threads, which then split the weight gradient between them (each a block of its
    columns, reduced over every position of the chunk).  No thread keeps a private copy
    of the gradient, and each GEMM reduces over all the chunk's positions."""
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t isz = sizeof(floating)
    gw_array = np.empty((s.K, s.Q), dtype=DTYPE)
    cdef floating[:, ::1] gw = gw_array
    if s.N == 0:
        gw_array[...] = 0
        return gw_array
    images = max(1, min(images, s.N))
    cdef Py_ssize_t howo = s.Ho * s.Wo
    cdef Py_ssize_t ld_max = images * howo
    cdef floating[::1] col = np.empty(max(s.C * s.R * s.S * ld_max, 1), dtype=DTYPE)
    cdef floating[::1] gybuf = np.empty(max(s.K * ld_max, 1), dtype=DTYPE)
    cdef Py_ssize_t xn = x.strides[0] // isz, xc = x.strides[1] // isz
    cdef Py_ssize_t xh = x.strides[2] // isz, xw = x.strides[3] // isz
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef Py_ssize_t nt = max(1, num_threads), n0, nimg, part = 0
    cdef floating beta
    with nogil:
        n0 = 0
        while n0 < s.N:
            nimg = min(images, s.N - n0)
            beta = 0 if n0 == 0 else 1
            if nt == 1:
                shared_columns(xp, xn, xc, xh, xw, &gy[0], &s, n0, nimg, 0, 1, &col[0],
                               &gybuf[0])
                shared_gemm(&s, nimg * howo, &col[0], &gybuf[0], &gw[0, 0], beta, 0, 1, engine)
            else:
                with parallel(num_threads=nt):
                    part = openmp.omp_get_thread_num()
                    shared_columns(xp, xn, xc, xh, xw, &gy[0], &s, n0, nimg, part,
                                   openmp.omp_get_num_threads(), &col[0], &gybuf[0])
                with parallel(num_threads=nt):
                    part = openmp.omp_get_thread_num()
                    shared_gemm(&s, nimg * howo, &col[0], &gybuf[0], &gw[0, 0], beta, part,
                                openmp.omp_get_num_threads(), engine)
            n0 += nimg
    return gw_array


# ---------------------------------------------------------------------------------------
# Input gradient: columns = weight[g]^T @ grad_output[tile, g], then col2im
# ---------------------------------------------------------------------------------------

cdef void gx_items(const floating* gy, const floating* w, floating* gx, ConvShape* s,
                   Py_ssize_t tile, Py_ssize_t ipt, Py_ssize_t cpc, bint pointwise,
                   Py_ssize_t start, Py_ssize_t end, floating* col,
                   floating* gybuf, int engine) noexcept nogil:
    """Items start..end-1; item = (chunk of ipt images, group, chunk of cpc input
    channels), each looping over its tiles.  An item owns its images' channels of gx, so
    no two threads write the same element."""
    cdef Py_ssize_t plane = s.H * s.W, rs = s.R * s.S
    cdef Py_ssize_t ncc = ceil_div(s.Cg, cpc), per_chunk = tiles_per_chunk(s, tile, ipt)
    cdef Py_ssize_t item, g, chunk, c0, nch, t, i
    cdef Tile tl
    cdef Matrix grad
    for item in range(start, end):
        chunk = split_channel_item(s, item, ncc, cpc, &g, &c0, &nch)
        for t in range(per_chunk):
            tl = tile_at(s, chunk, t, tile, ipt)
            grad = tile_grad_output(gy, s, &tl, g, gybuf)
            if pointwise and tl.nimg == 1:  # the columns are gx itself
                gemm_on(engine, True, False, <int>nch, <int>tl.npos, <int>s.Kg, 1,
                        w + g * s.Kg * s.Q + c0, <int>s.Q,
                        <const floating*>grad.ptr, <int>grad.ld, 0,
                        gx + (tl.n0 * s.C + g * s.Cg + c0) * plane + tl.p0, <int>plane)
                continue
            gemm_on(engine, True, False, <int>(nch * rs), <int>tl.cols, <int>s.Kg, 1,
                    w + g * s.Kg * s.Q + c0 * rs, <int>s.Q,
                    <const floating*>grad.ptr, <int>grad.ld, 0, col, <int>tl.cols)
            for i in range(tl.nimg):
                col2im_tile(col + i * tl.npos, tl.cols, s, nch, tl.p0, tl.npos,
                            gx + ((tl.n0 + i) * s.C + g * s.Cg + c0) * plane)


def backward_input(const floating[::1] gy, const floating[::1] w, floating[::1] gx,
                   tuple shape, Py_ssize_t tile, Py_ssize_t ipt, Py_ssize_t channels,
                   int num_threads, int engine=GEMM_BLAS):
    """gx (flat contiguous (N, C, H, W), zero on entry) = the gradient of conv(x, w) for
    the flat contiguous grad_output gy.  channels: input channels per work item; engine:
    as in forward()."""
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t items = ceil_div(s.N, ipt) * s.G * ceil_div(s.Cg, channels)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t start = 0, end = 0
    cdef bint pointwise = is_pointwise(&s, s.H * s.W, s.W, 1)
    cdef Py_ssize_t width = tile * ipt
    cdef Py_ssize_t col_size = channels * s.R * s.S * width
    cdef Py_ssize_t per_thread = col_size + (s.Kg * width if ipt > 1 else 0)
    cdef floating[::1] buf = np.empty(max(nt * per_thread, 1), dtype=DTYPE)
    cdef floating* mine = NULL
    if s.N == 0:
        return
    with nogil:
        if nt == 1:
            gx_items(&gy[0], &w[0], &gx[0], &s, tile, ipt, channels, pointwise, 0, items,
                     &buf[0], &buf[0] + col_size, engine)
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                mine = &buf[0] + openmp.omp_get_thread_num() * per_thread
                gx_items(&gy[0], &w[0], &gx[0], &s, tile, ipt, channels, pointwise, start,
                         end, mine, mine + col_size, engine)


# ---------------------------------------------------------------------------------------
# C entry point: a pass with its tiles settled by the caller, no Python on the way
# ---------------------------------------------------------------------------------------
# fastnn.jax's XLA FFI handler (kernels/jax/fastnn_jax_conv.c) calls conv_entry, whose
# address c_entry() gives, with the tiles fastnn/_backends/cpu/conv_handoff.py settled at
# trace time (those _conv_im2col.py computes), on contiguous arrays, holding SciPy's BLAS
# to one thread around the call as _conv_im2col.py does.  Each pass allocates what its def
# function above allocates and makes the same kernel and BLAS calls: the same bits.

cdef int fwd_entry(const floating* x, Py_ssize_t xh, const floating* w, const floating* bias,
                   floating* y, ConvShape* s, Py_ssize_t tile, Py_ssize_t ipt,
                   int num_threads, int act) noexcept nogil:
    """forward() on a contiguous x whose rows are xh apart (0 for a 1-D convolution, as
    NumPy strides the new axis of its 4-D view)."""
    cdef Py_ssize_t items = ceil_div(s.N, ipt) * tiles_per_chunk(s, tile, ipt)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t xn = s.C * s.H * s.W, xc = s.H * s.W
    cdef Py_ssize_t width = tile * ipt
    cdef Py_ssize_t col_size = s.C * s.R * s.S * width
    cdef Py_ssize_t per_thread = col_size + (s.Kg * width if ipt > 1 else 0)
    cdef Py_ssize_t start = 0, end = 0
    cdef floating* buf = <floating*>malloc(max(nt * per_thread, 1) * sizeof(floating))
    cdef floating* mine = NULL
    if buf == NULL:
        return -1
    if nt == 1:
        fwd_items(x, xn, xc, xh, 1, w, bias, y, s, tile, ipt, 0, items, buf, buf + col_size,
                  act, GEMM_BLAS)
    else:
        with parallel(num_threads=nt):
            start = share(items, 0)
            end = share(items, 1)
            mine = buf + openmp.omp_get_thread_num() * per_thread
            fwd_items(x, xn, xc, xh, 1, w, bias, y, s, tile, ipt, start, end, mine,
                      mine + col_size, act, GEMM_BLAS)
    free(buf)
    return 0


cdef int gw_tiles_entry(const floating* x, Py_ssize_t xh, const floating* gy, floating* gw,
                        ConvShape* s, Py_ssize_t tile, Py_ssize_t ipt,
                        int num_threads) noexcept nogil:
    """backward_weight() on a contiguous x (rows xh apart): the threads' sums added in
    float64 in NumPy's order and rounded to gw's type, as conv.py's astype does."""
    cdef Py_ssize_t items = ceil_div(s.N, ipt) * tiles_per_chunk(s, tile, ipt)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t xn = s.C * s.H * s.W, xc = s.H * s.W, kq = s.K * s.Q
    cdef Py_ssize_t width = tile * ipt
    cdef Py_ssize_t col_size = s.C * s.R * s.S * width
    cdef Py_ssize_t per_thread = col_size + (s.Kg * width if ipt > 1 else 0)
    cdef Py_ssize_t start = 0, end = 0, j, t
    cdef double total
    cdef floating* acc = <floating*>calloc(max(nt * kq, 1), sizeof(floating))
    cdef floating* buf = <floating*>malloc(max(nt * per_thread, 1) * sizeof(floating))
    cdef floating* mine = NULL
    cdef int status = -1
    if acc != NULL and buf != NULL:
        status = 0
        if nt == 1:
            gw_items(x, xn, xc, xh, 1, gy, s, tile, ipt, 0, items, buf, buf + col_size, acc,
                     GEMM_BLAS)
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                mine = buf + openmp.omp_get_thread_num() * per_thread
                gw_items(x, xn, xc, xh, 1, gy, s, tile, ipt, start, end, mine,
                         mine + col_size, acc + openmp.omp_get_thread_num() * kq, GEMM_BLAS)
        for j in range(kq):  # acc.sum(axis=0, dtype=np.float64): thread after thread
            total = acc[j]
            for t in range(1, nt):
                total = total + <double>acc[t * kq + j]
            gw[j] = <floating>total
    free(acc)
    free(buf)
    return status


cdef int gw_shared_entry(const floating* x, Py_ssize_t xh, const floating* gy, floating* gw,
                         ConvShape* s, Py_ssize_t images, int num_threads) noexcept nogil:
    """backward_weight_shared() on a contiguous x (rows xh apart)."""
    cdef Py_ssize_t howo = s.Ho * s.Wo
    cdef Py_ssize_t ld_max, n0, nimg, part = 0
    cdef Py_ssize_t xn = s.C * s.H * s.W, xc = s.H * s.W
    cdef Py_ssize_t nt = max(1, num_threads)
    cdef floating beta
    cdef floating* col
    cdef floating* gybuf
    images = max(1, min(images, s.N))
    ld_max = images * howo
    col = <floating*>malloc(max(s.C * s.R * s.S * ld_max, 1) * sizeof(floating))
    gybuf = <floating*>malloc(max(s.K * ld_max, 1) * sizeof(floating))
    if col == NULL or gybuf == NULL:
        free(col)
        free(gybuf)
        return -1
    n0 = 0
    while n0 < s.N:
        nimg = min(images, s.N - n0)
        beta = 0 if n0 == 0 else 1
        if nt == 1:
            shared_columns(x, xn, xc, xh, 1, gy, s, n0, nimg, 0, 1, col, gybuf)
            shared_gemm(s, nimg * howo, col, gybuf, gw, beta, 0, 1, GEMM_BLAS)
        else:
            with parallel(num_threads=nt):
                part = openmp.omp_get_thread_num()
                shared_columns(x, xn, xc, xh, 1, gy, s, n0, nimg, part,
                               openmp.omp_get_num_threads(), col, gybuf)
            with parallel(num_threads=nt):
                part = openmp.omp_get_thread_num()
                shared_gemm(s, nimg * howo, col, gybuf, gw, beta, part,
                            openmp.omp_get_num_threads(), GEMM_BLAS)
        n0 += nimg
    free(col)
    free(gybuf)
    return 0


cdef int gx_entry(const floating* gy, const floating* w, floating* gx, ConvShape* s,
                  Py_ssize_t tile, Py_ssize_t ipt, Py_ssize_t channels,
                  int num_threads) noexcept nogil:
    """backward_input() into gx, which it zeroes first (_conv_im2col.py's zeros)."""
    cdef Py_ssize_t items = ceil_div(s.N, ipt) * s.G * ceil_div(s.Cg, channels)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t start = 0, end = 0
    cdef bint pointwise = is_pointwise(s, s.H * s.W, s.W, 1)
    cdef Py_ssize_t width = tile * ipt
    cdef Py_ssize_t col_size = channels * s.R * s.S * width
    cdef Py_ssize_t per_thread = col_size + (s.Kg * width if ipt > 1 else 0)
    cdef floating* buf = <floating*>malloc(max(nt * per_thread, 1) * sizeof(floating))
    cdef floating* mine = NULL
    if buf == NULL:
        return -1
    memset(gx, 0, s.N * s.C * s.H * s.W * sizeof(floating))
    if nt == 1:
        gx_items(gy, w, gx, s, tile, ipt, channels, pointwise, 0, items, buf, buf + col_size,
                 GEMM_BLAS)
    else:
        with parallel(num_threads=nt):
            start = share(items, 0)
            end = share(items, 1)
            mine = buf + openmp.omp_get_thread_num() * per_thread
            gx_items(gy, w, gx, s, tile, ipt, channels, pointwise, start, end, mine,
                     mine + col_size, GEMM_BLAS)
    free(buf)
    return 0


cdef int gw_entry(const floating* x, Py_ssize_t xh, const floating* gy, floating* gw,
                  ConvShape* s, const int64_t* blocks, int num_threads) noexcept nogil:
    """The weight gradient as _conv_im2col.grad_weight runs it: blocks = (xh, images
    shared, tile, images per tile); shared columns when the second is not 0."""
    if blocks[1] > 0:
        return gw_shared_entry(x, xh, gy, gw, s, blocks[1], num_threads)
    return gw_tiles_entry(x, xh, gy, gw, s, blocks[2], blocks[3], num_threads)


cdef int conv_entry(int f64, int which, const int64_t* shape, const int64_t* blocks,
                    int num_threads, const void* a, const void* b, const void* bias,
                    void* out, int act) noexcept nogil:
    """Pass ``which`` of the convolution of geometry ``shape`` (the 18 values of
    make_shape) on contiguous float64 (f64 = 1) or float32 arrays, with ``num_threads``
    threads at most; the caller holds BLAS to one thread.  Returns 0, -1 when a buffer
    could not be allocated, -2 for an unknown pass.

    which 0 (forward): a = x, b = w, bias (NULL: none), out = y, act as in forward();
        blocks = (x's row stride, tile, images per tile).
    which 1 (input gradient): a = grad_output, b = w, out = grad_input;
        blocks = (tile, images per tile, channels).
    which 2 (weight gradient): a = x, b = grad_output, out = grad_weight in x's type;
        blocks = (x's row stride, images of the shared columns or 0, tile, images per
        tile).
    """
    cdef ConvShape s = shape_from(shape)
    if s.N == 0:
        return 0
    if which == 0 and f64:
        return fwd_entry(<const double*>a, blocks[0], <const double*>b, <const double*>bias,
                         <double*>out, &s, blocks[1], blocks[2], num_threads, act)
    if which == 0:
        return fwd_entry(<const float*>a, blocks[0], <const float*>b, <const float*>bias,
                         <float*>out, &s, blocks[1], blocks[2], num_threads, act)
    if which == 1 and f64:
        return gx_entry(<const double*>a, <const double*>b, <double*>out, &s, blocks[0],
                        blocks[1], blocks[2], num_threads)
    if which == 1:
        return gx_entry(<const float*>a, <const float*>b, <float*>out, &s, blocks[0],
                        blocks[1], blocks[2], num_threads)
    if which == 2 and f64:
        return gw_entry(<const double*>a, blocks[0], <const double*>b, <double*>out, &s,
                        blocks, num_threads)
    if which == 2:
        return gw_entry(<const float*>a, blocks[0], <const float*>b, <float*>out, &s, blocks,
                        num_threads)
    return -2


def c_entry():
    """The address of conv_entry (above), for C callers: int conv_entry(int f64, int which,
    const int64_t* shape, const int64_t* blocks, int num_threads, const void* a,
    const void* b, const void* bias, void* out, int act); callable with no GIL."""
    return <size_t>&conv_entry
