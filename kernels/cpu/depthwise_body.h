/* One (element type, instruction set) instantiation of the depthwise convolution.
 * Included by depthwise.h with T, VEC, VL, SFX and TARGET_ATTR defined; undefines them.
 */

#define DCAT_(a, b) a##_##b
#define DCAT(a, b) DCAT_(a, b)
#define DFN(name) DCAT(name, SFX)

#define DLOAD(dst, src)                                                                    \
    do {                                                                                   \
        VEC dl_;                                                                           \
        __builtin_memcpy(&dl_, (src), sizeof(VEC));                                        \
        (dst) = dl_;                                                                       \
    } while (0)
#define DSTORE(dst, src)                                                                   \
    do {                                                                                   \
        VEC ds_ = (src);                                                                   \
        __builtin_memcpy((dst), &ds_, sizeof(VEC));                                        \
    } while (0)

/* The zero-padded phases of one input plane (see depthwise.h) into P (sh*sw planes of
 * l->ps elements; only the hq*wq data part is written, the slack stays as it was). */
static TARGET_ATTR void DFN(fnn_dw_phases)(const fnn_dw_args* a, const fnn_dw_layout* l,
                                           const T* x, T* restrict P) {
    for (ptrdiff_t pa = 0; pa < a->sh; ++pa) {
        for (ptrdiff_t pb = 0; pb < a->sw; ++pb) {
            T* plane = P + (pa * a->sw + pb) * l->ps;
            /* columns j' whose source column sw*j' + pb - pl is inside [0, W) */
            const ptrdiff_t first = pb - a->pl;
            ptrdiff_t lo = first >= 0 ? 0 : (-first + a->sw - 1) / a->sw;
            ptrdiff_t hi = first >= a->W ? 0 : (a->W - first + a->sw - 1) / a->sw;
            if (hi > l->wq) hi = l->wq;
            if (lo > hi) lo = hi;
            for (ptrdiff_t hp = 0; hp < l->hq; ++hp) {
                T* row = plane + hp * l->wq;
                const ptrdiff_t h = a->sh * hp + pa - a->pt;
                if (h < 0 || h >= a->H) {
                    memset(row, 0, l->wq * sizeof(T));
                    continue;
                }
                const T* src = x + h * a->sh_;
                ptrdiff_t j = 0;
                for (; j < lo; ++j) row[j] = 0;
                if (a->sw == 1 && a->sw_ == 1) {
                    memcpy(row + lo, src + first + lo, (hi - lo) * sizeof(T));
                    j = hi;
                } else {
                    const ptrdiff_t step = a->sw * a->sw_;
                    const T* sp = src + first * a->sw_;
                    for (; j < hi; ++j) row[j] = sp[j * step];
                }
                for (; j < l->wq; ++j) row[j] = 0;
            }
        }
    }
}

/* off[t] = phase plane of tap t times ps, plus its shift; t = r * S + s. */
static void DFN(fnn_dw_taps)(const fnn_dw_args* a, const fnn_dw_layout* l, ptrdiff_t* off) {
    for (ptrdiff_t r = 0; r < a->R; ++r)
        for (ptrdiff_t s = 0; s < a->S; ++s) {
            const ptrdiff_t vr = r * a->dh, vs = s * a->dw;
            const ptrdiff_t phase = (vr % a->sh) * a->sw + vs % a->sw;
            off[r * a->S + s] = phase * l->ps + (vr / a->sh) * l->wq + vs / a->sw;
        }
}

/* grad_output plane of channel k in the wide layout, after `margin` zeros: junk columns
 * and the tail zero, up to a vector past the phase planes' span (the input gradient
 * reads there). */
static TARGET_ATTR void DFN(fnn_dw_gy_wide)(const fnn_dw_args* a, const fnn_dw_layout* l,
                                            const T* gy, T* restrict gw_) {
    memset(gw_, 0, (l->margin + l->hq * l->wq + 2 * VL) * sizeof(T));
    T* base = gw_ + l->margin;
    for (ptrdiff_t oh = 0; oh < a->Ho; ++oh)
        memcpy(base + oh * l->wq, gy + oh * a->Wo, a->Wo * sizeof(T));
}

