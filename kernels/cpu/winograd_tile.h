/* One tile size F(WM x WM, 3 x 3) of one winograd_body.h instantiation: the input
 * transform, the output transform and the driver that runs a whole convolution.
 * Included with WM (2, 4 or 6) defined; undefines it at the end.
 */

#define ALPHA (WM + 2)
#define WCATN_(a, b) a##b
#define WCATN(a, b) WCATN_(a, b)
#define WCAT3_(a, b, c) a##_##b##_m##c
#define WCAT3(a, b, c) WCAT3_(a, b, c)
#define WFNM(name) WCAT3(name, SFX, WM)
#define WAT WCATN(FNN_WINO_AT, WM)
#define WBT WCATN(FNN_WINO_BT, WM)
#define WG WCATN(FNN_WINO_G, WM)

/* out = sum_{k < n} coef * in over compile-time constant coefficients (`coef` and `in`
 * are expressions in k_): once the loop is unrolled, zero terms vanish, and +-1 terms
 * become an add or a subtract. */
#define WLINCOMB(out, n, coef, in)                                                         \
    do {                                                                                   \
        int first_ = 1;                                                                    \
        FNN_WINO_UNROLL                                                                    \
        for (int k_ = 0; k_ < (n); ++k_) {                                                 \
            const double c_ = (coef);                                                      \
            if (c_ != 0.0) {                                                               \
                VEC t_ = (in) * (T)c_;                                                     \
                if (first_) (out) = t_;                                                    \
                else (out) += t_;                                                          \
                first_ = 0;                                                                \
            }                                                                              \
        }                                                                                  \
        if (first_) (out) = (VEC){0};                                                      \
    } while (0)

/* F(2x2) and F(4x4) gather their tiles' columns in vectors (WM = 2 or 4 whole vectors
 * per VL tiles); F(6x6), and vectors of fewer than 4 lanes, element by element. */
#if (WM == 2 || WM == 4) && VL >= 4 && VL <= 16
#define WGATHER_VEC 1
#if VL == 16
#define WGATHER_LIST FNN_TR_L16
#elif VL == 8
#define WGATHER_LIST FNN_TR_L8
#else
#define WGATHER_LIST FNN_TR_L4
#endif
/* lane q of two sources (2 VL lanes): every WM-th of the first VL * 2 / WM elements */
#define WGATHER_PICK(q) (((q) * WM) & (2 * VL - 1))
/* lanes [0, VL/2) of the first source then lanes [0, VL/2) of the second */
#define WGATHER_HALVES(q) ((q) < VL / 2 ? (q) : (q) + VL / 2)

/* p[0], p[WM], p[2 WM], ... p[(VL - 1) WM]: WM whole vectors, shuffled. */
static inline __attribute__((always_inline)) TARGET_ATTR VEC WFNM(fnn_wino_every_wm)(const T* p) {
    typedef __typeof__(_Generic((T)0, float: (int)0, default: (long long)0)) WGATHER_ELEM;
    typedef WGATHER_ELEM WGATHER_IDX __attribute__((vector_size(sizeof(VEC))));
    const WGATHER_IDX pick = {WGATHER_LIST(WGATHER_PICK)};
    VEC v0, v1;
    FNN_VLOAD(v0, p);
    FNN_VLOAD(v1, p + VL);
#if WM == 2
    return __builtin_shuffle(v0, v1, pick);
#else
    const WGATHER_IDX halves = {WGATHER_LIST(WGATHER_HALVES)};
    VEC v2, v3;
    FNN_VLOAD(v2, p + 2 * VL);
    FNN_VLOAD(v3, p + 3 * VL);
    return __builtin_shuffle(__builtin_shuffle(v0, v1, pick), __builtin_shuffle(v2, v3, pick),
                             halves);
#endif
}
/* The inverse for WM vectors of VL tiles' columns c[j]: r[q][e] = c[e % WM][q VL/WM +
 * e / WM], the WM output rows' worth of values in row order, by zips of lanes then of
 * lane pairs. */
