/* One (element type, instruction set) instantiation of the depthwise convolution.
 * Included by depthwise.h through isa_instances.h, which defines T, VEC, VL, SFX and
 * TARGET_ATTR (and undefines them afterwards).
 */

/* Rows here are short (a 7x7 map has 9-wide padded rows): gcc must not turn the copy
 * and clear loops into memcpy / memset calls, whose fixed cost exceeds the work. */
#if defined(__GNUC__) && !defined(__clang__)
#define DNOCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define DNOCALLS
#endif

#define DCAT_(a, b) a##_##b
#define DCAT(a, b) DCAT_(a, b)
#define DFN(name) DCAT(name, SFX)

#include "vec_io.h" /* FNN_VLOAD, FNN_VSTORE */

/* Where the data of each phase plane lies: rows hp_lo..hp_hi-1 and columns lo..hi-1 come
 * from the input; everything else is padding, zeroed once per call and never written. */
static void DFN(fnn_dw_phase_table)(const fnn_dw_args* a, const fnn_dw_layout* l,
                                    fnn_dw_phase* table) {
    for (ptrdiff_t pa = 0; pa < a->sh; ++pa) {
        for (ptrdiff_t pb = 0; pb < a->sw; ++pb) {
            fnn_dw_phase* ph = table + pa * a->sw + pb;
            const ptrdiff_t first = pb - a->pl;      /* source column of j' = 0 */
            const ptrdiff_t top = pa - a->pt;        /* source row of h' = 0 */
            ptrdiff_t lo = first >= 0 ? 0 : (-first + a->sw - 1) / a->sw;
            ptrdiff_t hi = first >= a->W ? 0 : (a->W - first + a->sw - 1) / a->sw;
            ptrdiff_t rlo = top >= 0 ? 0 : (-top + a->sh - 1) / a->sh;
            ptrdiff_t rhi = top >= a->H ? 0 : (a->H - top + a->sh - 1) / a->sh;
            if (hi > l->wq) hi = l->wq;
            if (lo > hi) lo = hi;
            if (rhi > l->hq) rhi = l->hq;
            if (rlo > rhi) rlo = rhi;
            ph->lo = lo;
            ph->hi = hi;
            ph->hp_lo = rlo;
            ph->hp_hi = rhi;
            ph->src = (top + rlo * a->sh) * a->sh_ + (first + lo * a->sw) * a->sw_;
        }
    }
}

/* The data of one input plane's phases into P (see fnn_dw_phase_table): only the part
 * that comes from the input is written; the padding around it stays zero. */
static TARGET_ATTR DNOCALLS void DFN(fnn_dw_phases)(const fnn_dw_args* a,
                                                    const fnn_dw_layout* l,
                                                    const fnn_dw_phase* table, const T* x,
                                                    T* restrict P) {
    const ptrdiff_t phases = a->sh * a->sw;
    const ptrdiff_t row_step = a->sh * a->sh_, col_step = a->sw * a->sw_;
    for (ptrdiff_t q = 0; q < phases; ++q) {
        const fnn_dw_phase* ph = table + q;
        const ptrdiff_t n = ph->hi - ph->lo;
        T* row = P + q * l->ps + ph->hp_lo * l->wq + ph->lo;
        const T* src = x + ph->src;
        if (col_step == 1) {
            for (ptrdiff_t hp = ph->hp_lo; hp < ph->hp_hi; ++hp) {
                for (ptrdiff_t j = 0; j < n; ++j) row[j] = src[j];
                row += l->wq;
                src += row_step;
            }
        } else {
            for (ptrdiff_t hp = ph->hp_lo; hp < ph->hp_hi; ++hp) {
                for (ptrdiff_t j = 0; j < n; ++j) row[j] = src[j * col_step];
                row += l->wq;
                src += row_step;
            }
        }
    }
}

/* For tap t = r * S + s: off[t] = its phase plane times ps plus its shift;
 * off[taps + t] = its phase plane; off[2 * taps + t] = its shift. */
