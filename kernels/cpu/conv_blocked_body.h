/* One (element type, instruction set) instantiation of the channel-blocked direct
 * convolution (conv_blocked.h).
 *
 * Included by conv_blocked.h through isa_instances.h, which defines (and afterwards
 * undefines) these macros; CB_NV and CB_NW come from conv_blocked.h:
 *   T            float or double
 *   VEC          a GCC vector of VL elements of T
 *   VL           lanes per vector
 *   SFX          name suffix, e.g. f32_avx2
 *   TARGET_ATTR  the target attribute of the instruction set (may be empty)
 *   CB_NV, CB_NW register tile: CB_NV vectors of output channels x CB_NW positions
 */

#define CCAT_(a, b) a##_##b
#define CCAT(a, b) CCAT_(a, b)
#define CFN(name) CCAT(name, SFX)
#define CB_OB (CB_NV * VL)
#define CB_INLINE static inline __attribute__((always_inline)) TARGET_ATTR
/* relu and relu6 with NaN kept (conv_epilogue.h) */
#define CB_RELU(x) ((x) < (T)0 ? (T)0 : (x))
#define CB_RELU6(x) ((x) < (T)0 ? (T)0 : ((x) > (T)6 ? (T)6 : (x)))

#include "vec_io.h" /* FNN_VLOAD, FNN_VSTORE */

/* t[j][0 .. OB) (+)= sum_{c < nc, r < R, s < S} w[c][r][s][0 .. OB) *
 *                    x[c*cs + r*drs + s*dws + at(j)]       for j < nw
 * where at(j) = j*step for j < split, else rowgap + (j - split)*step: the positions of
 * one output row, or of two (split = the row's width) when rows are short.  nw, split
 * and swc are compile-time constants once inlined (swc = 0: the step is sw_rt).  The
 * weights are contiguous in the order the loops read them; t is aligned. */
CB_INLINE void CFN(fnn_cb_tile_fixed)(const T* restrict x, ptrdiff_t cs, ptrdiff_t drs,
                                      ptrdiff_t dws, ptrdiff_t sw_rt, ptrdiff_t rowgap,
                                      const T* restrict w, ptrdiff_t nc, ptrdiff_t R,
                                      ptrdiff_t S, T* restrict t, int accumulate,
                                      const int nw, const int split, const int swc) {
    const ptrdiff_t step = swc ? swc : sw_rt;
    VEC acc[CB_NW][CB_NV];
    FNN_CB_UNROLL
    for (int j = 0; j < nw; ++j) {
        FNN_CB_UNROLL
        for (int v = 0; v < CB_NV; ++v) {
            if (accumulate)
                acc[j][v] = *(const VEC*)(t + j * CB_OB + v * VL);
            else
                acc[j][v] = (VEC){0};
        }
    }
    for (ptrdiff_t c = 0; c < nc; ++c) {
        const T* xc = x + c * cs;
        for (ptrdiff_t r = 0; r < R; ++r) {
            const T* xr = xc + r * drs;
            for (ptrdiff_t s = 0; s < S; ++s) {
                const T* xs = xr + s * dws;
                VEC wv[CB_NV];
                FNN_CB_UNROLL
                for (int v = 0; v < CB_NV; ++v) FNN_VLOAD(wv[v], w + v * VL);
                w += CB_OB;
                FNN_CB_UNROLL
                for (int j = 0; j < nw; ++j) {
                    const T xv = j < split ? xs[j * step] : xs[rowgap + (j - split) * step];
                    FNN_CB_UNROLL
                    for (int v = 0; v < CB_NV; ++v) acc[j][v] += wv[v] * xv;
                }
            }
        }
    }
    FNN_CB_UNROLL
    for (int j = 0; j < nw; ++j) {
        FNN_CB_UNROLL
        for (int v = 0; v < CB_NV; ++v) *(VEC*)(t + j * CB_OB + v * VL) = acc[j][v];
    }
}

#define CB_CALL(n, swc)                                                                    \
    case n:                                                                                \
        CFN(fnn_cb_tile_fixed)(x, cs, drs, dws, sw, 0, w, nc, R, S, t, acc, n, n, swc);    \
        return;
/* two rows of n positions each */
#define CB_CALL2(n, swc)                                                                   \
    case n:                                                                                \
        CFN(fnn_cb_tile_fixed)(x, cs, drs, dws, sw, rowgap, w, nc, R, S, t, acc, 2 * n, n, \
                               swc);                                                       \
        return;

#if CB_NW >= 28
#define CB_CASES_HI(swc)                                                                   \
    CB_CALL(7, swc) CB_CALL(8, swc) CB_CALL(9, swc) CB_CALL(10, swc) CB_CALL(11, swc)      \
    CB_CALL(12, swc) CB_CALL(13, swc) CB_CALL(14, swc) CB_CALL(15, swc) CB_CALL(16, swc)   \
    CB_CALL(17, swc) CB_CALL(18, swc) CB_CALL(19, swc) CB_CALL(20, swc) CB_CALL(21, swc)   \
    CB_CALL(22, swc) CB_CALL(23, swc) CB_CALL(24, swc) CB_CALL(25, swc) CB_CALL(26, swc)   \
    CB_CALL(27, swc) CB_CALL(28, swc)
#elif CB_NW >= 14
#define CB_CASES_HI(swc)                                                                   \
    CB_CALL(7, swc) CB_CALL(8, swc) CB_CALL(9, swc) CB_CALL(10, swc) CB_CALL(11, swc)      \
    CB_CALL(12, swc) CB_CALL(13, swc) CB_CALL(14, swc)