#define WZIP1(q) ((q) / 2 + ((q) % 2) * VL)
#define WZIP1_HI(q) (VL / 2 + (q) / 2 + ((q) % 2) * VL)
#define WZIP2(q) (((q) / 4) * 2 + (q) % 2 + (((q) / 2) % 2) * VL)
#define WZIP2_HI(q) (VL / 2 + ((q) / 4) * 2 + (q) % 2 + (((q) / 2) % 2) * VL)
static inline __attribute__((always_inline)) TARGET_ATTR void WFNM(fnn_wino_interleave)(
    const VEC* c, VEC* r) {
    typedef __typeof__(_Generic((T)0, float: (int)0, default: (long long)0)) WGATHER_ELEM;
    typedef WGATHER_ELEM WGATHER_IDX __attribute__((vector_size(sizeof(VEC))));
    const WGATHER_IDX lo = {WGATHER_LIST(WZIP1)}, hi = {WGATHER_LIST(WZIP1_HI)};
#if WM == 2
    r[0] = __builtin_shuffle(c[0], c[1], lo);
    r[1] = __builtin_shuffle(c[0], c[1], hi);
#else
    const WGATHER_IDX lo2 = {WGATHER_LIST(WZIP2)}, hi2 = {WGATHER_LIST(WZIP2_HI)};
    const VEC a0 = __builtin_shuffle(c[0], c[1], lo), a1 = __builtin_shuffle(c[0], c[1], hi);
    const VEC b0 = __builtin_shuffle(c[2], c[3], lo), b1 = __builtin_shuffle(c[2], c[3], hi);
    r[0] = __builtin_shuffle(a0, b0, lo2);
    r[1] = __builtin_shuffle(a0, b0, hi2);
    r[2] = __builtin_shuffle(a1, b1, lo2);
    r[3] = __builtin_shuffle(a1, b1, hi2);
#endif
}
#undef WZIP1
#undef WZIP1_HI
#undef WZIP2
#undef WZIP2_HI
#undef WGATHER_LIST
#undef WGATHER_PICK
#undef WGATHER_HALVES
#else
#define WGATHER_VEC 0
#endif

/* The ALPHA x ALPHA source values of nt tiles of one tile row, one channel:
 * cols[(i * ALPHA + j) * cl + t] = src[h0 + i][w0 + t * WM + j] for t < nt, zero outside
 * the source.  Each source row is first copied, zero-padded, to a line on the stack
 * (FNN_WINO_LINE tiles at a time), so that reading the tiles needs no bounds.  Callers
 * gather every tile row of a block side by side (cols offset by the tiles before), so
 * that the input transform runs on full vectors of tiles even when a map's tile row is
 * shorter than a vector (7 tiles of F(4x4) on a 28x28 map, 16 lanes at AVX-512). */
