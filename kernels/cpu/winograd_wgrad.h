/* The weight gradient by Winograd F(WM x WM, 3 x 3): included by winograd_tile.h (per tile
 * size, per instruction set), which defines ALPHA, WM, WFN, WFNM, WAT, WG, WLINCOMB,
 * FNN_VLOAD, FNN_VSTORE and the forward transforms used here.
 *
 * By the transposition principle, the gradient of the forward algorithm
 * y = AT [(G w GT) * (BT d B)] A with respect to the filter w is, per tile,
 *
 *     gw = GT [(AT^T gy AT) * (BT d B)] G,
 *
 * and summed over tiles t and images, the elementwise product becomes, per position xi of
 * the ALPHA x ALPHA transformed domain, a GEMM with the tiles as its reduction:
 *
 *     S[xi][k][c] = sum_t Z[xi][k][t] V[xi][c][t],   Z = AT^T gy AT,   V = BT d B,
 *     gw[k][c] = GT S[.][k][c] G.
 *
 * So a thread transforms a block of tiles of the input (V, as in the forward pass) and of
 * grad_output (Z), transposes V to put channels in the SIMD lanes, and runs the register
 * tile of fnn_wino_gemm_rows (output channels x input channels, tiles reduced over) into
 * float accumulators S that outlive the block.  Work items are (group, chunk of kc output
 * channels, chunk of cc input channels); when there are too few of them for the threads,
 * the threads split each item's tiles instead and add their accumulators at the end.
 */

/* grad_output rows of one tile row, one channel, split into WM phases:
 * rows[(i * WM + phase) * rl + t] = gy[oh0 + i][(tw0 + t) * WM + phase] for t < nt, zero
 * outside the Ho x Wo plane. */
static TARGET_ATTR void WFNM(fnn_wino_gy_rows)(const T* restrict gy, ptrdiff_t Ho,
                                               ptrdiff_t Wo, ptrdiff_t oh0, ptrdiff_t ow0,
                                               ptrdiff_t nt, T* restrict rows, ptrdiff_t rl) {
    for (int i = 0; i < WM; ++i) {
        const ptrdiff_t oh = oh0 + i;
        T* row = rows + (ptrdiff_t)i * WM * rl;
        if (oh >= Ho) {
            for (int ph = 0; ph < WM; ++ph) memset(row + ph * rl, 0, nt * sizeof(T));
            continue;
        }
        const T* s = gy + oh * Wo;
        for (int ph = 0; ph < WM; ++ph) {
            T* restrict d = row + ph * rl;
            const ptrdiff_t first = ow0 + ph;
            ptrdiff_t hi = first >= Wo ? 0 : (Wo - first + WM - 1) / WM;
            if (hi > nt) hi = nt;
            ptrdiff_t t = 0;
            for (; t < hi; ++t) d[t] = s[first + t * WM];
            for (; t < nt; ++t) d[t] = 0;
        }
    }
}

/* Z for nt tiles of one output channel: z[xi * ld + t] = (AT^T g_t AT)[xi]. */
static TARGET_ATTR void WFNM(fnn_wino_gy_input)(const T* restrict rows, ptrdiff_t rl,
                                                ptrdiff_t nt, T* restrict z, ptrdiff_t ld) {
    for (ptrdiff_t t0 = 0; t0 < nt; t0 += VL) {
        VEC g[WM][WM], tmp[ALPHA][WM];
        FNN_WINO_UNROLL
        for (int i = 0; i < WM; ++i) {
            FNN_WINO_UNROLL
            for (int j = 0; j < WM; ++j) FNN_VLOAD(g[i][j], rows + (i * WM + j) * rl + t0);
        }
        FNN_WINO_UNROLL
        for (int x = 0; x < ALPHA; ++x) {
            FNN_WINO_UNROLL
            for (int j = 0; j < WM; ++j) WLINCOMB(tmp[x][j], WM, WAT[k_][x], g[k_][j]);
        }
        FNN_WINO_UNROLL
        for (int x = 0; x < ALPHA; ++x) {
            FNN_WINO_UNROLL
            for (int y = 0; y < ALPHA; ++y) {
                VEC o;
                WLINCOMB(o, WM, WAT[k_][y], tmp[x][k_]);
                FNN_VSTORE(z + (x * ALPHA + y) * ld + t0, o);
            }
        }
    }
}

/* gw[k][c][r][s] (+)= (GT S G)[r][s] for the kc x cc block of accumulators S
 * (s[xi * xs + k * ld + c], c in SIMD lanes), written at gw + k * gwk + c * 9. */