/* Forward for the planes lo..hi-1 (plane = image n, input channel c). */
static TARGET_ATTR void DFN(fnn_dw_forward)(const fnn_dw_args* a, const fnn_dw_layout* l,
                                            ptrdiff_t lo, ptrdiff_t hi, T* P, T* yw,
                                            ptrdiff_t* off) {
    const ptrdiff_t taps = a->R * a->S, K = a->C * a->KM;
    const T* w = (const T*)a->w;
    const T* bias = (const T*)a->bias;
    T* y = (T*)a->out;
    for (ptrdiff_t item = lo; item < hi; ++item) {
        const ptrdiff_t n = item / a->C, c = item % a->C;
        DFN(fnn_dw_phases)(a, l, (const T*)a->x + n * a->sn + c * a->sc, P);
        for (ptrdiff_t j = 0; j < a->KM; ++j) {
            const ptrdiff_t k = c * a->KM + j;
            const T* wk = w + k * taps;
            const T b = bias != NULL ? bias[k] : (T)0;
            ptrdiff_t i0 = 0;
            for (; i0 + 4 * VL <= l->wide; i0 += 4 * VL) {
                VEC acc0 = (VEC){0} + b, acc1 = acc0, acc2 = acc0, acc3 = acc0;
                for (ptrdiff_t t = 0; t < taps; ++t) {
                    const T* p = P + off[t] + i0;
                    const T wt = wk[t];
                    VEC v0, v1, v2, v3;
                    DLOAD(v0, p);
                    DLOAD(v1, p + VL);
                    DLOAD(v2, p + 2 * VL);
                    DLOAD(v3, p + 3 * VL);
                    acc0 += v0 * wt;
                    acc1 += v1 * wt;
                    acc2 += v2 * wt;
                    acc3 += v3 * wt;
                }
                DSTORE(yw + i0, acc0);
                DSTORE(yw + i0 + VL, acc1);
                DSTORE(yw + i0 + 2 * VL, acc2);
                DSTORE(yw + i0 + 3 * VL, acc3);
            }
            for (; i0 < l->wide; i0 += VL) {
                VEC acc = (VEC){0} + b;
                for (ptrdiff_t t = 0; t < taps; ++t) {
                    VEC v;
                    DLOAD(v, P + off[t] + i0);
                    acc += v * wk[t];
                }
                DSTORE(yw + i0, acc);
            }
            T* yk = y + (n * K + k) * a->Ho * a->Wo;
            for (ptrdiff_t oh = 0; oh < a->Ho; ++oh)
                memcpy(yk + oh * a->Wo, yw + oh * l->wq, a->Wo * sizeof(T));
        }
    }
}

/* Input gradient for the planes lo..hi-1: G (sh*sw phase planes) gathers every output
 * channel of the plane's group, then is scattered back into gx. */
static TARGET_ATTR void DFN(fnn_dw_grad_input)(const fnn_dw_args* a, const fnn_dw_layout* l,
                                               ptrdiff_t lo, ptrdiff_t hi, T* G, T* gyw,
                                               ptrdiff_t* off) {
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
                for (ptrdiff_t q0 = 0; q0 < span; q0 += VL) {
                    VEC acc;
                    if (j == 0) acc = (VEC){0};
                    else DLOAD(acc, g + q0);
                    for (ptrdiff_t t = 0; t < taps; ++t) {
                        if (off[t] / l->ps != ph) continue;
                        /* q - shift stays inside gy_wide's zero margins (see gy_wide) */
                        VEC v;
                        DLOAD(v, base + q0 - (off[t] - ph * l->ps));
                        acc += v * wk[t];
                    }
                    DSTORE(g + q0, acc);
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
                const T* g = G + pa * l->ps + hq * l->wq;
                ptrdiff_t valid = l->wq - a->pl;
                if (valid > a->W) valid = a->W;
                if (valid < 0) valid = 0;
                memcpy(row, g + a->pl, valid * sizeof(T));
                for (ptrdiff_t x = valid; x < a->W; ++x) row[x] = 0;
                continue;
            }
            for (ptrdiff_t x = 0; x < a->W; ++x) {
                const ptrdiff_t wp = x + a->pl, pb = wp % a->sw, jq = wp / a->sw;
                row[x] = jq < l->wq ? G[(pa * a->sw + pb) * l->ps + hq * l->wq + jq] : (T)0;
            }
        }
    }
}