#ifndef FNN_WINO_LINE
#define FNN_WINO_LINE 128
#endif
static TARGET_ATTR void WFNM(fnn_wino_cols)(const T* src, ptrdiff_t sh, ptrdiff_t sw,
                                            ptrdiff_t H, ptrdiff_t W, ptrdiff_t h0,
                                            ptrdiff_t w0, ptrdiff_t nt, T* restrict cols,
                                            ptrdiff_t cl) {
    /* every row's line is written before any is read: a vector load of a line written
     * just before, by stores it overlaps only in part, would wait for them to retire */
    T lines[ALPHA][FNN_WINO_LINE * WM + ALPHA] __attribute__((aligned(64)));
    for (ptrdiff_t t0 = 0; t0 < nt; t0 += FNN_WINO_LINE) {
        const ptrdiff_t tn = nt - t0 < FNN_WINO_LINE ? nt - t0 : FNN_WINO_LINE;
        const ptrdiff_t len = tn * WM + (ALPHA - WM), q0 = w0 + t0 * WM;
        ptrdiff_t lo = q0 >= 0 ? 0 : -q0, hi = W - q0; /* line[lo..hi) lies in the row */
        if (lo > len) lo = len;
        if (hi > len) hi = len;
        if (hi < lo) hi = lo;
#if WGATHER_VEC
        /* VL tiles a vector: lines read in whole vectors, every WM-th element picked by
         * shuffles; lanes past tn read zeros and land on places later tiles overwrite
         * (or in the slack after the block) */
        const ptrdiff_t end = (tn + VL - 1) / VL * VL * WM + ALPHA;
#else
        const ptrdiff_t end = len;
#endif
        for (int i = 0; i < ALPHA; ++i) {
            const ptrdiff_t h = h0 + i;
            if (h < 0 || h >= H) continue;
            const T* s = src + h * sh;
            T* restrict line = lines[i];
            ptrdiff_t x = 0;
            for (; x < lo; ++x) line[x] = (T)0;
            if (sw == 1) {
                for (; x < hi; ++x) line[x] = s[q0 + x];
            } else {
                for (; x < hi; ++x) line[x] = s[(q0 + x) * sw];
            }
            for (; x < end; ++x) line[x] = (T)0;
        }
        for (int i = 0; i < ALPHA; ++i) {
            const ptrdiff_t h = h0 + i;
            T* restrict c = cols + (ptrdiff_t)i * ALPHA * cl + t0;
            if (h < 0 || h >= H) {
                for (int j = 0; j < ALPHA; ++j) memset(c + j * cl, 0, tn * sizeof(T));
                continue;
            }
            const T* line = lines[i];
#if WGATHER_VEC
            if (tn < VL / 2) { /* a few tiles (a 7x7 map's 2): element by element */
                for (ptrdiff_t t = 0; t < tn; ++t) {
                    FNN_WINO_UNROLL
                    for (int j = 0; j < ALPHA; ++j) c[j * cl + t] = line[t * WM + j];
                }
                continue;
            }
            for (ptrdiff_t t = 0; t < tn; t += VL) {
                FNN_WINO_UNROLL
                for (int j = 0; j < ALPHA; ++j) {
                    VEC v = WFNM(fnn_wino_every_wm)(line + t * WM + j);
                    FNN_VSTORE(c + j * cl + t, v);
                }
            }
#else
            for (ptrdiff_t t = 0; t < tn; ++t) {
                FNN_WINO_UNROLL
                for (int j = 0; j < ALPHA; ++j) c[j * cl + t] = line[t * WM + j];
            }
#endif
        }
    }
}

/* V for nt tiles of one channel: v[xi * ld + t] = (BT d_t B)[xi] for the tiles gathered
 * by fnn_wino_cols (row stride cl).  Whole vectors are stored: lanes past nt land in the
 * buffer's slack (or on later tiles' places, overwritten when those are transformed). */
static TARGET_ATTR void WFNM(fnn_wino_input)(const T* restrict cols, ptrdiff_t cl,
                                             ptrdiff_t nt, T* restrict v, ptrdiff_t ld) {
    for (ptrdiff_t t0 = 0; t0 < nt; t0 += VL) {
        VEC d[ALPHA][ALPHA], tmp[ALPHA][ALPHA];
        FNN_WINO_UNROLL
        for (int i = 0; i < ALPHA; ++i) {
            FNN_WINO_UNROLL
            for (int j = 0; j < ALPHA; ++j)
                FNN_VLOAD(d[i][j], cols + (i * ALPHA + j) * cl + t0);
        }
        FNN_WINO_UNROLL
        for (int x = 0; x < ALPHA; ++x) {
            FNN_WINO_UNROLL
            for (int j = 0; j < ALPHA; ++j) WLINCOMB(tmp[x][j], ALPHA, WBT[x][k_], d[k_][j]);
        }
        FNN_WINO_UNROLL
        for (int x = 0; x < ALPHA; ++x) {
            FNN_WINO_UNROLL
            for (int y = 0; y < ALPHA; ++y) {
                VEC o;
                WLINCOMB(o, ALPHA, WBT[y][k_], tmp[x][k_]);
                FNN_VSTORE(v + (x * ALPHA + y) * ld + t0, o);
            }
        }
    }
}