#elif CB_NW >= 7
#define CB_CASES_HI(swc) CB_CALL(7, swc)
#else
#define CB_CASES_HI(swc)
#endif
#define CB_CASES(swc)                                                                      \
    CB_CALL(1, swc) CB_CALL(2, swc) CB_CALL(3, swc) CB_CALL(4, swc) CB_CALL(5, swc)        \
    CB_CALL(6, swc) CB_CASES_HI(swc)

/* One tile of nw <= CB_NW positions, the position step sw (specialised for 1 and 2). */
static TARGET_ATTR void CFN(fnn_cb_tile)(const T* x, ptrdiff_t cs, ptrdiff_t drs,
                                         ptrdiff_t dws, ptrdiff_t sw, const T* w,
                                         ptrdiff_t nc, ptrdiff_t R, ptrdiff_t S, T* t,
                                         int acc, int nw) {
    if (sw == 1) {
        switch (nw) { CB_CASES(1) }
    } else if (sw == 2) {
        switch (nw) { CB_CASES(2) }
    } else {
        switch (nw) { CB_CASES(0) }
    }
}

#if CB_NW >= 28
#define CB_CASES2(swc)                                                                     \
    CB_CALL2(1, swc) CB_CALL2(2, swc) CB_CALL2(3, swc) CB_CALL2(4, swc) CB_CALL2(5, swc)   \
    CB_CALL2(6, swc) CB_CALL2(7, swc) CB_CALL2(8, swc) CB_CALL2(9, swc) CB_CALL2(10, swc)  \
    CB_CALL2(11, swc) CB_CALL2(12, swc) CB_CALL2(13, swc) CB_CALL2(14, swc)
#elif CB_NW >= 14
#define CB_CASES2(swc)                                                                     \
    CB_CALL2(1, swc) CB_CALL2(2, swc) CB_CALL2(3, swc) CB_CALL2(4, swc) CB_CALL2(5, swc)   \
    CB_CALL2(6, swc) CB_CALL2(7, swc)
#else
#define CB_CASES2(swc) CB_CALL2(1, swc) CB_CALL2(2, swc) CB_CALL2(3, swc)
#endif

/* One tile of two output rows of nw <= CB_NW / 2 positions each, rowgap apart. */
static TARGET_ATTR void CFN(fnn_cb_tile2)(const T* x, ptrdiff_t cs, ptrdiff_t drs,
                                          ptrdiff_t dws, ptrdiff_t sw, ptrdiff_t rowgap,
                                          const T* w, ptrdiff_t nc, ptrdiff_t R,
                                          ptrdiff_t S, T* t, int acc, int nw) {
    if (sw == 1) {
        switch (nw) { CB_CASES2(1) }
    } else if (sw == 2) {
        switch (nw) { CB_CASES2(2) }
    } else {
        switch (nw) { CB_CASES2(0) }
    }
}

#undef CB_CALL
#undef CB_CALL2
#undef CB_CASES
#undef CB_CASES2
#undef CB_CASES_HI

#define TR_FN CFN(fnn_cb_transpose)
#define TR_EPI_FN CFN(fnn_cb_transpose_epi)
#include "simd_transpose.h"

/* dst[o*ldd + j*dw] = act(t[j*CB_OB + o] + bias[o]) for o < no, j < nj: a run of
 * positions of one output row (dw the position step of dst); act as in conv_epilogue.h;
 * stream: streaming stores where they fill whole aligned lines (simd_transpose.h). */
static TARGET_ATTR void CFN(fnn_cb_store)(const T* restrict t, ptrdiff_t no, ptrdiff_t nj,
                                          const T* bias, T* restrict dst, ptrdiff_t ldd,
                                          ptrdiff_t dw, int act, int stream) {
    if (dw == 1) { /* the bias and activation on each transposed vector, before its store */
        CFN(fnn_cb_transpose_epi)(t, CB_OB, nj, no, dst, ldd, bias, act, stream);
        return;
    }
    for (ptrdiff_t o = 0; o < no; ++o) {
        const T bo = bias ? bias[o] : (T)0;
        if (act == FNN_CONV_ACT_RELU)
            for (ptrdiff_t j = 0; j < nj; ++j) dst[o * ldd + j * dw] = CB_RELU(t[j * CB_OB + o] + bo);
        else if (act == FNN_CONV_ACT_RELU6)
            for (ptrdiff_t j = 0; j < nj; ++j) dst[o * ldd + j * dw] = CB_RELU6(t[j * CB_OB + o] + bo);
        else
            for (ptrdiff_t j = 0; j < nj; ++j) dst[o * ldd + j * dw] = t[j * CB_OB + o] + bo;
    }
}

/* Rows [ih0, ih0 + nrows) of nc source channels, columns [-pl, -pl + width), into
 * p[c][row][width]; what lies outside the image is zero (pl may be negative). */
static TARGET_ATTR void CFN(fnn_cb_pack_rows)(const T* src, ptrdiff_t sc, ptrdiff_t sh,
                                              ptrdiff_t sw, ptrdiff_t H, ptrdiff_t W,
                                              ptrdiff_t nc, ptrdiff_t ih0, ptrdiff_t nrows,
                                              ptrdiff_t pl, ptrdiff_t width, T* restrict p) {
    /* packed column j holds source column j - pl */
    ptrdiff_t jlo = pl < 0 ? 0 : (pl > width ? width : pl);
    ptrdiff_t jhi = W + pl < jlo ? jlo : (W + pl > width ? width : W + pl);
    for (ptrdiff_t c = 0; c < nc; ++c) {
        for (ptrdiff_t i = 0; i < nrows; ++i) {
            T* d = p + (c * nrows + i) * width;
            const ptrdiff_t ih = ih0 + i;
            if (ih < 0 || ih >= H) {
                memset(d, 0, (size_t)width * sizeof(T));
                continue;
            }
            const T* s = src + c * sc + ih * sh + (jlo - pl) * sw;
            if (jlo > 0) memset(d, 0, (size_t)jlo * sizeof(T));
            if (sw == 1) {
                memcpy(d + jlo, s, (size_t)(jhi - jlo) * sizeof(T));
            } else {
                for (ptrdiff_t j = 0; j < jhi - jlo; ++j) d[jlo + j] = s[j * sw];
            }
            if (jhi < width) memset(d + jhi, 0, (size_t)(width - jhi) * sizeof(T));
        }
    }
}

