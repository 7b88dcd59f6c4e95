# Direct convolution, 1-D and 2-D (1-D is 2-D with H = 1), forward and backward, float32
# and float64: no im2col buffer.  Each thread packs the rows of one image it needs into
# the phase-packed layout (conv_pack.pxd) and runs the register-blocked C micro-kernels of
# conv_direct.h on them; the column matrix of im2col exists only as offsets (qoff).
#
# Work is split into items (image, group, block of output rows or input channels, block
# of output channels), handed out to OpenMP threads in contiguous ranges so that a thread
# packs an image's rows once for all the items that share them.  fastnn/ops validated the
# arguments; the Python side (fastnn/_backends/cpu/_conv_direct.py) chooses the block sizes.
import numpy as np

cimport openmp
from cython cimport floating
from cython.parallel cimport parallel
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from conv_pack cimport pack_rows, unpack_image
from conv_shape cimport ConvShape, ceil_div, make_shape, shape_from, split_channel_item

cdef extern from "conv_direct.h" nogil:
    enum:
        FASTNN_FWD_KB
        FASTNN_GW_KB
        FASTNN_GW_QB
        FASTNN_GX_QB
        FNN_ISA_BASE
        FNN_ISA_AVX2
        FNN_ISA_AVX512
    int fastnn_conv_isa
    int fastnn_conv_set_isa(int level)
    int fnn_cpu_best_isa()
    void fastnn_conv_fwd_f32(int kb, const float* xrow, const Py_ssize_t* qoff, Py_ssize_t Q,
                             const float* wpk, const float* bias, float* y,
                             Py_ssize_t ykstride, Py_ssize_t nw, int act)
    void fastnn_conv_fwd_f64(int kb, const double* xrow, const Py_ssize_t* qoff, Py_ssize_t Q,
                             const double* wpk, const double* bias, double* y,
                             Py_ssize_t ykstride, Py_ssize_t nw, int act)
    void fastnn_conv_gw_f32(int kb, int qb, const float* gy, Py_ssize_t gyk, Py_ssize_t gyr,
                            const float* x, Py_ssize_t xr, const Py_ssize_t* qoff,
                            Py_ssize_t nrows, Py_ssize_t nw, Py_ssize_t nimg, Py_ssize_t gyi,
                            Py_ssize_t xi, double* gw, Py_ssize_t gwk)
    void fastnn_conv_gw_f64(int kb, int qb, const double* gy, Py_ssize_t gyk, Py_ssize_t gyr,
                            const double* x, Py_ssize_t xr, const Py_ssize_t* qoff,
                            Py_ssize_t nrows, Py_ssize_t nw, Py_ssize_t nimg, Py_ssize_t gyi,
                            Py_ssize_t xi, double* gw, Py_ssize_t gwk)
    void fastnn_conv_gx_f32(int qb, const float* gy, Py_ssize_t gyk, Py_ssize_t K,
                            const float* wt, Py_ssize_t ldw, float* gx, const Py_ssize_t* qoff,
                            Py_ssize_t nw)
    void fastnn_conv_gx_f64(int qb, const double* gy, Py_ssize_t gyk, Py_ssize_t K,
                            const double* wt, Py_ssize_t ldw, double* gx,
                            const Py_ssize_t* qoff, Py_ssize_t nw)

#: Elements of zeroed slack after every packed buffer: the micro-kernels read up to one
#: block of columns (at most 2 x 16 lanes) past the last valid element.
cdef Py_ssize_t SLACK_ELEMENTS = 64
SLACK = SLACK_ELEMENTS
#: Output columns per forward and input-gradient strip (a multiple of every instruction
#: set's block of columns).
cdef Py_ssize_t FWD_STRIP = 64
cdef Py_ssize_t GX_STRIP = 64
#: The most bytes an input-gradient strip of gy may take to hold more than GX_STRIP
#: columns per channel (several rows of a narrow map): half the smallest x86 L1d.
cdef Py_ssize_t GX_STRIP_BYTES = 16384
#: Output channels per forward micro-kernel call (blocks of the output-channel axis).
FWD_KB = FASTNN_FWD_KB
ISA_NAMES = {FNN_ISA_BASE: "base", FNN_ISA_AVX2: "avx2", FNN_ISA_AVX512: "avx512"}

#: The level used unless FASTNN_CONV_ISA names another: AVX-512 kernels are compiled but
#: opt-in, since the development machines could not run them (their tests run wherever
#: the CPU has AVX-512: tests/test_cpu_conv.py covers every supported level).
DEFAULT_ISA = "avx2"


def set_isa(str name):
    """Use the micro-kernels compiled for `name` ("base", "avx2", "avx512"), or the best
    level the CPU supports if it lacks `name`.  Returns the name of the level in use."""
    levels = {v: k for k, v in ISA_NAMES.items()}
    if name not in levels:
        raise ValueError(f"set_isa: name must be one of {tuple(levels)}, got {name!r}")
    return ISA_NAMES[fastnn_conv_set_isa(levels[name])]