/* The outputs of nt tiles of one output channel: act((AT M A) + bias) from
 * m[xi * ld + t], written to the plane y (Ho x Wo) at rows oh0.., columns ow0 + t * WM..,
 * clipped to the plane; act as in conv_epilogue.h (0: none). */
static TARGET_ATTR void WFNM(fnn_wino_output)(const T* restrict m, ptrdiff_t ld,
                                              ptrdiff_t nt, T bias, T* restrict y,
                                              ptrdiff_t oh0, ptrdiff_t ow0, ptrdiff_t Ho,
                                              ptrdiff_t Wo, int act) {
    for (ptrdiff_t t0 = 0; t0 < nt; t0 += VL) {
        VEC mv[ALPHA][ALPHA], tmp[WM][ALPHA];
        T ob[WM][VL] __attribute__((aligned(64)));
        FNN_WINO_UNROLL
        for (int x = 0; x < ALPHA; ++x) {
            FNN_WINO_UNROLL
            for (int j = 0; j < ALPHA; ++j) FNN_VLOAD(mv[x][j], m + (x * ALPHA + j) * ld + t0);
        }
        FNN_WINO_UNROLL
        for (int i = 0; i < WM; ++i) {
            FNN_WINO_UNROLL
            for (int j = 0; j < ALPHA; ++j) WLINCOMB(tmp[i][j], ALPHA, WAT[i][k_], mv[k_][j]);
        }
        const ptrdiff_t nv = nt - t0 < VL ? nt - t0 : VL;
        const ptrdiff_t base = ow0 + t0 * WM;
        ptrdiff_t nfull = base < Wo ? (Wo - base) / WM : 0;
        if (nfull > nv) nfull = nv;
        FNN_WINO_UNROLL
        for (int i = 0; i < WM; ++i) {
            const ptrdiff_t oh = oh0 + i;
            if (oh >= Ho) break;
            VEC o[WM];
            FNN_WINO_UNROLL
            for (int j = 0; j < WM; ++j) {
                WLINCOMB(o[j], ALPHA, WAT[j][k_], tmp[i][k_]);
                o[j] += bias;
                FNN_CONV_ACT_VEC(o[j], act);
            }
            T* restrict yr = y + oh * Wo + base;
#if WGATHER_VEC
            /* the tiles' columns interleaved into output rows by shuffles: vector q holds
             * tiles [q VL/WM, (q + 1) VL/WM), stored whole where they all lie in the row
             * (unless not even one vector's tiles do: then element by element, below) */
            VEC r[WM];
            if (nfull < VL / WM) goto scalar;
            WFNM(fnn_wino_interleave)(o, r);
            FNN_WINO_UNROLL
            for (int q = 0; q < WM; ++q) {
                const ptrdiff_t tq = (ptrdiff_t)q * (VL / WM);
                if (tq + VL / WM <= nfull) {
                    FNN_VSTORE(yr + tq * WM, r[q]);
                } else if (tq < nv) {
                    T part[VL] __attribute__((aligned(64)));
                    FNN_VSTORE(part, r[q]);
                    for (ptrdiff_t e = 0; e < VL && tq * WM + e < nv * WM; ++e)
                        if (base + tq * WM + e < Wo) yr[tq * WM + e] = part[e];
                }
            }
            continue;
        scalar:
#endif
            FNN_WINO_UNROLL
            for (int j = 0; j < WM; ++j) FNN_VSTORE(&ob[j][0], o[j]);
            for (ptrdiff_t t = 0; t < nfull; ++t) {
                FNN_WINO_UNROLL
                for (int j = 0; j < WM; ++j) yr[t * WM + j] = ob[j][t];
            }
            for (ptrdiff_t t = nfull; t < nv; ++t)
                for (int j = 0; j < WM; ++j)
                    if (base + t * WM + j < Wo) yr[t * WM + j] = ob[j][t];
        }
    }
}