static TARGET_ATTR void WFNM(fnn_wino_gw_out)(const T* restrict S, ptrdiff_t xs, ptrdiff_t ld,
                                              ptrdiff_t kn, ptrdiff_t cn, T* restrict gw,
                                              ptrdiff_t gwk) {
    for (ptrdiff_t k = 0; k < kn; ++k) {
        for (ptrdiff_t c0 = 0; c0 < cn; c0 += VL) {
            VEC sv[ALPHA][ALPHA], tmp[ALPHA][3];
            T out[9][VL] __attribute__((aligned(64)));
            FNN_WINO_UNROLL
            for (int x = 0; x < ALPHA; ++x) {
                FNN_WINO_UNROLL
                for (int y = 0; y < ALPHA; ++y)
                    sv[x][y] = *(const VEC*)(S + (x * ALPHA + y) * xs + k * ld + c0);
            }
            FNN_WINO_UNROLL
            for (int x = 0; x < ALPHA; ++x) {
                FNN_WINO_UNROLL
                for (int s = 0; s < 3; ++s) WLINCOMB(tmp[x][s], ALPHA, WG[k_][s], sv[x][k_]);
            }
            FNN_WINO_UNROLL
            for (int r = 0; r < 3; ++r) {
                FNN_WINO_UNROLL
                for (int s = 0; s < 3; ++s) {
                    VEC o;
                    WLINCOMB(o, ALPHA, WG[k_][r], tmp[k_][s]);
                    FNN_VSTORE(&out[r * 3 + s][0], o);
                }
            }
            const ptrdiff_t n = cn - c0 < VL ? cn - c0 : VL;
            T* dst = gw + k * gwk + c0 * 9;
            for (ptrdiff_t c = 0; c < n; ++c)
                for (int rs = 0; rs < 9; ++rs) dst[c * 9 + rs] = out[rs][c];
        }
    }
}

typedef struct {
    T* V;     /* transformed input: ALPHA^2 x ccp x ps */
    T* Vt;    /* the same, channels in lanes: ALPHA^2 x pbt x ccp */
    T* Z;     /* transformed grad_output: ALPHA^2 x kcp x ps */
    T* rows;  /* gathered input tiles (ALPHA^2 x cl), phase-split grad_output (WM^2 x rl) */
    T* S;     /* accumulators: ALPHA^2 x kcp x ccp */
} WFNM(fnn_wino_wscratch);

/* Strides of the weight-gradient buffers (elements), for pb tiles per block. */
typedef struct {
    ptrdiff_t ps, rl, cl, pbt, kcp, ccp, vxs, vtxs, zxs, sxs;
} WFNM(fnn_wino_wlayout);

static WFNM(fnn_wino_wlayout) WFNM(fnn_wino_wlayout_of)(ptrdiff_t pb, ptrdiff_t kc,
                                                        ptrdiff_t cc, ptrdiff_t tiles_w) {
    WFNM(fnn_wino_wlayout) l;
    const ptrdiff_t seg = pb < tiles_w ? pb : tiles_w;
    l.ps = fnn_wino_ceil_div(pb, VL) * VL + VL;
    l.rl = fnn_wino_ceil_div(seg + VL + 1, VL) * VL;
    l.cl = fnn_wino_ceil_div(pb, VL) * VL + VL;
    l.pbt = fnn_wino_ceil_div(pb, VL) * VL;
    l.kcp = fnn_wino_ceil_div(kc, WMR) * WMR;
    l.ccp = fnn_wino_ceil_div(cc, WNR) * WNR;
    l.vxs = l.ccp * l.ps + FNN_WINO_SKEW;
    l.vtxs = l.pbt * l.ccp + FNN_WINO_SKEW;
    l.zxs = l.kcp * l.ps + FNN_WINO_SKEW;
    l.sxs = l.kcp * l.ccp + FNN_WINO_SKEW;
    return l;
}

/* Add to S the products of tiles p_lo..p_hi-1 (blocks of a->pb) for group g, output
 * channels k0..k0+kn-1 and input channels c0..c0+cn-1. */