/* Weight gradient of the planes lo..hi-1, added in double into acc (K * R * S). */
static TARGET_ATTR void DFN(fnn_dw_grad_weight)(const fnn_dw_args* a, const fnn_dw_layout* l,
                                                ptrdiff_t lo, ptrdiff_t hi, T* P, T* gyw,
                                                ptrdiff_t* off, double* acc) {
    const ptrdiff_t taps = a->R * a->S, K = a->C * a->KM;
    const T* gy = (const T*)a->gy;
    for (ptrdiff_t item = lo; item < hi; ++item) {
        const ptrdiff_t n = item / a->C, c = item % a->C;
        DFN(fnn_dw_phases)(a, l, (const T*)a->x + n * a->sn + c * a->sc, P);
        for (ptrdiff_t j = 0; j < a->KM; ++j) {
            const ptrdiff_t k = c * a->KM + j;
            DFN(fnn_dw_gy_wide)(a, l, gy + (n * K + k) * a->Ho * a->Wo, gyw);
            const T* g = gyw + l->margin;
            for (ptrdiff_t t = 0; t < taps; ++t) {
                const T* p = P + off[t];
                VEC s0 = (VEC){0}, s1 = s0;
                ptrdiff_t i0 = 0;
                for (; i0 + 2 * VL <= l->wide; i0 += 2 * VL) {
                    VEC g0, g1, p0, p1;
                    DLOAD(g0, g + i0);
                    DLOAD(g1, g + i0 + VL);
                    DLOAD(p0, p + i0);
                    DLOAD(p1, p + i0 + VL);
                    s0 += g0 * p0;
                    s1 += g1 * p1;
                }
                for (; i0 < l->wide; i0 += VL) { /* gy_wide is zero past the plane */
                    VEC g0, p0;
                    DLOAD(g0, g + i0);
                    DLOAD(p0, p + i0);
                    s0 += g0 * p0;
                }
                s0 += s1;
                double total = 0;
                for (int e = 0; e < VL; ++e) total += (double)s0[e];
                acc[k * taps + t] += total;
            }
        }
    }
}

/* A whole pass over every plane, split between threads. */
static int DFN(fnn_dw_run)(const fnn_dw_args* a, int pass) {
    const fnn_dw_layout l = fnn_dw_layout_of(a, VL);
    const ptrdiff_t items = a->N * a->C, phases = a->sh * a->sw, taps = a->R * a->S;
    int threads = a->threads < 1 ? 1 : a->threads;
    if (threads > items) threads = (int)(items > 0 ? items : 1);
    const size_t plane_bytes = (size_t)(phases * l.ps) * sizeof(T);
    const size_t wide_bytes = (size_t)(l.margin + l.hq * l.wq + 8 * VL + l.ps) * sizeof(T);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed) if (threads > 1)
    {
        const ptrdiff_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
        const ptrdiff_t lo = items * tid / nth, hi = items * (tid + 1) / nth;
        T* P = (T*)fnn_workspace(0, plane_bytes);
        T* Wb = (T*)fnn_workspace(1, wide_bytes);
        ptrdiff_t* off = (ptrdiff_t*)fnn_workspace(2, (size_t)taps * sizeof(ptrdiff_t));
        if (P == NULL || Wb == NULL || off == NULL) {
            failed = 1;
        } else {
            memset(P, 0, plane_bytes); /* the slack past each phase plane stays zero */
            DFN(fnn_dw_taps)(a, &l, off);
            if (pass == 0) {
                DFN(fnn_dw_forward)(a, &l, lo, hi, P, Wb, off);
            } else if (pass == 1) {
                DFN(fnn_dw_grad_input)(a, &l, lo, hi, P, Wb, off);
            } else {
                double* acc = (double*)a->out + tid * a->C * a->KM * taps;
                DFN(fnn_dw_grad_weight)(a, &l, lo, hi, P, Wb, off, acc);
            }
        }
    }
    return failed ? -1 : 0;
}

#undef DLOAD
#undef DSTORE
#undef DFN
#undef DCAT
#undef DCAT_
#undef T
#undef VEC
#undef VL
#undef SFX
#undef TARGET_ATTR