static void DFN(fnn_dw_taps)(const fnn_dw_args* a, const fnn_dw_layout* l, ptrdiff_t* off) {
    const ptrdiff_t taps = a->R * a->S;
    for (ptrdiff_t r = 0; r < a->R; ++r)
        for (ptrdiff_t s = 0; s < a->S; ++s) {
            const ptrdiff_t vr = r * a->dh, vs = s * a->dw, t = r * a->S + s;
            const ptrdiff_t phase = (vr % a->sh) * a->sw + vs % a->sw;
            const ptrdiff_t shift = (vr / a->sh) * l->wq + vs / a->sw;
            off[t] = phase * l->ps + shift;
            off[taps + t] = phase;
            off[2 * taps + t] = shift;
        }
}

/* grad_output plane of channel k in the wide layout, after `margin` zeros.  Only the
 * data is written: the junk columns, the margin and the tail (up to a vector past the
 * phase planes' span, where the input gradient reads) were zeroed once per call. */
static TARGET_ATTR DNOCALLS void DFN(fnn_dw_gy_wide)(const fnn_dw_args* a,
                                                     const fnn_dw_layout* l, const T* gy,
                                                     T* restrict gw_) {
    T* dst = gw_ + l->margin;
    for (ptrdiff_t oh = 0; oh < a->Ho; ++oh) {
        const T* src = gy + oh * a->Wo;
        for (ptrdiff_t ow = 0; ow < a->Wo; ++ow) dst[ow] = src[ow];
        dst += l->wq;
    }
}

/* acc[0..3] += sum over the nt taps of wts[t] * the four vectors at p + offs[t]: four
 * independent sums, so that no multiply-add waits on the previous tap's. */
static TARGET_ATTR inline __attribute__((always_inline)) void DFN(fnn_dw_sum4)(
    const T* p, const ptrdiff_t* offs, const T* wts, ptrdiff_t nt, VEC* acc) {
    for (ptrdiff_t t = 0; t < nt; ++t) {
        const T* src = p + offs[t];
        const T wt = wts[t];
        VEC v0, v1, v2, v3;
        FNN_VLOAD(v0, src);
        FNN_VLOAD(v1, src + VL);
        FNN_VLOAD(v2, src + 2 * VL);
        FNN_VLOAD(v3, src + 3 * VL);
        acc[0] += v0 * wt;
        acc[1] += v1 * wt;
        acc[2] += v2 * wt;
        acc[3] += v3 * wt;
    }
}

/* Forward for the planes lo..hi-1 (plane = image n, input channel c). */
static TARGET_ATTR DNOCALLS void DFN(fnn_dw_forward)(const fnn_dw_args* a,
                                                     const fnn_dw_layout* l, ptrdiff_t lo,
                                                     ptrdiff_t hi, T* P, T* yw, ptrdiff_t* off,
                                                     const fnn_dw_phase* table) {
    const ptrdiff_t taps = a->R * a->S, K = a->C * a->KM;
    const T* w = (const T*)a->w;
    const T* bias = (const T*)a->bias;
    T* y = (T*)a->out;
    ptrdiff_t n = lo / a->C, c = lo % a->C;
    for (ptrdiff_t item = lo; item < hi; ++item, c = c + 1 == a->C ? (++n, 0) : c + 1) {
        DFN(fnn_dw_phases)(a, l, table, (const T*)a->x + n * a->sn + c * a->sc, P);
        for (ptrdiff_t j = 0; j < a->KM; ++j) {
            const ptrdiff_t k = c * a->KM + j;
            const T* wk = w + k * taps;
            const T b = bias != NULL ? bias[k] : (T)0;
            /* four independent accumulators; the last group may run past the wide
             * plane into zero slack (P) and scratch (yw) */
            for (ptrdiff_t i0 = 0; i0 < l->wide; i0 += 4 * VL) {
                VEC acc[4];
                acc[0] = acc[1] = acc[2] = acc[3] = (VEC){0} + b;
                DFN(fnn_dw_sum4)(P + i0, off, wk, taps, acc);
                FNN_VSTORE(yw + i0, acc[0]);
                FNN_VSTORE(yw + i0 + VL, acc[1]);
                FNN_VSTORE(yw + i0 + 2 * VL, acc[2]);
                FNN_VSTORE(yw + i0 + 3 * VL, acc[3]);
            }
            /* the wide rows out to the plane, through the activation */
            T* yk = y + (n * K + k) * a->Ho * a->Wo;
            for (ptrdiff_t oh = 0; oh < a->Ho; ++oh) {
                T* restrict dst = yk + oh * a->Wo;
                const T* restrict src = yw + oh * l->wq;
                if (a->act == FNN_CONV_ACT_RELU)
                    for (ptrdiff_t ow = 0; ow < a->Wo; ++ow)
                        dst[ow] = src[ow] < (T)0 ? (T)0 : src[ow];
                else if (a->act == FNN_CONV_ACT_RELU6)
                    for (ptrdiff_t ow = 0; ow < a->Wo; ++ow)
                        dst[ow] = src[ow] < (T)0 ? (T)0 : (src[ow] > (T)6 ? (T)6 : src[ow]);
                else
                    for (ptrdiff_t ow = 0; ow < a->Wo; ++ow) dst[ow] = src[ow];
            }
        }
    }
}