/* U = G w G^T for the filter panels kp_lo..kp_hi-1 of group g (a panel is WMR output
 * channels from kp * WMR), in the order fnn_wino_gemm_tile reads:
 * out[xi * xi_stride + (kp - kp_lo) * cg * WMR + c * WMR + kk], zero for channels past kg.
 * A panel's 3x3 taps are first gathered into f (9 x cg * WMR, tap-major), so that the
 * transform runs over contiguous vectors of (c, kk).  See fnn_wino_filter_* in
 * winograd.h for `transposed`. */
static TARGET_ATTR void WFNM(fnn_wino_filter)(const T* restrict w, int transposed,
                                              ptrdiff_t kg, ptrdiff_t cg, ptrdiff_t g,
                                              ptrdiff_t kp_lo, ptrdiff_t kp_hi,
                                              T* restrict out, ptrdiff_t xi_stride,
                                              T* restrict f) {
    const ptrdiff_t e_all = cg * WMR;
    const ptrdiff_t e_pad = fnn_wino_ceil_div(e_all, VL) * VL + FNN_WINO_SKEW;
    for (ptrdiff_t kp = kp_lo; kp < kp_hi; ++kp) {
        for (ptrdiff_t c = 0; c < cg; ++c) {
            T* fc = f + c * WMR;
            for (ptrdiff_t kk = 0; kk < WMR; ++kk) {
                const ptrdiff_t k = kp * WMR + kk;
                if (k >= kg) {
                    for (int rs = 0; rs < 9; ++rs) fc[rs * e_pad + kk] = (T)0;
                } else if (transposed) {
                    const T* src = w + ((g * cg + c) * kg + k) * 9;
                    for (int rs = 0; rs < 9; ++rs) fc[rs * e_pad + kk] = src[8 - rs];
                } else {
                    const T* src = w + ((g * kg + k) * cg + c) * 9;
                    for (int rs = 0; rs < 9; ++rs) fc[rs * e_pad + kk] = src[rs];
                }
            }
        }
        T* panel = out + (kp - kp_lo) * e_all;
        for (ptrdiff_t e0 = 0; e0 < e_all; e0 += VL) {
            VEC fv[9], t[ALPHA][3];
            FNN_WINO_UNROLL
            for (int rs = 0; rs < 9; ++rs) fv[rs] = *(const VEC*)(f + rs * e_pad + e0);
            FNN_WINO_UNROLL
            for (int i = 0; i < ALPHA; ++i) {
                FNN_WINO_UNROLL
                for (int s = 0; s < 3; ++s) WLINCOMB(t[i][s], 3, WG[i][k_], fv[k_ * 3 + s]);
            }
            const ptrdiff_t n = e_all - e0 < VL ? e_all - e0 : VL;
            FNN_WINO_UNROLL
            for (int i = 0; i < ALPHA; ++i) {
                FNN_WINO_UNROLL
                for (int j = 0; j < ALPHA; ++j) {
                    VEC o;
                    WLINCOMB(o, 3, WG[j][k_], t[i][k_]);
                    T* dst = panel + (i * ALPHA + j) * xi_stride + e0;
                    if (n == VL) {
                        FNN_VSTORE(dst, o);
                    } else {
                        T part[VL] __attribute__((aligned(64)));
                        FNN_VSTORE(part, o);
                        memcpy(dst, part, n * sizeof(T));
                    }
                }
            }
        }
    }
}