/* One channel block's packed weights d[c][r][s][OB] (c < nc) from w(k, c, r, s) at
 * src + k*wk + c*wc + r*wr + s*ws for the block's `valid` channels k; zero past them. */
static TARGET_ATTR void CFN(fnn_cb_pack_block)(const T* src, ptrdiff_t wk, ptrdiff_t wc,
                                               ptrdiff_t wr, ptrdiff_t ws, ptrdiff_t valid,
                                               ptrdiff_t nc, ptrdiff_t R, ptrdiff_t S,
                                               T* restrict d) {
    const ptrdiff_t OB = CB_OB;
    if (ws == 1 && wr == S && wc == R * S) { /* (c, r, s) one run: a transpose */
        const ptrdiff_t q = nc * R * S;
        CFN(fnn_cb_transpose)(src, wk, valid, q, d, OB);
        for (ptrdiff_t j = 0; valid < OB && j < q; ++j)
            for (ptrdiff_t o = valid; o < OB; ++o) d[j * OB + o] = 0;
        return;
    }
    /* o innermost: the OB source rows stay in L1 while d is written in order */
    for (ptrdiff_t c = 0; c < nc; ++c)
        for (ptrdiff_t r = 0; r < R; ++r)
            for (ptrdiff_t s = 0; s < S; ++s) {
                const T* q = src + c * wc + r * wr + s * ws;
                ptrdiff_t o = 0;
                for (; o < valid; ++o) d[o] = q[o * wk];
                for (; o < OB; ++o) d[o] = 0;
                d += OB;
            }
}

/* Every tile of nr output rows of one channel block: t (rows of Wo x OB) (+)= the
 * reduction over nc channels of the input rows at base (channel stride cs, row stride
 * rs) with the block's weights wk.  Short rows run two per tile. */
static TARGET_ATTR void CFN(fnn_cb_rows)(const fnn_cb_args* a, const T* base, ptrdiff_t cs,
                                         ptrdiff_t rs, const T* wk, ptrdiff_t nc,
                                         ptrdiff_t nr, T* t, int accumulate) {
    const ptrdiff_t OB = CB_OB, NW = CB_NW;
    ptrdiff_t r = 0;
    if (2 * a->geo.Wo <= NW) {
        for (; r + 2 <= nr; r += 2)
            CFN(fnn_cb_tile2)(base + r * a->geo.str_h * rs, cs, a->geo.dil_h * rs, a->geo.dil_w,
                              a->geo.str_w, a->geo.str_h * rs, wk, nc, a->geo.R, a->geo.S,
                              t + r * a->geo.Wo * OB, accumulate, (int)a->geo.Wo);
    }
    for (; r < nr; ++r) {
        const T* xrow = base + r * a->geo.str_h * rs;
        T* trow = t + r * a->geo.Wo * OB;
        for (ptrdiff_t ow0 = 0; ow0 < a->geo.Wo; ow0 += NW) {
            const ptrdiff_t nw = NW < a->geo.Wo - ow0 ? NW : a->geo.Wo - ow0;
            CFN(fnn_cb_tile)(xrow + ow0 * a->geo.str_w, cs, a->geo.dil_h * rs, a->geo.dil_w, a->geo.str_w,
                             wk, nc, a->geo.R, a->geo.S, trow + ow0 * OB, accumulate, (int)nw);
        }
    }
}

/* The input rows one work item reads for output rows [oh0, oh0 + nr) of image n, input
 * channels [c0, c0 + nc): in place, or packed zero-padded into pk.  Sets the channel and
 * row strides. */
static TARGET_ATTR const T* CFN(fnn_cb_input)(const fnn_cb_args* a, ptrdiff_t n, ptrdiff_t g,
                                              ptrdiff_t c0, ptrdiff_t nc, ptrdiff_t oh0,
                                              ptrdiff_t nr, ptrdiff_t width, T* pk,
                                              ptrdiff_t* cs, ptrdiff_t* rs) {
    const T* img = (const T*)a->src + n * a->sn + (g * a->geo.Cg + c0) * a->sc;
    if (a->in_place) {
        *cs = a->sc;
        *rs = a->sh;
        return img + oh0 * a->geo.str_h * a->sh;
    }
    const ptrdiff_t nrows = (nr - 1) * a->geo.str_h + (a->geo.R - 1) * a->geo.dil_h + 1;
    CFN(fnn_cb_pack_rows)(img, a->sc, a->sh, a->sw, a->geo.H, a->geo.W, nc, oh0 * a->geo.str_h - a->geo.pt,
                          nrows, a->geo.pl, width, pk);
    *cs = nrows * width;
    *rs = width;
    return pk;
}

/* Partial sums t (kbs blocks of nr rows x Wo x OB, `rows` rows apart) out to dst, with
 * the bias, for channel blocks kb0 .. kb0 + nk - 1 of image n, rows [oh0, oh0 + nr). */