/* Input gradient for the planes lo..hi-1: G (sh*sw phase planes) gathers every output
 * channel of the plane's group, then is scattered back into gx. */
static TARGET_ATTR DNOCALLS void DFN(fnn_dw_grad_input)(const fnn_dw_args* a, const fnn_dw_layout* l,
                                               ptrdiff_t lo, ptrdiff_t hi, T* G, T* gyw,
                                               ptrdiff_t* off) {
    ptrdiff_t* sel = off + 3 * a->R * a->S;
    T* wsel = (T*)(sel + a->R * a->S);
    const ptrdiff_t taps = a->R * a->S, K = a->C * a->KM, phases = a->sh * a->sw;
    const ptrdiff_t span = l->hq * l->wq;
    const T* w = (const T*)a->w;
    const T* gy = (const T*)a->gy;
    T* gx = (T*)a->out;
    for (ptrdiff_t item = lo; item < hi; ++item) {
        const ptrdiff_t n = item / a->C, c = item % a->C;
        for (ptrdiff_t j = 0; j < a->KM; ++j) {
            const ptrdiff_t k = c * a->KM + j;
            const T* wk = w + k * taps;
            DFN(fnn_dw_gy_wide)(a, l, gy + (n * K + k) * a->Ho * a->Wo, gyw);
            const T* base = gyw + l->margin;
            for (ptrdiff_t ph = 0; ph < phases; ++ph) {
                T* g = G + ph * l->ps;
                /* the taps of this phase: their shifts and weights */
                ptrdiff_t nt = 0;
                for (ptrdiff_t t = 0; t < taps; ++t) {
                    if (off[taps + t] != ph) continue;
                    sel[nt] = -off[2 * taps + t]; /* G reads gy_wide at q - shift */
                    wsel[nt] = wk[t];
                    ++nt;
                }
                /* four independent accumulators, as in the forward pass (with two, each
                 * waited on the last tap's multiply-add: a 3x3 stride-1 gradient ran
                 * at half the forward's rate); the last group may run up to 4 vectors
                 * past the span, into the phase planes' slack (ps) */
                for (ptrdiff_t q0 = 0; q0 < span; q0 += 4 * VL) {
                    VEC acc[4];
                    if (j == 0) {
                        acc[0] = acc[1] = acc[2] = acc[3] = (VEC){0};
                    } else {
                        FNN_VLOAD(acc[0], g + q0);
                        FNN_VLOAD(acc[1], g + q0 + VL);
                        FNN_VLOAD(acc[2], g + q0 + 2 * VL);
                        FNN_VLOAD(acc[3], g + q0 + 3 * VL);
                    }
                    /* q - shift stays inside gy_wide's zero margins (see gy_wide) */
                    DFN(fnn_dw_sum4)(base + q0, sel, wsel, nt, acc);
                    FNN_VSTORE(g + q0, acc[0]);
                    FNN_VSTORE(g + q0 + VL, acc[1]);
                    FNN_VSTORE(g + q0 + 2 * VL, acc[2]);
                    FNN_VSTORE(g + q0 + 3 * VL, acc[3]);
                }
            }
        }
        T* gxp = gx + (n * a->C + c) * a->H * a->W;
        for (ptrdiff_t h = 0; h < a->H; ++h) {
            const ptrdiff_t hp = h + a->pt, pa = hp % a->sh, hq = hp / a->sh;
            T* row = gxp + h * a->W;
            if (hq >= l->hq) {
                memset(row, 0, a->W * sizeof(T));
                continue;
            }
            if (a->sw == 1) {
                const T* g = G + pa * l->ps + hq * l->wq + a->pl;
                ptrdiff_t valid = l->wq - a->pl;
                if (valid > a->W) valid = a->W;
                if (valid < 0) valid = 0;
                ptrdiff_t x = 0;
                for (; x < valid; ++x) row[x] = g[x];
                for (; x < a->W; ++x) row[x] = 0;
                continue;
            }
            /* columns x with (x + pl) % sw == pb come from phase pb, at (x + pl) / sw */
            for (ptrdiff_t pb = 0; pb < a->sw; ++pb) {
                ptrdiff_t x = ((pb - a->pl) % a->sw + a->sw) % a->sw;
                ptrdiff_t jq = (x + a->pl) / a->sw;
                const T* g = G + (pa * a->sw + pb) * l->ps + hq * l->wq;
                for (; x < a->W; x += a->sw, ++jq) row[x] = jq < l->wq ? g[jq] : (T)0;
            }
        }
    }
}