static TARGET_ATTR void WFNM(fnn_wino_wblocks)(const fnn_wino_wargs* a, ptrdiff_t g,
                                               ptrdiff_t k0, ptrdiff_t kn, ptrdiff_t c0,
                                               ptrdiff_t cn, ptrdiff_t p_lo, ptrdiff_t p_hi,
                                               WFNM(fnn_wino_wscratch) * sc,
                                               const WFNM(fnn_wino_wlayout) * l) {
    const T* x = (const T*)a->x;
    const T* gy = (const T*)a->gy;
    const ptrdiff_t cg = a->C / a->G, kg = a->K / a->G;
    const ptrdiff_t tiles_w = fnn_wino_ceil_div(a->Wo, WM);
    const ptrdiff_t per_image = fnn_wino_ceil_div(a->Ho, WM) * tiles_w;
    const ptrdiff_t plane = a->Ho * a->Wo;
    (void)cg;
    for (ptrdiff_t p_start = p_lo; p_start < p_hi; p_start += a->pb) {
        const ptrdiff_t p_end = p_start + a->pb < p_hi ? p_start + a->pb : p_hi;
        const ptrdiff_t nvalid = p_end - p_start, nvt = fnn_wino_ceil_div(nvalid, VL) * VL;
        for (ptrdiff_t c = 0; c < cn; ++c) { /* the input: full vectors of tiles */
            for (ptrdiff_t p = p_start; p < p_end;) {
                const ptrdiff_t n = p / per_image, r = p % per_image;
                const ptrdiff_t th = r / tiles_w, tw = r % tiles_w;
                const ptrdiff_t nt = tiles_w - tw < p_end - p ? tiles_w - tw : p_end - p;
                const T* xc = x + n * a->sn + (g * cg + c0 + c) * a->sc;
                WFNM(fnn_wino_cols)(xc, a->sh, a->sw, a->H, a->W, th * WM - a->pt,
                                    tw * WM - a->pl, nt, sc->rows + (p - p_start), l->cl);
                p += nt;
            }
            WFNM(fnn_wino_input)(sc->rows, l->cl, nvalid, sc->V + c * l->ps, l->vxs);
        }
        for (ptrdiff_t p = p_start; p < p_end;) {
            const ptrdiff_t n = p / per_image, r = p % per_image;
            const ptrdiff_t th = r / tiles_w, tw = r % tiles_w;
            const ptrdiff_t nt = tiles_w - tw < p_end - p ? tiles_w - tw : p_end - p;
            for (ptrdiff_t k = 0; k < kn; ++k) {
                const T* gk = gy + (n * a->K + g * kg + k0 + k) * plane;
                WFNM(fnn_wino_gy_rows)(gk, a->Ho, a->Wo, th * WM, tw * WM, nt, sc->rows, l->rl);
                WFNM(fnn_wino_gy_input)(sc->rows, l->rl, nt, sc->Z + k * l->ps + (p - p_start),
                                        l->zxs);
            }
            p += nt;
        }
        /* lanes past the block's tiles and channels past cn must be zero in V */
        for (ptrdiff_t xi = 0; xi < ALPHA * ALPHA; ++xi) {
            T* vx = sc->V + xi * l->vxs;
            for (ptrdiff_t c = 0; c < cn; ++c)
                memset(vx + c * l->ps + nvalid, 0, (nvt - nvalid) * sizeof(T));
            for (ptrdiff_t c = cn; c < l->ccp; ++c) memset(vx + c * l->ps, 0, nvt * sizeof(T));
            T* vt = sc->Vt + xi * l->vtxs;
            for (ptrdiff_t t0 = 0; t0 < nvt; t0 += VL)
                for (ptrdiff_t cb = 0; cb < l->ccp; cb += VL)
                    WFN(fnn_wino_transpose)(vx + cb * l->ps + t0, l->ps, vt + t0 * l->ccp + cb,
                                            l->ccp);
        }
        for (ptrdiff_t xi = 0; xi < ALPHA * ALPHA; ++xi) {
            const T* zx = sc->Z + xi * l->zxs;
            const T* vt = sc->Vt + xi * l->vtxs;
            T* sx = sc->S + xi * l->sxs;
            for (ptrdiff_t kp = 0; kp < kn; kp += WMR)
                for (ptrdiff_t cb = 0; cb < l->ccp; cb += WNR)
                    WFN(fnn_wino_gemm_rows)(zx + kp * l->ps, l->ps, vt + cb, l->ccp, nvalid,
                                            sx + kp * l->ccp + cb, l->ccp);
        }
    }
}