static TARGET_ATTR void CFN(fnn_cb_write)(const fnn_cb_args* a, const T* t, ptrdiff_t n,
                                          ptrdiff_t g, ptrdiff_t kb0, ptrdiff_t nk,
                                          ptrdiff_t oh0, ptrdiff_t nr, ptrdiff_t rows) {
    const ptrdiff_t OB = CB_OB;
    const T* bias = (const T*)a->bias;
    for (ptrdiff_t kbi = 0; kbi < nk; ++kbi) {
        const ptrdiff_t k0 = (kb0 + kbi) * OB;
        const ptrdiff_t no = OB < a->geo.Kg - k0 ? OB : a->geo.Kg - k0;
        const T* bk = bias ? bias + g * a->geo.Kg + k0 : NULL;
        if (a->dw == 1 && a->dh == a->geo.Wo) {
            /* the output rows follow one another, as the sums' rows do: one run of nr * Wo
             * positions, so each channel's stores are whole vectors in a row (no block
             * straddles two output rows, none is stored twice) */
            T* d = (T*)a->dst + n * a->dn + (g * a->geo.Kg + k0) * a->dk + oh0 * a->dh;
            CFN(fnn_cb_store)(t + kbi * rows * a->geo.Wo * OB, no, nr * a->geo.Wo, bk, d, a->dk,
                              1, a->act, a->stream);
            continue;
        }
        for (ptrdiff_t r = 0; r < nr; ++r) {
            T* d = (T*)a->dst + n * a->dn + (g * a->geo.Kg + k0) * a->dk + (oh0 + r) * a->dh;
            CFN(fnn_cb_store)(t + (kbi * rows + r) * a->geo.Wo * OB, no, a->geo.Wo, bk, d, a->dk,
                              a->dw, a->act, a->stream);
        }
    }
}

/* Packed weights once per call (a->wp): work items (image, group, rows, channel blocks). */
static TARGET_ATTR int CFN(fnn_cb_conv_packed)(const fnn_cb_args* a) {
    const ptrdiff_t OB = CB_OB;
    const ptrdiff_t nkb = fnn_cb_ceil_div(a->geo.Kg, OB);
    const ptrdiff_t rows = a->rows, kbs = a->kbs, kc = a->kc;
    const ptrdiff_t nrb = fnn_cb_ceil_div(a->geo.Ho, rows), nkg = fnn_cb_ceil_div(nkb, kbs);
    const ptrdiff_t items = a->geo.N * a->geo.G * nrb * nkg;
    const ptrdiff_t rows_in = (rows - 1) * a->geo.str_h + (a->geo.R - 1) * a->geo.dil_h + 1;
    const ptrdiff_t width = (a->geo.Wo - 1) * a->geo.str_w + (a->geo.S - 1) * a->geo.dil_w + 1;
    const ptrdiff_t RS = a->geo.R * a->geo.S;
    const size_t pack_bytes =
        a->in_place ? 64 : (size_t)(kc * rows_in * width + FNN_CB_SLACK) * sizeof(T);
    const size_t t_bytes = (size_t)(kbs * rows * a->geo.Wo * OB) * sizeof(T);
    const T* wp = (const T*)a->wp;
    int failed = 0;
    const int nt = fnn_cb_threads(a->threads, items);
    if (items == 0) return 0;
#pragma omp parallel num_threads(nt)
    {
        ptrdiff_t start, end;
        fnn_cb_share(items, &start, &end);
        T* pk = (T*)fnn_workspace(0, pack_bytes);
        T* tb = (T*)fnn_workspace(1, t_bytes);
        if (pk == NULL || tb == NULL) {
#pragma omp atomic write
            failed = 1;
        } else {
            for (ptrdiff_t item = start; item < end; ++item) {
                ptrdiff_t rest = item;
                const ptrdiff_t kgi = rest % nkg;
                rest /= nkg;
                const ptrdiff_t rb = rest % nrb;
                rest /= nrb;
                const ptrdiff_t g = rest % a->geo.G;
                const ptrdiff_t n = rest / a->geo.G;
                const ptrdiff_t oh0 = rb * rows;
                const ptrdiff_t nr = rows < a->geo.Ho - oh0 ? rows : a->geo.Ho - oh0;
                const ptrdiff_t kb0 = kgi * kbs;
                const ptrdiff_t nk = kbs < nkb - kb0 ? kbs : nkb - kb0;
                for (ptrdiff_t c0 = 0; c0 < a->geo.Cg; c0 += kc) {
                    const ptrdiff_t nc = kc < a->geo.Cg - c0 ? kc : a->geo.Cg - c0;
                    ptrdiff_t cs, rs;
                    const T* base = CFN(fnn_cb_input)(a, n, g, c0, nc, oh0, nr, width, pk,
                                                      &cs, &rs);
                    for (ptrdiff_t kbi = 0; kbi < nk; ++kbi) {
                        const T* wk = wp + ((g * nkb + kb0 + kbi) * a->geo.Cg + c0) * RS * OB;
                        CFN(fnn_cb_rows)(a, base, cs, rs, wk, nc, nr,
                                         tb + kbi * rows * a->geo.Wo * OB, c0 > 0);
                    }
                }
                CFN(fnn_cb_write)(a, tb, n, g, kb0, nk, oh0, nr, rows);
            }
        }
    }
    return failed ? -1 : 0;
}

/* Weights packed just in time (a->w with its strides), for layers whose weights outweigh
 * their maps: a work item is (group, channel blocks) over every image, so each chunk of
 * weights is packed once, by the thread that uses it, right before its tiles.  The
 * partial sums of every image wait in the thread's buffer as t[kb][n*Ho + row][Wo][OB]:
 * the rows of all images form one sequence, so short rows pair up across images too (a
 * 7x7 map would otherwise leave every seventh row alone in a half-empty tile). */