/* Output channels of one input channel whose weight gradients run together, and taps
 * per group: a tile of rows x taps sums, each wide vector of the rows' gradients and of
 * the taps' shifted planes loaded once for all its multiply-adds (4 x 5 = 20 sums with
 * AVX-512's 32 registers, 2 x 5 with 16).  A single-input-channel layer (the first of a
 * network on grey images: 32 output channels of one channel) runs as a depthwise one
 * whose channel multiplier is its output channels: tap by tap and row by row it loaded
 * two vectors per multiply-add. */
#define DW_GW_ROWS (VL * (int)sizeof(T) >= 64 ? 4 : 2)
#define DW_GW_TAPS 5

/* acc[j * taps + t] += the sums over `wide` positions of gs[j][i] * ptrs[t][i], for
 * j < kt, t < nt (constants at each call site: the sums stay in registers). */
static TARGET_ATTR inline __attribute__((always_inline)) void DFN(fnn_dw_gw_tile)(
    const T* const* gs, const int kt, const T* const* ptrs, const int nt, ptrdiff_t wide,
    VEC* acc, ptrdiff_t taps) {
    VEC s[4][DW_GW_TAPS];
    for (int j = 0; j < kt; ++j)
        for (int t = 0; t < nt; ++t) s[j][t] = (VEC){0};
    for (ptrdiff_t i0 = 0; i0 < wide; i0 += VL) {
        VEC g[4];
        for (int j = 0; j < kt; ++j) FNN_VLOAD(g[j], gs[j] + i0);
        for (int t = 0; t < nt; ++t) {
            VEC p0;
            FNN_VLOAD(p0, ptrs[t] + i0);
            for (int j = 0; j < kt; ++j) s[j][t] += g[j] * p0;
        }
    }
    for (int j = 0; j < kt; ++j)
        for (int t = 0; t < nt; ++t) acc[j * taps + t] += s[j][t];
}