/* The whole weight gradient (see fnn_wino_wargs).  0 on success, -1 without memory. */
static int WFNM(fnn_wino_wgrad)(const fnn_wino_wargs* a) {
    const ptrdiff_t cg = a->C / a->G, kg = a->K / a->G;
    const ptrdiff_t tiles_w = fnn_wino_ceil_div(a->Wo, WM);
    const ptrdiff_t P = a->N * fnn_wino_ceil_div(a->Ho, WM) * tiles_w;
    const ptrdiff_t kc = a->kc < kg ? a->kc : kg, cc = a->cc < cg ? a->cc : cg;
    const ptrdiff_t nk = fnn_wino_ceil_div(kg, kc), nc = fnn_wino_ceil_div(cg, cc);
    const ptrdiff_t items = a->G * nk * nc;
    const WFNM(fnn_wino_wlayout) l = WFNM(fnn_wino_wlayout_of)(a->pb, kc, cc, tiles_w);
    const ptrdiff_t rows_len = ALPHA * ALPHA * l.cl > WM * WM * l.rl ? ALPHA * ALPHA * l.cl
                                                                     : WM * WM * l.rl;
    const size_t sizes[5] = {
        (size_t)(ALPHA * ALPHA * l.vxs) * sizeof(T),
        (size_t)(ALPHA * ALPHA * l.vtxs) * sizeof(T),
        (size_t)(ALPHA * ALPHA * l.zxs) * sizeof(T),
        (size_t)rows_len * sizeof(T),
        (size_t)(ALPHA * ALPHA * l.sxs) * sizeof(T),
    };
    int threads = a->threads < 1 ? 1 : a->threads;
    /* split tiles when the items alone cannot keep the threads busy */
    const int split = items < 2 * threads && P >= 2 * threads * (ptrdiff_t)VL;
    if (!split && threads > items) threads = (int)items;
    T* partial[64];
    if (threads > 64) threads = 64;
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed) if (threads > 1)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        WFNM(fnn_wino_wscratch) sc;
        T** bufs[5] = {&sc.V, &sc.Vt, &sc.Z, &sc.rows, &sc.S};
        int ok = 1;
        for (int i = 0; i < 5; ++i) {
            *bufs[i] = (T*)fnn_workspace(i, sizes[i]);
            if (*bufs[i] == NULL) ok = 0;
        }
        if (ok) {
            memset(sc.rows, 0, sizes[3]);
            memset(sc.Z, 0, sizes[2]);
        }
        partial[tid] = ok ? sc.S : NULL;
        if (split) {
#pragma omp barrier
            int all_ok = 1;
            for (int i = 0; i < nth; ++i) all_ok &= partial[i] != NULL;
            for (ptrdiff_t item = 0; item < items && all_ok; ++item) {
                const ptrdiff_t g = item / (nk * nc), kci = item / nc % nk, cci = item % nc;
                const ptrdiff_t k0 = kci * kc, c0 = cci * cc;
                const ptrdiff_t kn = kg - k0 < kc ? kg - k0 : kc;
                const ptrdiff_t cn = cg - c0 < cc ? cg - c0 : cc;
                memset(sc.S, 0, sizes[4]);
                /* split the tiles, in whole blocks */
                const ptrdiff_t nb = fnn_wino_ceil_div(P, a->pb);
                const ptrdiff_t p_lo = nb * tid / nth * a->pb;
                ptrdiff_t p_hi = nb * (tid + 1) / nth * a->pb;
                if (p_hi > P) p_hi = P;
                WFNM(fnn_wino_wblocks)(a, g, k0, kn, c0, cn, p_lo, p_hi, &sc, &l);
#pragma omp barrier
                /* sum the partial accumulators into thread 0's, a slice per thread */
                const ptrdiff_t total = ALPHA * ALPHA * l.sxs;
                const ptrdiff_t e_lo = total * tid / nth, e_hi = total * (tid + 1) / nth;
                for (int i = 1; i < nth; ++i) {
                    const T* src = partial[i];
                    T* dst = partial[0];
                    for (ptrdiff_t e = e_lo; e < e_hi; ++e) dst[e] += src[e];
                }
#pragma omp barrier
                const ptrdiff_t k_lo = kn * tid / nth, k_hi = kn * (tid + 1) / nth;
                WFNM(fnn_wino_gw_out)(partial[0] + k_lo * l.ccp, l.sxs, l.ccp, k_hi - k_lo, cn,
                                      (T*)a->gw + ((g * kg + k0 + k_lo) * cg + c0) * 9, cg * 9);
#pragma omp barrier
            }
            if (!all_ok) failed = 1;
        } else if (ok) {
            for (ptrdiff_t item = items * tid / nth; item < items * (tid + 1) / nth; ++item) {
                const ptrdiff_t g = item / (nk * nc), kci = item / nc % nk, cci = item % nc;
                const ptrdiff_t k0 = kci * kc, c0 = cci * cc;
                const ptrdiff_t kn = kg - k0 < kc ? kg - k0 : kc;
                const ptrdiff_t cn = cg - c0 < cc ? cg - c0 : cc;
                memset(sc.S, 0, sizes[4]);
                WFNM(fnn_wino_wblocks)(a, g, k0, kn, c0, cn, 0, P, &sc, &l);
                WFNM(fnn_wino_gw_out)(sc.S, l.sxs, l.ccp, kn, cn,
                                      (T*)a->gw + ((g * kg + k0) * cg + c0) * 9, cg * 9);
            }
        } else {
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}