static TARGET_ATTR int CFN(fnn_cb_conv_jit)(const fnn_cb_args* a) {
    const ptrdiff_t OB = CB_OB, NW = CB_NW;
    const ptrdiff_t nkb = fnn_cb_ceil_div(a->geo.Kg, OB);
    const ptrdiff_t kbs = a->kbs, kc = a->kc, ho = a->geo.Ho, wo = a->geo.Wo;
    const ptrdiff_t nkg = fnn_cb_ceil_div(nkb, kbs);
    const ptrdiff_t items = a->geo.G * nkg, seq = a->geo.N * ho; /* rows of every image */
    const ptrdiff_t rows_in = (ho - 1) * a->geo.str_h + (a->geo.R - 1) * a->geo.dil_h + 1;
    const ptrdiff_t width = (wo - 1) * a->geo.str_w + (a->geo.S - 1) * a->geo.dil_w + 1;
    const ptrdiff_t RS = a->geo.R * a->geo.S, image_in = kc * rows_in * width;
    const size_t pack_bytes =
        a->in_place ? 64 : (size_t)(a->geo.N * image_in + FNN_CB_SLACK) * sizeof(T);
    const size_t t_bytes = (size_t)(kbs * seq * wo * OB) * sizeof(T);
    const size_t w_bytes = (size_t)(kbs * kc * RS * OB) * sizeof(T);
    const T* w = (const T*)a->w;
    const int pairs = 2 * wo <= NW;
    int failed = 0;
    const int nt = fnn_cb_threads(a->threads, items);
    if (items == 0 || a->geo.N == 0) return 0;
#pragma omp parallel num_threads(nt)
    {
        ptrdiff_t start, end;
        fnn_cb_share(items, &start, &end);
        T* pk = (T*)fnn_workspace(0, pack_bytes);
        T* tb = (T*)fnn_workspace(1, t_bytes);
        T* wb = (T*)fnn_workspace(3, w_bytes);
        if (pk == NULL || tb == NULL || wb == NULL) {
#pragma omp atomic write
            failed = 1;
        } else {
            for (ptrdiff_t item = start; item < end; ++item) {
                const ptrdiff_t kgi = item % nkg, g = item / nkg;
                const ptrdiff_t kb0 = kgi * kbs;
                const ptrdiff_t nk = kbs < nkb - kb0 ? kbs : nkb - kb0;
                for (ptrdiff_t c0 = 0; c0 < a->geo.Cg; c0 += kc) {
                    const ptrdiff_t nc = kc < a->geo.Cg - c0 ? kc : a->geo.Cg - c0;
                    const int acc = c0 > 0;
                    ptrdiff_t cs = 0, rs = 0, image_stride = 0;
                    const T* first = NULL;
                    for (ptrdiff_t kbi = 0; kbi < nk; ++kbi) {
                        const ptrdiff_t k0 = (kb0 + kbi) * OB;
                        const ptrdiff_t valid = OB < a->geo.Kg - k0 ? OB : a->geo.Kg - k0;
                        CFN(fnn_cb_pack_block)(w + (g * a->geo.Kg + k0) * a->wk + c0 * a->wc,
                                               a->wk, a->wc, a->wr, a->ws, valid, nc, a->geo.R,
                                               a->geo.S, wb + kbi * nc * RS * OB);
                    }
                    for (ptrdiff_t n = 0; n < a->geo.N; ++n) { /* every image's input rows */
                        const T* base = CFN(fnn_cb_input)(a, n, g, c0, nc, 0, ho, width,
                                                          pk + n * image_in, &cs, &rs);
                        if (n == 0) first = base;
                        if (n == 1) image_stride = base - first;
                    }
                    for (ptrdiff_t kbi = 0; kbi < nk; ++kbi) {
                        const T* wk = wb + kbi * nc * RS * OB;
                        T* t = tb + kbi * seq * wo * OB;
                        ptrdiff_t q = 0;
                        for (; pairs && q + 2 <= seq; q += 2) {
                            const ptrdiff_t n1 = q / ho, r1 = q - n1 * ho;
                            const ptrdiff_t n2 = (q + 1) / ho, r2 = q + 1 - n2 * ho;
                            const T* x1 = first + n1 * image_stride + r1 * a->geo.str_h * rs;
                            const T* x2 = first + n2 * image_stride + r2 * a->geo.str_h * rs;
                            CFN(fnn_cb_tile2)(x1, cs, a->geo.dil_h * rs, a->geo.dil_w, a->geo.str_w,
                                              x2 - x1, wk, nc, a->geo.R, a->geo.S, t + q * wo * OB,
                                              acc, (int)wo);
                        }
                        for (; q < seq; ++q) {
                            const ptrdiff_t n1 = q / ho, r1 = q - n1 * ho;
                            const T* x1 = first + n1 * image_stride + r1 * a->geo.str_h * rs;
                            for (ptrdiff_t ow0 = 0; ow0 < wo; ow0 += NW) {
                                const ptrdiff_t nw = NW < wo - ow0 ? NW : wo - ow0;
                                CFN(fnn_cb_tile)(x1 + ow0 * a->geo.str_w, cs, a->geo.dil_h * rs,
                                                 a->geo.dil_w, a->geo.str_w, wk, nc, a->geo.R, a->geo.S,
                                                 t + (q * wo + ow0) * OB, acc, (int)nw);
                            }
                        }
                    }
                }
                /* t[kb][n*Ho + row] is image n's rows of block kb, Ho rows per image, so
                 * image n's sums are at t + n*Ho*Wo*OB with blocks seq*Wo*OB apart */
                for (ptrdiff_t n = 0; n < a->geo.N; ++n)
                    CFN(fnn_cb_write)(a, tb + n * ho * wo * OB, n, g, kb0, nk, 0, ho, seq);
            }
        }
    }
    return failed ? -1 : 0;
}