#define DW_GW_TAP_CASES(KT)                                                                \
    switch (nt) {                                                                         \
    case 1: DFN(fnn_dw_gw_tile)(gs, KT, ptrs, 1, l->wide, acc, taps); break;             \
    case 2: DFN(fnn_dw_gw_tile)(gs, KT, ptrs, 2, l->wide, acc, taps); break;             \
    case 3: DFN(fnn_dw_gw_tile)(gs, KT, ptrs, 3, l->wide, acc, taps); break;             \
    case 4: DFN(fnn_dw_gw_tile)(gs, KT, ptrs, 4, l->wide, acc, taps); break;             \
    default: DFN(fnn_dw_gw_tile)(gs, KT, ptrs, 5, l->wide, acc, taps); break;            \
    }

/* Weight gradient over the planes lo..hi-1 (plane c * N + n: input channel c of image
 * n), added in double to gw (K * R * S, this thread's own): per channel and tap, a
 * vector of partial dot products over the channel's images in the range, summed across
 * lanes once per channel.  Planes rather than channels are the items, so that a layer
 * of fewer channels than threads still splits. */
static TARGET_ATTR void DFN(fnn_dw_grad_weight)(const fnn_dw_args* a, const fnn_dw_layout* l,
                                                ptrdiff_t lo, ptrdiff_t hi, T* P, T* Wb,
                                                ptrdiff_t wstride, ptrdiff_t* off, VEC* vacc,
                                                double* gw, const T* ones,
                                                const fnn_dw_phase* table) {
    const ptrdiff_t K = a->C * a->KM, weights = a->R * a->S;
    /* with the bias: one more tap, of ones (gy_wide is zero outside the outputs) */
    const ptrdiff_t taps = weights + (a->gw_bias ? 1 : 0);
    double* gb = gw + K * weights;
    const T* gy = (const T*)a->gy;
    const int rows = DW_GW_ROWS;
    for (ptrdiff_t item = lo; item < hi;) {
        const ptrdiff_t c = item / a->N;
        const ptrdiff_t end = (c + 1) * a->N < hi ? (c + 1) * a->N : hi;
        for (ptrdiff_t e = 0; e < a->KM * taps; ++e) vacc[e] = (VEC){0};
        for (; item < end; ++item) {
            const ptrdiff_t n = item % a->N;
            DFN(fnn_dw_phases)(a, l, table, (const T*)a->x + n * a->sn + c * a->sc, P);
            for (ptrdiff_t j0 = 0; j0 < a->KM; j0 += rows) {
                const int kt = a->KM - j0 < rows ? (int)(a->KM - j0) : rows;
                const T* gs[4];
                for (int j = 0; j < kt; ++j) {
                    T* gyw = Wb + j * wstride;
                    DFN(fnn_dw_gy_wide)(a, l, gy + (n * K + c * a->KM + j0 + j) * a->Ho * a->Wo,
                                        gyw);
                    gs[j] = gyw + l->margin;
                }
                /* the taps in balanced groups of at most DW_GW_TAPS (9 taps: 4 + 5) */
                const ptrdiff_t groups = (taps + DW_GW_TAPS - 1) / DW_GW_TAPS;
                for (ptrdiff_t q = 0; q < groups; ++q) {
                    const ptrdiff_t t0 = taps * q / groups, nt = taps * (q + 1) / groups - t0;
                    const T* ptrs[DW_GW_TAPS];
                    for (ptrdiff_t t = 0; t < nt; ++t)
                        ptrs[t] = t0 + t < weights ? P + off[t0 + t] : ones;
                    VEC* acc = vacc + j0 * taps + t0;
                    switch (kt) {
                    case 1: DW_GW_TAP_CASES(1) break;
                    case 2: DW_GW_TAP_CASES(2) break;
                    case 3: DW_GW_TAP_CASES(3) break;
                    default: DW_GW_TAP_CASES(4) break;
                    }
                }
            }
        }
        for (ptrdiff_t e = 0; e < a->KM * taps; ++e) {
            double total = 0;
            for (int lane = 0; lane < VL; ++lane) total += (double)vacc[e][lane];
            const ptrdiff_t j = e / taps, t = e % taps;
            if (t < weights)
                gw[(c * a->KM + j) * weights + t] += total;
            else
                gb[c * a->KM + j] += total;
        }
    }
}
#undef DW_GW_TAP_CASES