/* Per-thread scratch. */
typedef struct {
    T* V;    /* transformed input of a block: ALPHA^2 x cg x ps */
    T* M;    /* products of a chunk of output channels: ALPHA^2 x kcp x ps */
    T* rows; /* a block's gathered tiles of one channel: ALPHA^2 x rl (fnn_wino_cols) */
    T* U;    /* just-in-time filters of a chunk (a->u == NULL): ALPHA^2 x kcp x cg */
    T* f;    /* gathered taps for the filter transform: 9 x cg * WMR (rounded to VL) */
} WFNM(fnn_wino_scratch);

/* One thread's share of a call: blocks gb_lo..gb_hi-1 (block = group and pb tiles) times
 * output-channel chunks kc_lo..kc_hi-1 (chunk = kcp channels of each group).  Each block's
 * input is transformed once; each (block, chunk) runs ALPHA^2 GEMMs and the output
 * transform.  Without precomputed filters (a->u == NULL) the chunk's filters are
 * transformed here, just in time, into scratch. */
static TARGET_ATTR void WFNM(fnn_wino_share)(const fnn_wino_args* a, const T* w,
                                             int transposed, ptrdiff_t gb_lo,
                                             ptrdiff_t gb_hi, ptrdiff_t kc_lo,
                                             ptrdiff_t kc_hi, WFNM(fnn_wino_scratch) * sc,
                                             ptrdiff_t ps, ptrdiff_t rl, ptrdiff_t kcp) {
    const T* src = (const T*)a->src;
    const T* bias = (const T*)a->bias;
    T* dst = (T*)a->dst;
    const ptrdiff_t cg = a->C / a->G, kg = a->K / a->G;
    const ptrdiff_t tiles_h = fnn_wino_ceil_div(a->Ho, WM);
    const ptrdiff_t tiles_w = fnn_wino_ceil_div(a->Wo, WM);
    const ptrdiff_t per_image = tiles_h * tiles_w, P = a->N * per_image;
    const ptrdiff_t nblocks = fnn_wino_ceil_div(P, a->pb);
    const ptrdiff_t kpanels = fnn_wino_ceil_div(kg, WMR);
    const ptrdiff_t plane = a->Ho * a->Wo;
    const ptrdiff_t vxs = cg * ps + FNN_WINO_SKEW, mxs = kcp * ps + FNN_WINO_SKEW;
    for (ptrdiff_t gb = gb_lo; gb < gb_hi; ++gb) {
        const ptrdiff_t g = gb / nblocks, b = gb % nblocks;
        const ptrdiff_t p_start = b * a->pb;
        const ptrdiff_t p_end = p_start + a->pb < P ? p_start + a->pb : P;
        /* transform this block's input, all channels of the group: a channel's tiles are
         * gathered for the whole block, then transformed in full vectors */
        for (ptrdiff_t c = 0; c < cg; ++c) {
            for (ptrdiff_t p = p_start; p < p_end;) {
                const ptrdiff_t n = p / per_image, r = p % per_image;
                const ptrdiff_t th = r / tiles_w, tw = r % tiles_w;
                const ptrdiff_t nt = tiles_w - tw < p_end - p ? tiles_w - tw : p_end - p;
                const T* s_c = src + n * a->sn + (g * cg + c) * a->sc;
                WFNM(fnn_wino_cols)(s_c, a->sh, a->sw, a->H, a->W, th * WM - a->pt,
                                    tw * WM - a->pl, nt, sc->rows + (p - p_start), rl);
                p += nt;
            }
            WFNM(fnn_wino_input)(sc->rows, rl, p_end - p_start, sc->V + c * ps, vxs);
        }
        /* the GEMM reads whole panels: tiles past the block's end must be finite */
        const ptrdiff_t nvalid = p_end - p_start;
        const ptrdiff_t ncols = fnn_wino_ceil_div(nvalid, WNR) * WNR;
        if (ncols > nvalid)
            for (ptrdiff_t xi = 0; xi < ALPHA * ALPHA; ++xi)
                for (ptrdiff_t c = 0; c < cg; ++c)
                    memset(sc->V + xi * vxs + c * ps + nvalid, 0, (ncols - nvalid) * sizeof(T));
        for (ptrdiff_t kci = kc_lo; kci < kc_hi; ++kci) {
            const ptrdiff_t k0 = kci * kcp;
            const ptrdiff_t kn = kg - k0 < kcp ? kg - k0 : kcp;
            const ptrdiff_t kpad = fnn_wino_ceil_div(kn, WMR) * WMR;
            const T* u0;
            ptrdiff_t xi_stride;
            if (a->u != NULL) {
                xi_stride = kpanels * cg * WMR + FNN_WINO_SKEW;
                u0 = (const T*)a->u + g * ALPHA * ALPHA * xi_stride + k0 / WMR * cg * WMR;
            } else {
                xi_stride = kcp * cg + FNN_WINO_SKEW;
                WFNM(fnn_wino_filter)(w, transposed, kg, cg, g, k0 / WMR, (k0 + kpad) / WMR,
                                      sc->U, xi_stride, sc->f);
                u0 = sc->U;
            }
            for (ptrdiff_t xi = 0; xi < ALPHA * ALPHA; ++xi) {
                const T* ux = u0 + xi * xi_stride;
                const T* vx = sc->V + xi * vxs;
                T* mx = sc->M + xi * mxs;
                for (ptrdiff_t kp = 0; kp < kpad; kp += WMR)
                    for (ptrdiff_t p0 = 0; p0 < ncols; p0 += WNR)
                        WFN(fnn_wino_gemm_tile)(ux + kp * cg, vx + p0, cg, ps,
                                                mx + kp * ps + p0, ps);
                /* the output transform reads up to a vector past the panels */
                for (ptrdiff_t kp = 0; kp < kpad; ++kp)
                    memset(mx + kp * ps + ncols, 0, (ps - ncols) * sizeof(T));
            }
            for (ptrdiff_t kk = 0; kk < kn; ++kk) {
                const ptrdiff_t k = g * kg + k0 + kk;
                const T bk = bias != NULL ? bias[k] : (T)0;
                for (ptrdiff_t p = p_start; p < p_end;) {
                    const ptrdiff_t n = p / per_image, r = p % per_image;
                    const ptrdiff_t th = r / tiles_w, tw = r % tiles_w;
                    const ptrdiff_t nt = tiles_w - tw < p_end - p ? tiles_w - tw : p_end - p;
                    WFNM(fnn_wino_output)(sc->M + kk * ps + (p - p_start), mxs, nt, bk,
                                          dst + (n * a->K + k) * plane, th * WM, tw * WM,
                                          a->Ho, a->Wo, a->act);
                    p += nt;
                }
            }
        }
    }
}