static TARGET_ATTR int CFN(fnn_cb_conv)(const fnn_cb_args* a) {
    return a->wp == NULL ? CFN(fnn_cb_conv_jit)(a) : CFN(fnn_cb_conv_packed)(a);
}

/* ---- weight gradient ------------------------------------------------------------------ */

/* acc[j][0 .. OB) += sum_{i < ni, p < np} g[i*gi + p][0 .. OB) * x[i*xi + at(p) + j]
 * for j < nw (channels), where the positions p run over nr output rows of wo positions,
 * at(p) = row * xrow + col * xcol in the channels-last packed input of image i, and acc
 * row j lies at acc + j * lda.  nw is a compile-time constant once inlined. */
CB_INLINE void CFN(fnn_cb_wtile_fixed)(const T* restrict x, ptrdiff_t xrow, ptrdiff_t xcol,
                                       ptrdiff_t xi, const T* restrict g, ptrdiff_t gi,
                                       ptrdiff_t ni, ptrdiff_t nr, ptrdiff_t wo,
                                       T* restrict acc_out, ptrdiff_t lda, const int nw) {
    VEC acc[CB_NW][CB_NV];
    FNN_CB_UNROLL
    for (int j = 0; j < nw; ++j) {
        FNN_CB_UNROLL
        for (int v = 0; v < CB_NV; ++v) acc[j][v] = *(const VEC*)(acc_out + j * lda + v * VL);
    }
    for (ptrdiff_t i = 0; i < ni; ++i)
        for (ptrdiff_t r = 0; r < nr; ++r) {
            const T* xr = x + i * xi + r * xrow;
            const T* gr = g + i * gi + r * wo * CB_OB;
            for (ptrdiff_t ow = 0; ow < wo; ++ow) {
                VEC gv[CB_NV];
                FNN_CB_UNROLL
                for (int v = 0; v < CB_NV; ++v) gv[v] = *(const VEC*)(gr + ow * CB_OB + v * VL);
                const T* xp = xr + ow * xcol;
                FNN_CB_UNROLL
                for (int j = 0; j < nw; ++j) {
                    const T xv = xp[j];
                    FNN_CB_UNROLL
                    for (int v = 0; v < CB_NV; ++v) acc[j][v] += gv[v] * xv;
                }
            }
        }
    FNN_CB_UNROLL
    for (int j = 0; j < nw; ++j) {
        FNN_CB_UNROLL
        for (int v = 0; v < CB_NV; ++v) *(VEC*)(acc_out + j * lda + v * VL) = acc[j][v];
    }
}

#define CB_WCALL(n)                                                                        \
    case n:                                                                                \
        CFN(fnn_cb_wtile_fixed)(x, xrow, xcol, xi, g, gi, ni, nr, wo, acc, lda, n);        \
        return;
#if CB_NW >= 28
#define CB_WCASES_HI                                                                       \
    CB_WCALL(7) CB_WCALL(8) CB_WCALL(9) CB_WCALL(10) CB_WCALL(11) CB_WCALL(12)             \
    CB_WCALL(13) CB_WCALL(14) CB_WCALL(15) CB_WCALL(16) CB_WCALL(17) CB_WCALL(18)          \
    CB_WCALL(19) CB_WCALL(20) CB_WCALL(21) CB_WCALL(22) CB_WCALL(23) CB_WCALL(24)          \
    CB_WCALL(25) CB_WCALL(26) CB_WCALL(27) CB_WCALL(28)
#elif CB_NW >= 14
#define CB_WCASES_HI                                                                       \
    CB_WCALL(7) CB_WCALL(8) CB_WCALL(9) CB_WCALL(10) CB_WCALL(11) CB_WCALL(12)             \
    CB_WCALL(13) CB_WCALL(14)
#elif CB_NW >= 7
#define CB_WCASES_HI CB_WCALL(7)
#else
#define CB_WCASES_HI
#endif

static TARGET_ATTR void CFN(fnn_cb_wtile)(const T* x, ptrdiff_t xrow, ptrdiff_t xcol,
                                          ptrdiff_t xi, const T* g, ptrdiff_t gi,
                                          ptrdiff_t ni, ptrdiff_t nr, ptrdiff_t wo, T* acc,
                                          ptrdiff_t lda, int nw) {
    switch (nw) {
        CB_WCALL(1) CB_WCALL(2) CB_WCALL(3) CB_WCALL(4) CB_WCALL(5) CB_WCALL(6)
        CB_WCASES_HI
    }
}

#undef CB_WCALL
#undef CB_WCASES_HI

/* Channels-last packed input rows of one image: p[i][j][c] (c < nc, row length width,
 * nc apart per column) = src[c][ih0 + i*rstep][j*cstep - pl], zero outside the image.
 * rstep, cstep > 1 skip the rows and columns a 1x1 kernel's stride never reads. */