/* A whole pass over every plane, split between threads. */
static int DFN(fnn_dw_run)(const fnn_dw_args* a, int pass) {
    const fnn_dw_layout l = fnn_dw_layout_of(a, VL);
    const ptrdiff_t phases = a->sh * a->sw, taps = a->R * a->S;
    const ptrdiff_t items = a->N * a->C; /* planes (the weight gradient's channel-major) */
    int threads = a->threads < 1 ? 1 : a->threads;
    if (threads > items) threads = (int)(items > 0 ? items : 1);
    const size_t plane_bytes = (size_t)(phases * l.ps) * sizeof(T);
    /* one wide gradient row per output channel of a weight-gradient tile */
    const ptrdiff_t wstride = (l.margin + l.hq * l.wq + 8 * VL + l.ps + 15) / 16 * 16;
    const ptrdiff_t wrows = pass == 2 ? DW_GW_ROWS : 1;
    const size_t wide_bytes = (size_t)(wrows * wstride) * sizeof(T);
    const size_t tap_bytes = (size_t)(5 * taps) * sizeof(ptrdiff_t) + (size_t)taps * sizeof(T);
    const int with_bias = pass == 2 && a->gw_bias;
    const size_t vacc_bytes = pass == 2 ? (size_t)(a->KM * (taps + 1)) * sizeof(VEC) : 0;
    const size_t ones_bytes = with_bias ? (size_t)(l.wide + VL) * sizeof(T) : 0;
    const ptrdiff_t row = a->C * a->KM * (taps + (with_bias ? 1 : 0)); /* out per thread */
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed) if (threads > 1)
    {
        const ptrdiff_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
        const ptrdiff_t lo = items * tid / nth, hi = items * (tid + 1) / nth;
        T* ones = with_bias ? (T*)fnn_workspace(5, ones_bytes) : NULL;
        T* P = (T*)fnn_workspace(0, plane_bytes);
        T* Wb = (T*)fnn_workspace(1, wide_bytes);
        ptrdiff_t* off = (ptrdiff_t*)fnn_workspace(2, tap_bytes);
        fnn_dw_phase* table = (fnn_dw_phase*)fnn_workspace(4, (size_t)phases * sizeof(fnn_dw_phase));
        VEC* vacc = pass == 2 ? (VEC*)fnn_workspace(3, vacc_bytes) : NULL;
        if (P == NULL || Wb == NULL || off == NULL || table == NULL ||
            (pass == 2 && vacc == NULL) || (with_bias && ones == NULL)) {
            failed = 1;
        } else {
            for (ptrdiff_t i = 0; with_bias && i < l.wide + VL; ++i) ones[i] = (T)1;
            memset(P, 0, plane_bytes); /* padding and slack: zero for the whole call */
            memset(Wb, 0, wide_bytes); /* gy_wide's margins and junk columns likewise */
            DFN(fnn_dw_taps)(a, &l, off);
            DFN(fnn_dw_phase_table)(a, &l, table);
            if (pass == 0)
                DFN(fnn_dw_forward)(a, &l, lo, hi, P, Wb, off, table);
            else if (pass == 1)
                DFN(fnn_dw_grad_input)(a, &l, lo, hi, P, Wb, off);
            else /* each thread's sums into its own row of the (threads, K * taps) out */
                DFN(fnn_dw_grad_weight)(a, &l, lo, hi, P, Wb, wstride, off, vacc,
                                        (double*)a->out + tid * row, ones, table);
        }
    }
    return failed ? -1 : 0;
}

#include "depthwise_lanes_body.h"

#undef DW_GW_ROWS
#undef DW_GW_TAPS

#undef DNOCALLS
#undef DFN
#undef DCAT
#undef DCAT_