/* A whole convolution on a tk x tp grid of threads (a->tk, a->tp): thread (ik, ip) takes
 * the ip-th share of the blocks and the ik-th share of the output-channel chunks.  With
 * a->u NULL, each thread transforms the filters of its chunks from w itself.  0 on
 * success, -1 when scratch could not be allocated. */
static int WFNM(fnn_wino_conv)(const fnn_wino_args* a, const T* w, int transposed) {
    const ptrdiff_t cg = a->C / a->G, kg = a->K / a->G;
    const ptrdiff_t P = a->N * fnn_wino_ceil_div(a->Ho, WM) * fnn_wino_ceil_div(a->Wo, WM);
    const ptrdiff_t kg_pad = fnn_wino_ceil_div(kg, WMR) * WMR;
    const ptrdiff_t kcp = a->kc < kg_pad ? a->kc : kg_pad;
    const ptrdiff_t nblocks = a->G * fnn_wino_ceil_div(P, a->pb);
    const ptrdiff_t nchunks = fnn_wino_ceil_div(kg, kcp);
    const ptrdiff_t ps = a->pb + VL;
    const ptrdiff_t rl = fnn_wino_ceil_div(a->pb, VL) * VL + VL;
    const int jit = a->u == NULL;
    const size_t sizes[5] = {
        (size_t)(ALPHA * ALPHA * (cg * ps + FNN_WINO_SKEW)) * sizeof(T),
        (size_t)(ALPHA * ALPHA * (kcp * ps + FNN_WINO_SKEW)) * sizeof(T),
        (size_t)(ALPHA * ALPHA * rl) * sizeof(T),
        jit ? (size_t)(ALPHA * ALPHA * (kcp * cg + FNN_WINO_SKEW)) * sizeof(T) : 0,
        jit ? (size_t)(9 * (fnn_wino_ceil_div(cg * WMR, VL) * VL + FNN_WINO_SKEW)) * sizeof(T) : 0,
    };
    ptrdiff_t tk = a->tk < 1 ? 1 : a->tk, tp = a->tp < 1 ? 1 : a->tp;
    if (tk > nchunks) tk = nchunks;
    if (tp > nblocks) tp = nblocks;
    int failed = 0;
#pragma omp parallel num_threads((int)(tk * tp)) reduction(| : failed) if (tk * tp > 1)
    {
        const ptrdiff_t tid = omp_get_thread_num();
        const ptrdiff_t ik = tid / tp, ip = tid % tp;
        WFNM(fnn_wino_scratch) sc;
        T** bufs[5] = {&sc.V, &sc.M, &sc.rows, &sc.U, &sc.f};
        int ok = 1;
        for (int i = 0; i < 5; ++i) {
            *bufs[i] = sizes[i] ? (T*)fnn_workspace(i, sizes[i]) : NULL;
            if (sizes[i] && *bufs[i] == NULL) ok = 0;
        }
        if (ok) {
            /* stale values past the data are read into lanes nobody stores: keep them
             * finite (and never denormal) */
            memset(sc.rows, 0, sizes[2]);
            if (jit) memset(sc.f, 0, sizes[4]);
            WFNM(fnn_wino_share)(a, w, transposed, nblocks * ip / tp, nblocks * (ip + 1) / tp,
                                 nchunks * ik / tk, nchunks * (ik + 1) / tk, &sc, ps, rl,
                                 kcp);
        } else {
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}

/* The whole filter transform into the global layout (see winograd.h), over `threads`
 * threads; 0, or -1 without memory. */
static int WFNM(fnn_wino_filters)(const T* w, int transposed, ptrdiff_t groups, ptrdiff_t kg,
                                  ptrdiff_t cg, T* u, int threads) {
    const ptrdiff_t kpanels = fnn_wino_ceil_div(kg, WMR), items = groups * kpanels;
    const ptrdiff_t panel = cg * WMR, xi_stride = kpanels * panel + FNN_WINO_SKEW;
    const size_t f_bytes =
        (size_t)(9 * (fnn_wino_ceil_div(panel, VL) * VL + FNN_WINO_SKEW)) * sizeof(T);
    int failed = 0;
    if (threads > items) threads = (int)items;
    if (threads < 1) threads = 1;
#pragma omp parallel num_threads(threads) reduction(| : failed) if (threads > 1)
    {
        const ptrdiff_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
        T* f = (T*)fnn_workspace(4, f_bytes);
        if (f != NULL) {
            memset(f, 0, f_bytes);
            for (ptrdiff_t item = items * tid / nth; item < items * (tid + 1) / nth; ++item) {
                const ptrdiff_t g = item / kpanels, kp = item % kpanels;
                WFNM(fnn_wino_filter)(w, transposed, kg, cg, g, kp, kp + 1,
                                      u + g * ALPHA * ALPHA * xi_stride + kp * panel,
                                      xi_stride, f);
            }
        } else {
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}

#include "winograd_wgrad.h"

#undef WLINCOMB
#undef WBT
#undef WG
#undef WAT
#undef WFNM
#undef WCAT3
#undef WCAT3_
#undef WCATN
#undef WCATN_
#undef ALPHA
#undef WM
#undef WGATHER_VEC