static TARGET_ATTR void CFN(fnn_cb_pack_last)(const T* src, ptrdiff_t sc, ptrdiff_t sh,
                                              ptrdiff_t sw, ptrdiff_t H, ptrdiff_t W,
                                              ptrdiff_t nc, ptrdiff_t ih0, ptrdiff_t nrows,
                                              ptrdiff_t rstep, ptrdiff_t pl, ptrdiff_t width,
                                              ptrdiff_t cstep, T* restrict p) {
    /* packed column j reads source column j*cstep - pl: valid for jlo <= j < jhi */
    ptrdiff_t jlo = pl <= 0 ? 0 : fnn_cb_ceil_div(pl, cstep);
    ptrdiff_t jhi = W + pl <= 0 ? 0 : fnn_cb_ceil_div(W + pl, cstep);
    if (jlo > width) jlo = width;
    if (jhi > width) jhi = width;
    if (jhi < jlo) jhi = jlo;
    for (ptrdiff_t i = 0; i < nrows; ++i) {
        T* d = p + i * width * nc;
        const ptrdiff_t ih = ih0 + i * rstep;
        if (ih < 0 || ih >= H) {
            memset(d, 0, (size_t)(width * nc) * sizeof(T));
            continue;
        }
        if (jlo > 0) memset(d, 0, (size_t)(jlo * nc) * sizeof(T));
        if (jhi < width) memset(d + jhi * nc, 0, (size_t)((width - jhi) * nc) * sizeof(T));
        const T* s = src + ih * sh + (jlo * cstep - pl) * sw;
        if (sw == 1 && cstep == 1) {
            CFN(fnn_cb_transpose)(s, sc, nc, jhi - jlo, d + jlo * nc, nc);
        } else {
            for (ptrdiff_t c = 0; c < nc; ++c)
                for (ptrdiff_t j = jlo; j < jhi; ++j)
                    d[j * nc + c] = s[c * sc + (j - jlo) * cstep * sw];
        }
    }
}

static TARGET_ATTR int CFN(fnn_cb_wgrad)(const fnn_cb_wargs* a) {
    const ptrdiff_t OB = CB_OB, NW = CB_NW;
    const ptrdiff_t nkb = fnn_cb_ceil_div(a->geo.Kg, OB);
    const ptrdiff_t rows = a->rows, kbs = a->kbs, cc = a->cc, imgs = a->imgs;
    const ptrdiff_t nkg = fnn_cb_ceil_div(nkb, kbs), ncc = fnn_cb_ceil_div(a->geo.Cg, cc);
    const ptrdiff_t items = a->geo.G * nkg * ncc;
    const ptrdiff_t R = a->geo.R, S = a->geo.S, RS = R * S, Wo = a->geo.Wo;
    /* a 1x1 axis reads only every stride-th row / column: pack just those */
    const ptrdiff_t rstep = R == 1 ? a->geo.str_h : 1, cstep = S == 1 ? a->geo.str_w : 1;
    const ptrdiff_t rows_in = R == 1 ? rows : (rows - 1) * a->geo.str_h + (R - 1) * a->geo.dil_h + 1;
    const ptrdiff_t width = S == 1 ? Wo : (Wo - 1) * a->geo.str_w + (S - 1) * a->geo.dil_w + 1;
    const ptrdiff_t prow = R == 1 ? 1 : a->geo.str_h, pcol = S == 1 ? 1 : a->geo.str_w;
    const ptrdiff_t gimg = rows * Wo * OB; /* one image's grad_output rows of one block */
    const size_t acc_bytes = (size_t)(kbs * cc * RS * OB) * sizeof(T);
    const size_t x_bytes = (size_t)(imgs * rows_in * width * cc + FNN_CB_SLACK) * sizeof(T);
    const size_t g_bytes = (size_t)(kbs * imgs * gimg) * sizeof(T);
    const T* x = (const T*)a->x;
    const T* gy = (const T*)a->gy;
    T* out = (T*)a->out;
    int failed = 0;
    const int nt = fnn_cb_threads(a->threads, items);
    if (items == 0) return 0;
#pragma omp parallel num_threads(nt)
    {
        ptrdiff_t start, end;
        fnn_cb_share(items, &start, &end);
        T* accb = (T*)fnn_workspace(0, acc_bytes);
        T* xt = (T*)fnn_workspace(1, x_bytes);
        T* gt = (T*)fnn_workspace(2, g_bytes);
        if (accb == NULL || xt == NULL || gt == NULL) {
#pragma omp atomic write
            failed = 1;
        } else {
            for (ptrdiff_t item = start; item < end; ++item) {
                const ptrdiff_t ci = item % ncc;
                const ptrdiff_t kgi = (item / ncc) % nkg;
                const ptrdiff_t g = item / (ncc * nkg);
                const ptrdiff_t c0 = ci * cc;
                const ptrdiff_t nc = cc < a->geo.Cg - c0 ? cc : a->geo.Cg - c0;
                const ptrdiff_t kb0 = kgi * kbs;
                const ptrdiff_t nk = kbs < nkb - kb0 ? kbs : nkb - kb0;
                const ptrdiff_t ximg = rows_in * width * nc; /* one image's packed rows */
                /* accb[kbi][r][s][c][OB]: along (s, c) a unit-dilation row of taps is one
                 * run of the packed input, so a register tile sweeps S*nc of them */
                memset(accb, 0, (size_t)(nk * RS * nc * OB) * sizeof(T));
                for (ptrdiff_t n0 = 0; n0 < a->geo.N; n0 += imgs) {
                    const ptrdiff_t ni = imgs < a->geo.N - n0 ? imgs : a->geo.N - n0;
                    for (ptrdiff_t oh0 = 0; oh0 < a->geo.Ho; oh0 += rows) {
                        const ptrdiff_t nr = rows < a->geo.Ho - oh0 ? rows : a->geo.Ho - oh0;
                        const ptrdiff_t nrows =
                            R == 1 ? nr : (nr - 1) * a->geo.str_h + (R - 1) * a->geo.dil_h + 1;
                        for (ptrdiff_t i = 0; i < ni; ++i)
                            CFN(fnn_cb_pack_last)(x + (n0 + i) * a->sn + (g * a->geo.Cg + c0) * a->sc,
                                                  a->sc, a->sh, a->sw, a->geo.H, a->geo.W, nc,
                                                  oh0 * a->geo.str_h - a->geo.pt, nrows, rstep,
                                                  a->geo.pl, width, cstep, xt + i * ximg);
                        /* gt[kbi][i][pos][OB]: each block's images one after another */
                        for (ptrdiff_t kbi = 0; kbi < nk; ++kbi) {
                            const ptrdiff_t k0 = (kb0 + kbi) * OB;
                            const ptrdiff_t valid = OB < a->geo.Kg - k0 ? OB : a->geo.Kg - k0;
                            for (ptrdiff_t i = 0; i < ni; ++i) {
                                T* gb = gt + (kbi * imgs + i) * gimg;
                                const T* src = gy + (n0 + i) * a->gn + (g * a->geo.Kg + k0) * a->gk + oh0 * a->gh;
                                if (a->gw_ == 1 && a->gh == Wo) { /* the rows are one run */
                                    CFN(fnn_cb_transpose)(src, a->gk, valid, nr * Wo, gb, OB);
                                } else {
                                    for (ptrdiff_t r = 0; r < nr; ++r) {
                                        T* d = gb + r * Wo * OB;
                                        if (a->gw_ == 1) {
                                            CFN(fnn_cb_transpose)(src + r * a->gh, a->gk, valid, Wo, d, OB);
                                        } else {
                                            for (ptrdiff_t o = 0; o < valid; ++o)
                                                for (ptrdiff_t ow = 0; ow < Wo; ++ow)
                                                    d[ow * OB + o] = src[o * a->gk + r * a->gh + ow * a->gw_];
                                        }
                                    }
                                }
                                for (ptrdiff_t pos = 0; valid < OB && pos < nr * Wo; ++pos)
                                    memset(gb + pos * OB + valid, 0, (size_t)(OB - valid) * sizeof(T));
                            }
                        }
                        for (ptrdiff_t kbi = 0; kbi < nk; ++kbi) {
                            const T* gb = gt + kbi * imgs * gimg;
                            for (ptrdiff_t r = 0; r < R; ++r) {
                                /* taps (s, c) of row r: one run of S*nc when undilated */
                                const ptrdiff_t runs = a->geo.dil_w == 1 ? 1 : S;
                                const ptrdiff_t len = a->geo.dil_w == 1 ? S * nc : nc;
                                for (ptrdiff_t q = 0; q < runs; ++q) {
                                    const T* xs = xt + (r * a->geo.dil_h * width + q * a->geo.dil_w) * nc;
                                    T* acc = accb + (((kbi * R + r) * S + q) * nc) * OB;
                                    for (ptrdiff_t j0 = 0; j0 < len; j0 += NW) {
                                        const ptrdiff_t nw = NW < len - j0 ? NW : len - j0;
                                        CFN(fnn_cb_wtile)(xs + j0, prow * width * nc, pcol * nc, ximg,
                                                          gb, gimg, ni, nr, Wo, acc + j0 * OB, OB,
                                                          (int)nw);
                                    }
                                }
                            }
                        }
                    }
                }
                for (ptrdiff_t kbi = 0; kbi < nk; ++kbi) {
                    const ptrdiff_t k0 = (kb0 + kbi) * OB;
                    const ptrdiff_t valid = OB < a->geo.Kg - k0 ? OB : a->geo.Kg - k0;
                    /* each contiguous row of OB sums goes to `valid` weights Cg*RS apart;
                     * the RS taps of a channel fill the same lines of each of those rows,
                     * which stay in L1 (reading down the taps instead would stride nc*OB
                     * elements, often a multiple of 4 KiB: one L1 set) */
                    T* d = out + ((g * a->geo.Kg + k0) * a->geo.Cg + c0) * RS;
                    const ptrdiff_t ldd = a->geo.Cg * RS;
                    for (ptrdiff_t c = 0; c < nc; ++c)
                        for (ptrdiff_t rs = 0; rs < RS; ++rs) {
                            const T* src = accb + ((kbi * RS + rs) * nc + c) * OB;
                            T* dst = d + c * RS + rs;
                            for (ptrdiff_t o = 0; o < valid; ++o) dst[o * ldd] = src[o];
                        }
                }
            }
        }
    }
    return failed ? -1 : 0;
}