def current_isa():
    """The name of the instruction-set level the micro-kernels use now."""
    return ISA_NAMES[fastnn_conv_isa]


def _initial_isa() -> str:
    import os

    name = os.environ.get("FASTNN_CONV_ISA", DEFAULT_ISA)
    return name if name in ISA_NAMES.values() else DEFAULT_ISA


set_isa(_initial_isa())


def best_isa():
    """The name of the best instruction-set level this CPU supports."""
    return ISA_NAMES[fnn_cpu_best_isa()]


cdef inline Py_ssize_t packed_width(ConvShape* s) noexcept nogil:
    """Wq: entries per phase of a packed row."""
    return ceil_div(s.W + s.pl + s.pr, s.sw)


cdef inline Py_ssize_t gx_strip_width(ConvShape* s, Py_ssize_t itemsize) noexcept nogil:
    """Columns per row of the input gradient's strip of gy (Kg rows): GX_STRIP, or more
    while the whole strip stays within GX_STRIP_BYTES (a multiple of GX_STRIP)."""
    cdef Py_ssize_t fit = GX_STRIP_BYTES // (max(s.Kg, 1) * itemsize) // GX_STRIP * GX_STRIP
    return max(GX_STRIP, fit)


cdef inline Py_ssize_t gx_row_span(ConvShape* s, Py_ssize_t Wq,
                                   Py_ssize_t width) noexcept nogil:
    """Rows of gy one strip of the input gradient holds: with stride 1, as many as fit
    `width` columns laid Wq apart (at least 1); with a larger stride, 1."""
    if s.sh != 1 or s.sw != 1 or s.Wo > width:
        return 1
    return 1 + (width - s.Wo) // Wq