/* wp[g][kb][c][r][s][o] = w(g*Kg + kb*OB + o, c, r, s), zero for channels past Kg. */
static TARGET_ATTR void CFN(fnn_cb_pack)(const T* w, ptrdiff_t wk, ptrdiff_t wc, ptrdiff_t wr,
                             ptrdiff_t ws, ptrdiff_t G, ptrdiff_t Kg, ptrdiff_t Cg,
                             ptrdiff_t R, ptrdiff_t S, T* wp, int threads) {
    const ptrdiff_t OB = CB_OB, nkb = fnn_cb_ceil_div(Kg, OB), per = Cg * R * S * OB;
    const ptrdiff_t blocks = G * nkb;
    int nt = threads < 1 ? 1 : threads;
    if (nt > blocks) nt = (int)(blocks > 0 ? blocks : 1);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (ptrdiff_t gk = 0; gk < blocks; ++gk) {
        const ptrdiff_t g = gk / nkb, kb = gk % nkb;
        T* d = wp + gk * per;
        const ptrdiff_t valid = Kg - kb * OB < OB ? Kg - kb * OB : OB;
        CFN(fnn_cb_pack_block)(w + (g * Kg + kb * OB) * wk, wk, wc, wr, ws, valid, Cg, R, S,
                               d);
    }
}

#undef CB_INLINE
#undef CB_RELU
#undef CB_RELU6
#undef CB_OB
#undef CFN
#undef CCAT
#undef CCAT_