cdef inline Py_ssize_t tap_offset(ConvShape* s, Py_ssize_t r, Py_ssize_t c,
                                  Py_ssize_t Wq) noexcept nogil:
    """Offset of kernel tap (r, c) -- row r, column c -- from the packed row base."""
    return (r * s.dh * s.sw * Wq + ((c * s.dw) % s.sw) * Wq + (c * s.dw) // s.sw)


cdef void fill_qoff(ConvShape* s, Py_ssize_t nch, Py_ssize_t Wq, Py_ssize_t cstride,
                    Py_ssize_t* qoff) noexcept nogil:
    """qoff[q] for q = (c, r, s) flattened, c < nch: where weight column q reads."""
    cdef Py_ssize_t c, r, t, q = 0
    for c in range(nch):
        for r in range(s.R):
            for t in range(s.S):
                qoff[q] = c * cstride + tap_offset(s, r, t, Wq)
                q += 1


cdef inline Py_ssize_t gx_column(Py_ssize_t j, Py_ssize_t nch, Py_ssize_t rs) noexcept nogil:
    """The weight column (c, r, s) flattened that column j of the input gradient's chunk
    of nch channels is: taps outer, channels inner, so that the columns of one block add
    into different channels' planes, not into overlapping runs one column apart (each
    block's stores would wait on the one before: a load that overlaps an older store in
    part cannot take its data from it)."""
    return (j % nch) * rs + j // nch


cdef void fill_gx_qoff(ConvShape* s, Py_ssize_t cpc, Py_ssize_t Wq, Py_ssize_t cstride,
                       Py_ssize_t* qoff) noexcept nogil:
    """Where the input gradient's columns add (gx_column order): qoff[j] for chunks of
    cpc channels, then qoff[cpc * R * S + j] for the last chunk, which may hold fewer."""
    cdef Py_ssize_t rs = s.R * s.S, half, nch, j, q
    for half in range(2):
        nch = cpc if half == 0 else s.Cg - (ceil_div(s.Cg, cpc) - 1) * cpc
        for j in range(nch * rs):
            q = gx_column(j, nch, rs)
            qoff[half * cpc * rs + j] = ((q // rs) * cstride
                                         + tap_offset(s, (q % rs) // s.S, q % s.S, Wq))


cdef inline Py_ssize_t block_start(Py_ssize_t n, Py_ssize_t nblocks,
                                   Py_ssize_t b) noexcept nogil:
    """Where block b starts when n items are split into nblocks blocks of sizes that differ
    by at most one (so no block is left with a small remainder)."""
    return n * b // nblocks


cdef void pack_forward_weights(const floating* w, floating* wpk, const ConvShape* s,
                               Py_ssize_t nkb) noexcept nogil:
    """The forward's weights packed per block of output channels (nkb blocks per group):
    wpk[(g, k0)][q][k] = w[g * Kg + k0 + k][q]."""
    cdef Py_ssize_t g, kb, k0, kn, q, k
    for g in range(s.G):
        for kb in range(nkb):
            k0 = block_start(s.Kg, nkb, kb)
            kn = block_start(s.Kg, nkb, kb + 1) - k0
            for q in range(s.Q):
                for k in range(kn):
                    wpk[(g * s.Kg + k0) * s.Q + q * kn + k] = w[(g * s.Kg + k0 + k) * s.Q + q]


cdef inline Py_ssize_t share(Py_ssize_t items, int part) noexcept nogil:
    """Where this thread's contiguous share of items starts (part 0) or ends (part 1),
    inside a parallel block."""
    cdef Py_ssize_t tid = openmp.omp_get_thread_num()
    return items * (tid + part) // openmp.omp_get_num_threads()


# ---------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------

cdef inline void fwd_block(int kb, const floating* xrow, const Py_ssize_t* qoff, Py_ssize_t Q,
                           const floating* wpk, const floating* bias, floating* y,
                           Py_ssize_t ykstride, Py_ssize_t nw, int act) noexcept nogil:
    if floating is float:
        fastnn_conv_fwd_f32(kb, xrow, qoff, Q, wpk, bias, y, ykstride, nw, act)
    else:
        fastnn_conv_fwd_f64(kb, xrow, qoff, Q, wpk, bias, y, ykstride, nw, act)


cdef void fwd_items(const floating* x, Py_ssize_t xn, Py_ssize_t xc, Py_ssize_t xh,
                    Py_ssize_t xw, const floating* wpk, const floating* bias, floating* y,
                    ConvShape* s, const Py_ssize_t* qoff, Py_ssize_t rows, Py_ssize_t kbpc,
                    Py_ssize_t Wq, Py_ssize_t cstride, Py_ssize_t start, Py_ssize_t end,
                    floating* buf, int act) noexcept nogil:
    """Items start..end-1 of the forward pass; item = ((n, g, row chunk), k chunk); the
    micro-kernel applies the activation ``act`` before it stores."""
    cdef Py_ssize_t nkb = ceil_div(s.Kg, FASTNN_FWD_KB)
    cdef Py_ssize_t nkc = ceil_div(nkb, kbpc)
    cdef Py_ssize_t nrc = ceil_div(s.Ho, rows)
    cdef Py_ssize_t rowstride = s.sw * Wq, howo = s.Ho * s.Wo
    cdef Py_ssize_t item, key, last = -1, kc, rc, g, n, oh0, oh1, oh, ws, w0, nw, kb, k0, kn
    cdef const floating* bb = NULL
    for item in range(start, end):
        kc = item % nkc
        key = item // nkc
        rc = key % nrc
        g = (key // nrc) % s.G
        n = key // (nrc * s.G)
        oh0 = rc * rows
        oh1 = min(s.Ho, oh0 + rows)
        if key != last:
            pack_rows(x + n * xn + g * s.Cg * xc, xc, xh, xw, s, s.Cg, oh0 * s.sh,
                      (oh1 - oh0 - 1) * s.sh + (s.R - 1) * s.dh + 1, Wq, cstride, buf)
            last = key
        for oh in range(oh0, oh1):
            # a strip of FWD_STRIP output columns for every output-channel block: the
            # input the strip reads stays in L1 while the weights stream past it
            for ws in range(ceil_div(s.Wo, FWD_STRIP)):
                w0 = ws * FWD_STRIP
                nw = min(FWD_STRIP, s.Wo - w0)
                for kb in range(kc * kbpc, min(nkb, (kc + 1) * kbpc)):
                    k0 = block_start(s.Kg, nkb, kb)
                    kn = block_start(s.Kg, nkb, kb + 1) - k0
                    if bias != NULL:
                        bb = bias + g * s.Kg + k0
                    fwd_block(<int>kn, buf + (oh - oh0) * s.sh * rowstride + w0, qoff, s.Q,
                              wpk + (g * s.Kg + k0) * s.Q, bb,
                              y + (n * s.K + g * s.Kg + k0) * howo + oh * s.Wo + w0, howo,
                              nw, act)


def forward(const floating[:, :, :, :] x, const floating[::1] w,
                    const floating[::1] bias, bint has_bias, floating[::1] y, tuple shape,
                    Py_ssize_t rows, Py_ssize_t kblocks, int num_threads, int act=0):
    """y = act(conv(x, w) + bias) for x (N, C, H, W) with any strides, w the flat
    contiguous (K, Cg, R, S) weight, y the flat contiguous (N, K, Ho, Wo) output; act:
    0 none, 1 relu, 4 relu6 (conv_epilogue.h).

    rows: output rows per packed chunk; kblocks: blocks of FWD_KB output channels per item.
    """
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t Wq = packed_width(&s)
    cdef Py_ssize_t cstride = ((rows - 1) * s.sh + (s.R - 1) * s.dh + 1) * s.sw * Wq
    cdef Py_ssize_t per_thread = s.Cg * cstride + SLACK_ELEMENTS
    cdef Py_ssize_t nkb = ceil_div(s.Kg, FASTNN_FWD_KB)
    cdef Py_ssize_t items = s.N * s.G * ceil_div(s.Ho, rows) * ceil_div(nkb, kblocks)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t[::1] qoff = np.empty(max(s.Q, 1), dtype=np.intp)
    cdef floating[::1] wpk = np.empty(max(w.shape[0], 1), dtype=DTYPE)
    cdef floating[::1] buf = np.zeros(nt * per_thread, dtype=DTYPE)
    cdef Py_ssize_t start = 0, end = 0
    if s.N == 0:
        return
    fill_qoff(&s, s.Cg, Wq, cstride, &qoff[0])
    pack_forward_weights(&w[0], &wpk[0], &s, nkb)
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef Py_ssize_t xn = x.strides[0] // isz, xc = x.strides[1] // isz
    cdef Py_ssize_t xh = x.strides[2] // isz, xw = x.strides[3] // isz
    cdef const floating* bp = &bias[0] if has_bias else NULL
    with nogil:
        if nt == 1:
            fwd_items(xp, xn, xc, xh, xw, &wpk[0], bp, &y[0], &s, &qoff[0], rows, kblocks,
                      Wq, cstride, 0, items, &buf[0], act)
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                fwd_items(xp, xn, xc, xh, xw, &wpk[0], bp, &y[0], &s, &qoff[0], rows,
                          kblocks, Wq, cstride, start, end,
                          &buf[0] + openmp.omp_get_thread_num() * per_thread, act)


# ---------------------------------------------------------------------------------------
# Weight gradient
# ---------------------------------------------------------------------------------------

cdef inline void gw_block(int kb, int qb, const floating* gy, Py_ssize_t gyk, Py_ssize_t gyr,
                          const floating* x, Py_ssize_t xr, const Py_ssize_t* qoff,
                          Py_ssize_t nrows, Py_ssize_t nw, Py_ssize_t nimg, Py_ssize_t gyi,
                          Py_ssize_t xi, double* gw, Py_ssize_t gwk) noexcept nogil:
    if floating is float:
        fastnn_conv_gw_f32(kb, qb, gy, gyk, gyr, x, xr, qoff, nrows, nw, nimg, gyi, xi, gw,
                           gwk)
    else:
        fastnn_conv_gw_f64(kb, qb, gy, gyk, gyr, x, xr, qoff, nrows, nw, nimg, gyi, xi, gw,
                           gwk)


cdef void gw_items(const floating* x, Py_ssize_t xn, Py_ssize_t xc, Py_ssize_t xh,
                   Py_ssize_t xw, const floating* gy, ConvShape* s, const Py_ssize_t* qoff,
                   Py_ssize_t ipc, Py_ssize_t rows, Py_ssize_t cpc, Py_ssize_t Wq,
                   Py_ssize_t cstride, Py_ssize_t start, Py_ssize_t end, floating* buf,
                   double* acc) noexcept nogil:
    """Items start..end-1 of the weight gradient; item = (chunk of ipc images, g, chunk
    of rows, chunk of cpc input channels).  Adds into this thread's (K, Q) double
    accumulator."""
    cdef Py_ssize_t nrc = ceil_div(s.Ho, rows), ncc = ceil_div(s.Cg, cpc)
    cdef Py_ssize_t rowstride = s.sw * Wq, howo = s.Ho * s.Wo, rs = s.R * s.S
    cdef Py_ssize_t istride = cpc * cstride  # packed elements per image
    cdef Py_ssize_t item, cc, rc, g, n0, ni, i, c0, nch, nq, oh0, oh1, nrp
    cdef Py_ssize_t kb, k0, kn, qb, q0, qn, nkb = ceil_div(s.Kg, FASTNN_GW_KB)
    for item in range(start, end):
        cc = item % ncc
        rc = (item // ncc) % nrc
        g = (item // (ncc * nrc)) % s.G
        n0 = (item // (ncc * nrc * s.G)) * ipc
        ni = min(ipc, s.N - n0)
        c0 = cc * cpc
        nch = min(cpc, s.Cg - c0)
        nq = nch * rs
        oh0 = rc * rows
        oh1 = min(s.Ho, oh0 + rows)
        nrp = (oh1 - oh0 - 1) * s.sh + (s.R - 1) * s.dh + 1
        for i in range(ni):
            pack_rows(x + (n0 + i) * xn + (g * s.Cg + c0) * xc, xc, xh, xw, s, nch,
                      oh0 * s.sh, nrp, Wq, cstride, buf + i * istride)
        for kb in range(nkb):
            k0 = block_start(s.Kg, nkb, kb)
            kn = block_start(s.Kg, nkb, kb + 1) - k0
            for qb in range(ceil_div(nq, FASTNN_GW_QB)):
                q0 = qb * FASTNN_GW_QB
                qn = min(<Py_ssize_t>FASTNN_GW_QB, nq - q0)
                gw_block(<int>kn, <int>qn,
                         gy + ((n0 * s.K + g * s.Kg + k0) * s.Ho + oh0) * s.Wo, howo, s.Wo,
                         buf, s.sh * rowstride, qoff + q0, oh1 - oh0, s.Wo,
                         ni, s.K * howo, istride,
                         acc + (g * s.Kg + k0) * s.Q + c0 * rs + q0, s.Q)


def backward_weight(const floating[:, :, :, :] x, const floating[::1] gy, tuple shape,
                    Py_ssize_t images, Py_ssize_t rows, Py_ssize_t channels,
                    int num_threads):
    """grad_weight as a float64 (K, Cg * R * S) array, from x (N, C, H, W) with any strides
    and the flat contiguous grad_output gy (N, K, Ho, Wo), which must have SLACK readable
    elements after its end.

    images, rows, channels: images, output rows and input channels per item (each item
    packs that block of the input).
    """
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t Wq = packed_width(&s)
    cdef Py_ssize_t cstride = ((rows - 1) * s.sh + (s.R - 1) * s.dh + 1) * s.sw * Wq
    cdef Py_ssize_t per_thread = images * channels * cstride + SLACK_ELEMENTS
    cdef Py_ssize_t items = (ceil_div(s.N, images) * s.G * ceil_div(s.Ho, rows)
                             * ceil_div(s.Cg, channels))
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t[::1] qoff = np.empty(max(channels * s.R * s.S, 1), dtype=np.intp)
    cdef floating[::1] buf = np.zeros(nt * per_thread, dtype=DTYPE)
    acc_array = np.zeros((nt, s.K * s.Q), dtype=np.float64)
    cdef double[:, ::1] acc = acc_array
    cdef Py_ssize_t start = 0, end = 0
    if s.N == 0:
        return acc_array[0].reshape(s.K, s.Q)
    fill_qoff(&s, channels, Wq, cstride, &qoff[0])
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef Py_ssize_t xn = x.strides[0] // isz, xc = x.strides[1] // isz
    cdef Py_ssize_t xh = x.strides[2] // isz, xw = x.strides[3] // isz
    with nogil:
        if nt == 1:
            gw_items(xp, xn, xc, xh, xw, &gy[0], &s, &qoff[0], images, rows, channels, Wq,
                     cstride, 0, items, &buf[0], &acc[0, 0])
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                gw_items(xp, xn, xc, xh, xw, &gy[0], &s, &qoff[0], images, rows, channels,
                         Wq, cstride, start, end,
                         &buf[0] + openmp.omp_get_thread_num() * per_thread,
                         &acc[openmp.omp_get_thread_num(), 0])
    if nt == 1:  # one thread's sums are the gradient (a reduction costs ~1 us)
        return acc_array[0].reshape(s.K, s.Q)
    return acc_array.sum(axis=0).reshape(s.K, s.Q)


# ---------------------------------------------------------------------------------------
# Input gradient (transposed convolution)
# ---------------------------------------------------------------------------------------

cdef inline void gx_block(int qb, const floating* gy, Py_ssize_t gyk, Py_ssize_t K,
                          const floating* wt, Py_ssize_t ldw, floating* gx,
                          const Py_ssize_t* qoff, Py_ssize_t nw) noexcept nogil:
    if floating is float:
        fastnn_conv_gx_f32(qb, gy, gyk, K, wt, ldw, gx, qoff, nw)
    else:
        fastnn_conv_gx_f64(qb, gy, gyk, K, wt, ldw, gx, qoff, nw)


cdef void gx_items(const floating* gy, const floating* wt, floating* gx, ConvShape* s,
                   const Py_ssize_t* qoffs, Py_ssize_t cpc, Py_ssize_t Wq, Py_ssize_t cstride,
                   Py_ssize_t start, Py_ssize_t end, floating* buf) noexcept nogil:
    """Items start..end-1 of the input gradient; item = (n, g, chunk of cpc channels).
    Each item owns its channels of gx: no two threads write the same element.  wt holds
    W^T in blocks of GX_QB weight columns, each block (Kg, qn) contiguous.  buf holds the
    packed gradient, then the strip of gy (Kg rows of gx_strip_width), zeroed when
    allocated."""
    cdef Py_ssize_t ncc = ceil_div(s.Cg, cpc)
    cdef Py_ssize_t rowstride = s.sw * Wq, howo = s.Ho * s.Wo, rs = s.R * s.S
    cdef Py_ssize_t item, g, n, c0, nch, nq, nqb, oh, ws, w0, nw, k, qb, q0, qn, r, nr
    cdef Py_ssize_t width = gx_strip_width(s, sizeof(floating))
    cdef Py_ssize_t row_span = gx_row_span(s, Wq, width)
    cdef floating* strip = buf + cpc * cstride + SLACK_ELEMENTS  # after the packed gradient
    cdef const Py_ssize_t* qoff
    cdef const floating* gyrow
    cdef const floating* wg
    for item in range(start, end):
        n = split_channel_item(s, item, ncc, cpc, &g, &c0, &nch)
        nq = nch * rs
        nqb = ceil_div(nq, FASTNN_GX_QB)
        qoff = qoffs if nch == cpc else qoffs + cpc * rs
        memset(buf, 0, nch * cstride * sizeof(floating))
        wg = wt + (g * s.Q + c0 * rs) * s.Kg  # this chunk's blocks of packed W^T
        if row_span > 1:
            # stride 1: output position (oh, ow) adds to packed position oh * Wq + ow
            # (+ the tap's offset), so rows of gy laid Wq apart in the strip (zero gaps,
            # never written) make one run of positions over several rows: vector blocks
            # stay full on maps narrower than a block
            oh = 0
            while oh < s.Ho:
                nr = min(row_span, s.Ho - oh)
                gyrow = gy + ((n * s.K + g * s.Kg) * s.Ho + oh) * s.Wo
                for k in range(s.Kg):
                    for r in range(nr):
                        memcpy(strip + k * width + r * Wq, gyrow + k * howo + r * s.Wo,
                               s.Wo * sizeof(floating))
                nw = (nr - 1) * Wq + s.Wo
                for qb in range(nqb):
                    q0 = block_start(nq, nqb, qb)
                    qn = block_start(nq, nqb, qb + 1) - q0
                    gx_block(<int>qn, strip, width, s.Kg, wg + q0 * s.Kg, qn,
                             buf + oh * Wq, qoff + q0, nw)
                oh += nr
        else:
            for oh in range(s.Ho):
                for ws in range(ceil_div(s.Wo, width)):
                    # a strip of `width` columns of gy, all Kg channels, copied together:
                    # it stays in L1 while every block of weight columns uses it (in
                    # place, gy's channel stride can map all its rows to one cache set)
                    w0 = ws * width
                    nw = min(width, s.Wo - w0)
                    gyrow = gy + ((n * s.K + g * s.Kg) * s.Ho + oh) * s.Wo + w0
                    for k in range(s.Kg):
                        memcpy(strip + k * width, gyrow + k * howo, nw * sizeof(floating))
                    for qb in range(nqb):
                        q0 = block_start(nq, nqb, qb)
                        qn = block_start(nq, nqb, qb + 1) - q0
                        gx_block(<int>qn, strip, width, s.Kg, wg + q0 * s.Kg, qn,
                                 buf + oh * s.sh * rowstride + w0, qoff + q0, nw)
        unpack_image(buf, s, nch, Wq, cstride, gx + (n * s.C + g * s.Cg + c0) * s.H * s.W)


cdef void pack_transposed(const floating* w, ConvShape* s, Py_ssize_t cpc,
                          floating* wt) noexcept nogil:
    """W^T in the blocks gx_items reads: per group and chunk of cpc input channels, blocks
    of at most GX_QB of the chunk's columns (balanced, in gx_column order); block
    (q0..q0+qn) holds wt[k * qn + j] = w[k, column q0 + j] and starts at (g * Q + q0) * Kg."""
    cdef Py_ssize_t g, cc, c0, nq, nqb, qb, q0, qn, k, j, rs = s.R * s.S
    cdef floating* blk
    for g in range(s.G):
        for cc in range(ceil_div(s.Cg, cpc)):
            c0 = cc * cpc
            nq = min(cpc, s.Cg - c0) * rs
            nqb = ceil_div(nq, FASTNN_GX_QB)
            for qb in range(nqb):
                q0 = c0 * rs + block_start(nq, nqb, qb)
                qn = block_start(nq, nqb, qb + 1) - block_start(nq, nqb, qb)
                blk = wt + (g * s.Q + q0) * s.Kg
                for k in range(s.Kg):
                    for j in range(qn):
                        blk[k * qn + j] = w[(g * s.Kg + k) * s.Q + c0 * rs
                                            + gx_column(q0 - c0 * rs + j, nq // rs, rs)]


def backward_input(const floating[::1] gy, const floating[::1] w, floating[::1] gx,
                   tuple shape, Py_ssize_t channels, int num_threads):
    """gx (flat contiguous (N, C, H, W)) = the gradient of conv(x, w) for the flat
    contiguous grad_output gy.

    channels: input channels per item (each item packs them zero-padded).
    """
    cdef ConvShape s = make_shape(shape)
    DTYPE = np.float32 if floating is float else np.float64
    cdef Py_ssize_t Wq = packed_width(&s)
    cdef Py_ssize_t cstride = (s.H + s.pt + s.pb) * s.sw * Wq
    # packed gradient, then a strip of gy (Kg rows), each followed by slack
    cdef Py_ssize_t per_thread = (channels * cstride + SLACK_ELEMENTS
                                  + s.Kg * gx_strip_width(&s, sizeof(floating))
                                  + SLACK_ELEMENTS)
    cdef Py_ssize_t items = s.N * s.G * ceil_div(s.Cg, channels)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t[::1] qoff = np.empty(max(2 * channels * s.R * s.S, 1), dtype=np.intp)
    cdef floating[::1] buf = np.zeros(nt * per_thread, dtype=DTYPE)
    cdef Py_ssize_t start = 0, end = 0
    if s.N == 0:
        return
    fill_gx_qoff(&s, channels, Wq, cstride, &qoff[0])
    cdef floating[::1] wt = np.empty(max(w.shape[0], 1), dtype=DTYPE)
    pack_transposed(&w[0], &s, channels, &wt[0])
    with nogil:
        if nt == 1:
            gx_items(&gy[0], &wt[0], &gx[0], &s, &qoff[0], channels, Wq, cstride, 0, items,
                     &buf[0])
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                gx_items(&gy[0], &wt[0], &gx[0], &s, &qoff[0], channels, Wq, cstride, start,
                         end, &buf[0] + openmp.omp_get_thread_num() * per_thread)


# ---------------------------------------------------------------------------------------
# C entry point: a pass with its blocks settled by the caller, no Python on the way
# ---------------------------------------------------------------------------------------
# fastnn.jax's XLA FFI handler (kernels/jax/fastnn_jax_conv.c) calls conv_entry, whose
# address c_entry() gives, with the blocks fastnn/_backends/cpu/conv_handoff.py settled at
# trace time (those _conv_direct.py computes), on contiguous arrays.  Each pass allocates
# what its def function above allocates and makes the same kernel calls, so the results
# are the same bits.

cdef int fwd_entry(const floating* x, Py_ssize_t xh, const floating* w, const floating* bias,
                   floating* y, ConvShape* s, Py_ssize_t rows, Py_ssize_t kblocks,
                   int num_threads, int act) noexcept nogil:
    """forward() on a contiguous x whose rows are xh apart (0 for a 1-D convolution, as
    NumPy strides the new axis of its 4-D view)."""
    cdef Py_ssize_t Wq = packed_width(s)
    cdef Py_ssize_t cstride = ((rows - 1) * s.sh + (s.R - 1) * s.dh + 1) * s.sw * Wq
    cdef Py_ssize_t per_thread = s.Cg * cstride + SLACK_ELEMENTS
    cdef Py_ssize_t nkb = ceil_div(s.Kg, FASTNN_FWD_KB)
    cdef Py_ssize_t items = s.N * s.G * ceil_div(s.Ho, rows) * ceil_div(nkb, kblocks)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t xn = s.C * s.H * s.W, xc = s.H * s.W
    cdef Py_ssize_t start = 0, end = 0
    cdef Py_ssize_t* qoff = <Py_ssize_t*>malloc(max(s.Q, 1) * sizeof(Py_ssize_t))
    cdef floating* wpk = <floating*>malloc(max(s.K * s.Q, 1) * sizeof(floating))
    cdef floating* buf = <floating*>calloc(nt * per_thread, sizeof(floating))
    cdef int status = -1
    if qoff != NULL and wpk != NULL and buf != NULL:
        status = 0
        fill_qoff(s, s.Cg, Wq, cstride, qoff)
        pack_forward_weights(w, wpk, s, nkb)
        if nt == 1:
            fwd_items(x, xn, xc, xh, 1, wpk, bias, y, s, qoff, rows, kblocks, Wq, cstride, 0,
                      items, buf, act)
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                fwd_items(x, xn, xc, xh, 1, wpk, bias, y, s, qoff, rows, kblocks, Wq, cstride,
                          start, end, buf + openmp.omp_get_thread_num() * per_thread, act)
    free(qoff)
    free(wpk)
    free(buf)
    return status


cdef int gw_entry(const floating* x, Py_ssize_t xh, const floating* gy, floating* gw,
                  ConvShape* s, Py_ssize_t images, Py_ssize_t rows, Py_ssize_t channels,
                  int num_threads) noexcept nogil:
    """backward_weight() on a contiguous x (rows xh apart) and grad_output, which it copies
    with the slack the micro-kernels read; the threads' sums added in NumPy's order and
    rounded to gw's type as conv.py's astype does."""
    cdef Py_ssize_t Wq = packed_width(s)
    cdef Py_ssize_t cstride = ((rows - 1) * s.sh + (s.R - 1) * s.dh + 1) * s.sw * Wq
    cdef Py_ssize_t per_thread = images * channels * cstride + SLACK_ELEMENTS
    cdef Py_ssize_t items = (ceil_div(s.N, images) * s.G * ceil_div(s.Ho, rows)
                             * ceil_div(s.Cg, channels))
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t xn = s.C * s.H * s.W, xc = s.H * s.W, kq = s.K * s.Q
    cdef Py_ssize_t ny = s.N * s.K * s.Ho * s.Wo, start = 0, end = 0, j, t
    cdef double total
    cdef Py_ssize_t* qoff = <Py_ssize_t*>malloc(max(channels * s.R * s.S, 1) * sizeof(Py_ssize_t))
    cdef floating* buf = <floating*>calloc(nt * per_thread, sizeof(floating))
    cdef floating* gys = <floating*>calloc(ny + SLACK_ELEMENTS, sizeof(floating))
    cdef double* acc = <double*>calloc(nt * kq, sizeof(double))
    cdef int status = -1
    if qoff != NULL and buf != NULL and gys != NULL and acc != NULL:
        status = 0
        memcpy(gys, gy, ny * sizeof(floating))
        fill_qoff(s, channels, Wq, cstride, qoff)
        if nt == 1:
            gw_items(x, xn, xc, xh, 1, gys, s, qoff, images, rows, channels, Wq, cstride, 0,
                     items, buf, acc)
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                gw_items(x, xn, xc, xh, 1, gys, s, qoff, images, rows, channels, Wq,
                         cstride, start, end,
                         buf + openmp.omp_get_thread_num() * per_thread,
                         acc + openmp.omp_get_thread_num() * kq)
        for j in range(kq):  # acc.sum(axis=0): thread after thread
            total = acc[j]
            for t in range(1, nt):
                total = total + acc[t * kq + j]
            gw[j] = <floating>total
    free(qoff)
    free(buf)
    free(gys)
    free(acc)
    return status


cdef int gx_entry(const floating* gy, const floating* w, floating* gx, ConvShape* s,
                  Py_ssize_t channels, int num_threads) noexcept nogil:
    """backward_input() on a contiguous grad_output (gx_items copies what it reads of it
    into its strips, so it needs no slack of its own)."""
    cdef Py_ssize_t Wq = packed_width(s)
    cdef Py_ssize_t cstride = (s.H + s.pt + s.pb) * s.sw * Wq
    cdef Py_ssize_t per_thread = (channels * cstride + SLACK_ELEMENTS
                                  + s.Kg * gx_strip_width(s, sizeof(floating))
                                  + SLACK_ELEMENTS)
    cdef Py_ssize_t items = s.N * s.G * ceil_div(s.Cg, channels)
    cdef Py_ssize_t nt = max(1, min(num_threads, items))
    cdef Py_ssize_t start = 0, end = 0
    cdef Py_ssize_t* qoff = <Py_ssize_t*>malloc(max(2 * channels * s.R * s.S, 1) * sizeof(Py_ssize_t))
    cdef floating* buf = <floating*>calloc(nt * per_thread, sizeof(floating))
    cdef floating* wt = <floating*>malloc(max(s.K * s.Q, 1) * sizeof(floating))
    cdef int status = -1
    if qoff != NULL and buf != NULL and wt != NULL:
        status = 0
        fill_gx_qoff(s, channels, Wq, cstride, qoff)
        pack_transposed(w, s, channels, wt)
        if nt == 1:
            gx_items(gy, wt, gx, s, qoff, channels, Wq, cstride, 0, items, buf)
        else:
            with parallel(num_threads=nt):
                start = share(items, 0)
                end = share(items, 1)
                gx_items(gy, wt, gx, s, qoff, channels, Wq, cstride, start, end,
                         buf + openmp.omp_get_thread_num() * per_thread)
    free(qoff)
    free(buf)
    free(wt)
    return status


cdef int conv_entry(int f64, int which, const int64_t* shape, const int64_t* blocks,
                    int num_threads, const void* a, const void* b, const void* bias,
                    void* out, int act) noexcept nogil:
    """Pass ``which`` of the convolution of geometry ``shape`` (the 18 values of
    make_shape) on contiguous float64 (f64 = 1) or float32 arrays, with ``num_threads``
    threads at most; returns 0, -1 when a buffer could not be allocated, -2 for an
    unknown pass.

    which 0 (forward): a = x, b = w, bias (NULL: none), out = y, act as in forward();
        blocks = (x's row stride, rows, kblocks).
    which 1 (input gradient): a = grad_output, b = w, out = grad_input;
        blocks = (channels,).
    which 2 (weight gradient): a = x, b = grad_output, out = grad_weight in x's type;
        blocks = (x's row stride, images, rows, channels).
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
                        num_threads)
    if which == 1:
        return gx_entry(<const float*>a, <const float*>b, <float*>out, &s, blocks[0],
                        num_threads)
    if which == 2 and f64:
        return gw_entry(<const double*>a, blocks[0], <const double*>b, <double*>out, &s,
                        blocks[1], blocks[2], blocks[3], num_threads)
    if which == 2:
        return gw_entry(<const float*>a, blocks[0], <const float*>b, <float*>out, &s,
                        blocks[1], blocks[2], blocks[3], num_threads)
    return -2


def c_entry():
    """The address of conv_entry (above), for C callers: int conv_entry(int f64, int which,
    const int64_t* shape, const int64_t* blocks, int num_threads, const void* a,
    const void* b, const void* bias, void* out, int act); callable with no GIL."""
    return <size_t>&conv_entry
