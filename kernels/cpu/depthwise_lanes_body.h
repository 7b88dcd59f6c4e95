/* Depthwise convolution with channels in SIMD lanes, for small planes: one instantiation
 * per (type, instruction set), included by depthwise_body.h with the same macros (T,
 * VEC, VL, SFX, TARGET_ATTR, from isa_instances.h).
 *
 * A 7x7 plane is 49 values: a kernel that vectorises over one plane's positions leaves
 * most of every vector empty or spends its time building padded rows.  Here a block of VL
 * channels of one image is gathered into a padded buffer with the channels innermost,
 * X[(h + pt) * Wp + (w + pl)][lane], so that every output position is a sum of R*S vector
 * products with the taps' per-channel weights, W[t][lane]:
 *
 *   forward      Y[oh][ow] = b + sum_t W[t] * X[oh*sh + r*dh][ow*sw + s*dw]
 *   grad_input   gx[h][w] = sum of W[t] * GY[oh][ow] over the taps whose (oh, ow) hits
 *                (h, w) (a gather, fnn_dwl_grad_input_gather; stride-1 layers run as a
 *                forward pass, see depthwise.h); with a channel multiplier KM > 1,
 *                G[oh*sh + r*dh][ow*sw + s*dw] += W[t] * GY[oh][ow] (a scatter into the
 *                padded buffer, conflict-free: lanes are channels), then the interior of
 *                G is the gradient
 *   grad_weight  gw[t] += sum_{oh, ow} GY[oh][ow] * X[oh*sh + r*dh][ow*sw + s*dw]
 *
 * The border of X (and the padding rows of G) is zeroed once per call and never written;
 * moves between NCHW planes and the lane layout are VL x VL transposes in registers
 * (simd_transpose.h) over whole planes, copied row by row into the padded buffer.
 */

#define LCAT_(a, b) a##_##b
#define LCAT(a, b) LCAT_(a, b)
#define LFN(name) LCAT(name, SFX)

/* Weights of the channel block c0..c0+n-1 (multiplier index j) in lanes: wl[t][lane]. */
static void LFN(fnn_dwl_weights)(const fnn_dw_args* a, const T* w, ptrdiff_t c0, ptrdiff_t n,
                                 ptrdiff_t j, T* restrict wl) {
    const ptrdiff_t taps = a->R * a->S;
    for (ptrdiff_t t = 0; t < taps; ++t)
        for (ptrdiff_t lane = 0; lane < VL; ++lane)
            wl[t * VL + lane] = lane < n ? w[((c0 + lane) * a->KM + j) * taps + t] : (T)0;
}

#define TR_FN LFN(fnn_dwl_transpose)
#define TR_EPI_FN LFN(fnn_dwl_transpose_out)
#include "simd_transpose.h"

/* X's interior from channels c0..c0+n-1 of one image (x: that image's first channel).
 * Contiguous planes are transposed whole into `flat` (positions x lanes) and copied row
 * by row into the padded buffer; others are gathered element by element. */
static TARGET_ATTR void LFN(fnn_dwl_gather)(const fnn_dw_args* a, const T* x, ptrdiff_t c0,
                                            ptrdiff_t n, ptrdiff_t wp, T* restrict flat,
                                            T* restrict X) {
    if (a->sw_ == 1 && a->sh_ == a->W) {
        LFN(fnn_dwl_transpose)(x + c0 * a->sc, a->sc, n, a->H * a->W, flat, VL);
        for (ptrdiff_t h = 0; h < a->H; ++h)
            memcpy(X + ((h + a->pt) * wp + a->pl) * VL, flat + h * a->W * VL,
                   (size_t)(a->W * VL) * sizeof(T));
        return;
    }
    for (ptrdiff_t lane = 0; lane < n; ++lane) {
        const T* plane = x + (c0 + lane) * a->sc;
        for (ptrdiff_t h = 0; h < a->H; ++h) {
            const T* row = plane + h * a->sh_;
            T* dst = X + ((h + a->pt) * wp + a->pl) * VL + lane;
            for (ptrdiff_t w = 0; w < a->W; ++w) dst[w * VL] = row[w * a->sw_];
        }
    }
}

/* Output positions of one tap (r, s) lie at X[(oh*sh + r*dh) * wp + ow*sw + s*dw]: the
 * offset of tap t, in vectors, and the steps of oh and ow. */
static void LFN(fnn_dwl_taps)(const fnn_dw_args* a, ptrdiff_t wp, ptrdiff_t* toff) {
    for (ptrdiff_t r = 0; r < a->R; ++r)
        for (ptrdiff_t s = 0; s < a->S; ++s) toff[r * a->S + s] = r * a->dh * wp + s * a->dw;
}

/* Positions of one output row computed together: independent accumulators, so that the
 * taps of one position do not form a chain of dependent FMAs. */
#define FNN_DWL_GROUP 8

/* g positions (g constant where inlined) of a row: out[u * ostep] = act(init + sum over
 * the nt taps of W[t] * base[offs[t] * VL + u * step]), W[t] at wl + t * VL. */
static TARGET_ATTR inline __attribute__((always_inline)) void LFN(fnn_dwl_group)(
    const T* base, const T* wl, const ptrdiff_t* offs, ptrdiff_t nt, ptrdiff_t step,
    VEC init, int act, T* out, ptrdiff_t ostep, const int g) {
    VEC acc[FNN_DWL_GROUP];
    for (int u = 0; u < g; ++u) acc[u] = init;
    for (ptrdiff_t t = 0; t < nt; ++t) {
        const VEC wt = *(const VEC*)(wl + t * VL);
        const T* src = base + offs[t] * VL;
        for (int u = 0; u < g; ++u) acc[u] += *(const VEC*)(src + u * step) * wt;
    }
    for (int u = 0; u < g; ++u) {
        FNN_CONV_ACT_VEC(acc[u], act);
        *(VEC*)(out + u * ostep) = acc[u];
    }
}

/* `count` positions of a row (see fnn_dwl_group) in groups of 8, then 4, 2, 1: a constant
 * group size keeps the sums in registers (a 7-wide row is 4 + 2 + 1; a loop of run-time
 * length kept them in memory). */
static TARGET_ATTR inline __attribute__((always_inline)) void LFN(fnn_dwl_row_of)(
    ptrdiff_t count, const T* base, const T* wl, const ptrdiff_t* offs, ptrdiff_t nt,
    ptrdiff_t step, VEC init, int act, T* out, ptrdiff_t ostep) {
    ptrdiff_t u = 0;
    for (; u + FNN_DWL_GROUP <= count; u += FNN_DWL_GROUP)
        LFN(fnn_dwl_group)(base + u * step, wl, offs, nt, step, init, act,
                           out + u * ostep, ostep, FNN_DWL_GROUP);
    if (count - u >= 4) {
        LFN(fnn_dwl_group)(base + u * step, wl, offs, nt, step, init, act,
                           out + u * ostep, ostep, 4);
        u += 4;
    }
    if (count - u >= 2) {
        LFN(fnn_dwl_group)(base + u * step, wl, offs, nt, step, init, act,
                           out + u * ostep, ostep, 2);
        u += 2;
    }
    if (count - u >= 1)
        LFN(fnn_dwl_group)(base + u * step, wl, offs, nt, step, init, act,
                           out + u * ostep, ostep, 1);
}

/* fnn_dwl_row_of, with the 9 taps of a 3x3 kernel a constant: each group's tap loop is
 * then straight-line code (the loop's counter, offset load and branch cost more than its
 * one to eight multiply-adds). */
static TARGET_ATTR inline __attribute__((always_inline)) void LFN(fnn_dwl_row)(
    ptrdiff_t count, const T* base, const T* wl, const ptrdiff_t* offs, ptrdiff_t nt,
    ptrdiff_t step, VEC init, int act, T* out, ptrdiff_t ostep) {
    if (nt == 9)
        LFN(fnn_dwl_row_of)(count, base, wl, offs, 9, step, init, act, out, ostep);
    else
        LFN(fnn_dwl_row_of)(count, base, wl, offs, nt, step, init, act, out, ostep);
}

static TARGET_ATTR void LFN(fnn_dwl_forward_block)(const fnn_dw_args* a, const T* X,
                                                   const T* wl, const ptrdiff_t* toff,
                                                   ptrdiff_t wp, const T* bias,
                                                   T* restrict Y) {
    /* (bias by pointer: a vector argument would cross from baseline code into this
     * target-attributed function with two different calling conventions) */
    const ptrdiff_t taps = a->R * a->S, step = a->sw * VL;
    const VEC b = *(const VEC*)bias;
    for (ptrdiff_t oh = 0; oh < a->Ho; ++oh)
        LFN(fnn_dwl_row)(a->Wo, X + (oh * a->sh) * wp * VL, wl, toff, taps, step, b, a->act,
                         Y + oh * a->Wo * VL, VL);
}

/* Y (positions x lanes) out to the planes of channels k = (c0 + lane) * KM + j. */
static TARGET_ATTR void LFN(fnn_dwl_scatter)(const fnn_dw_args* a, const T* Y, ptrdiff_t n0,
                                             ptrdiff_t c0, ptrdiff_t n, ptrdiff_t j,
                                             T* restrict y) {
    const ptrdiff_t plane = a->Ho * a->Wo, K = a->C * a->KM;
    /* the output variant: its stores prefetch their planes ahead (the bias and the
     * activation were applied in the rows) */
    LFN(fnn_dwl_transpose_out)(Y, VL, plane, n, y + (n0 * K + c0 * a->KM + j) * plane,
                               a->KM * plane, NULL, FNN_CONV_ACT_NONE, 0);
}

/* grad_output of channels k = (c0 + lane) * KM + j of image n0 into lanes: GY[p][lane],
 * zero in the lanes past n. */
static TARGET_ATTR void LFN(fnn_dwl_gather_gy)(const fnn_dw_args* a, const T* gy, ptrdiff_t n0,
                                               ptrdiff_t c0, ptrdiff_t n, ptrdiff_t j,
                                               T* restrict GY) {
    const ptrdiff_t plane = a->Ho * a->Wo, K = a->C * a->KM;
    LFN(fnn_dwl_transpose)(gy + (n0 * K + c0 * a->KM + j) * plane, a->KM * plane, n, plane,
                           GY, VL);
    for (ptrdiff_t lane = n; lane < VL; ++lane)
        for (ptrdiff_t p = 0; p < plane; ++p) GY[p * VL + lane] = 0;
}

/* The input gradient of one block of channels (one output channel each: KM = 1) as a
 * gather: gx[h][w] = sum of W[t] * GY[oh][ow] over the taps (r, s) whose output position
 * (oh, ow) = ((h + pt - r*dh) / sh, (w + pl - s*dw) / sw) divides evenly.  Positions fall
 * in sh x sw classes by (h + pt) % sh and (w + pl) % sw; within a class the taps are
 * fixed and consecutive positions w (sw apart) read consecutive GY vectors, so up to 8
 * positions sum in registers and are stored once (the scatter form loaded and stored
 * the padded gradient for every tap of every GY position).  GYP: GY with zero borders
 * of mt rows above and ml columns left (row stride wp, zeroed once per call: only the
 * interior is written); tapw (2 * taps + sh * sw + 1 entries): the taps' offsets and
 * indices grouped by class, and where each class starts; wl: the taps' weights, with room
 * for a copy in class order after them; the result goes to `flat` (positions x lanes). */
static TARGET_ATTR void LFN(fnn_dwl_grad_input_gather)(const fnn_dw_args* a, const T* Y,
                                                      T* wl, ptrdiff_t wp, T* GYP,
                                                      ptrdiff_t* tapw, T* restrict flat) {
    const ptrdiff_t mt = ((a->R - 1) * a->dh) / a->sh + 1;
    const ptrdiff_t ml = ((a->S - 1) * a->dw) / a->sw + 1;
    for (ptrdiff_t oh = 0; oh < a->Ho; ++oh)
        memcpy(GYP + ((oh + mt) * wp + ml) * VL, Y + oh * a->Wo * VL,
               (size_t)(a->Wo * VL) * sizeof(T));
    const ptrdiff_t taps = a->R * a->S;
    /* each tap belongs to one class: rel (its offset from the class's position, -dr
     * rows and -ds columns of GYP) and tidx (its index), grouped by class, the classes'
     * starts in first[] */
    ptrdiff_t* rel = tapw;
    ptrdiff_t* tidx = tapw + taps;
    ptrdiff_t* first = tapw + 2 * taps;
    T* wsort = wl + taps * VL;
    ptrdiff_t nt = 0;
    for (ptrdiff_t ha = 0; ha < a->sh; ++ha)
        for (ptrdiff_t wa = 0; wa < a->sw; ++wa) {
            first[ha * a->sw + wa] = nt;
            for (ptrdiff_t r = 0; r < a->R; ++r) {
                if ((r * a->dh) % a->sh != ha) continue;
                for (ptrdiff_t s = 0; s < a->S; ++s) {
                    if ((s * a->dw) % a->sw != wa) continue;
                    rel[nt] = -((r * a->dh - ha) / a->sh) * wp - (s * a->dw - wa) / a->sw;
                    tidx[nt] = r * a->S + s;
                    ++nt;
                }
            }
        }
    first[a->sh * a->sw] = nt;
    for (ptrdiff_t t = 0; t < taps; ++t) /* the weights in the same order */
        memcpy(wsort + t * VL, wl + tidx[t] * VL, sizeof(VEC));
    for (ptrdiff_t h = 0; h < a->H; ++h) {
        const ptrdiff_t ha = (h + a->pt) % a->sh, hq = (h + a->pt) / a->sh;
        for (ptrdiff_t wa = 0; wa < a->sw; ++wa) {
            const ptrdiff_t w0 = ((wa - a->pl) % a->sw + a->sw) % a->sw;
            if (w0 >= a->W) continue;
            const ptrdiff_t wq0 = (w0 + a->pl) / a->sw;
            const ptrdiff_t count = (a->W - w0 + a->sw - 1) / a->sw;
            const ptrdiff_t t_lo = first[ha * a->sw + wa], t_hi = first[ha * a->sw + wa + 1];
            const ptrdiff_t at = (hq + mt) * wp + wq0 + ml; /* GYP position of u = 0 */
            T* out = flat + (h * a->W + w0) * VL;
            LFN(fnn_dwl_row)(count, GYP + at * VL, wsort + t_lo * VL, rel + t_lo, t_hi - t_lo,
                             VL, (VEC){0}, 0, out, a->sw * VL);
        }
    }
}

/* acc[t] += sum over output positions of GY[p] * X[position of tap t] for the nt taps
 * (constant where inlined) of a group: the sums stay in registers over the whole plane
 * and each vector of GY is loaded once per group (summing into acc in memory loaded and
 * stored a sum for every multiply-add). */
static TARGET_ATTR inline __attribute__((always_inline)) void LFN(fnn_dwl_gw_taps)(
    const fnn_dw_args* a, const T* X, const T* Y, const ptrdiff_t* toff, ptrdiff_t wp,
    VEC* acc, const int nt) {
    VEC s[8];
    for (int t = 0; t < nt; ++t) s[t] = (VEC){0};
    for (ptrdiff_t oh = 0; oh < a->Ho; ++oh)
        for (ptrdiff_t ow = 0; ow < a->Wo; ++ow) {
            const VEC g = *(const VEC*)(Y + (oh * a->Wo + ow) * VL);
            const T* base = X + ((oh * a->sh) * wp + ow * a->sw) * VL;
            for (int t = 0; t < nt; ++t) s[t] += g * *(const VEC*)(base + toff[t] * VL);
        }
    for (int t = 0; t < nt; ++t) acc[t] += s[t];
}

/* Rows (or columns) of the padded buffer along one axis of n input positions, padding
 * `before`, no outputs, stride st, k taps dilated by d: the most any pass touches.  The
 * forward and weight-gradient passes read rows up to (no - 1) * st + (k - 1) * d and
 * write the data at before..before + n - 1 (the scatter of the input gradient, KM > 1,
 * the same); the gather of the input gradient writes grad_output at rows m..m + no - 1
 * (m = (k - 1) * d / st + 1) and reads up to (n - 1 + before) / st + m.  Only these
 * rows and columns (the bound before, H + pt + sh * Ho + R * dh, about doubled the
 * buffer; side by side on the AMD EPYC the tight one ran strided layers 3-7% faster,
 * the others within noise), and the zeroing per call covers no more. */
static inline ptrdiff_t LFN(fnn_dwl_extent)(ptrdiff_t n, ptrdiff_t before, ptrdiff_t no,
                                            ptrdiff_t st, ptrdiff_t k, ptrdiff_t d) {
    const ptrdiff_t m = ((k - 1) * d) / st + 1;
    ptrdiff_t e = before + n;
    if ((no - 1) * st + (k - 1) * d + 1 > e) e = (no - 1) * st + (k - 1) * d + 1;
    if ((n - 1 + before) / st + m + 1 > e) e = (n - 1 + before) / st + m + 1;
    if (no + m > e) e = no + m;
    return e;
}

/* A whole pass with channels in lanes; items are (image, block of VL channels).  Vector
 * code runs here too, hence the target attribute (the dispatcher calls the level the CPU
 * supports). */
static TARGET_ATTR int LFN(fnn_dwl_run)(const fnn_dw_args* a, int pass) {
    const ptrdiff_t hp = LFN(fnn_dwl_extent)(a->H, a->pt, a->Ho, a->sh, a->R, a->dh);
    const ptrdiff_t wp = LFN(fnn_dwl_extent)(a->W, a->pl, a->Wo, a->sw, a->S, a->dw);
    const ptrdiff_t taps = a->R * a->S, plane = a->Ho * a->Wo;
    const ptrdiff_t blocks = (a->C + VL - 1) / VL;
    const ptrdiff_t items = pass == 2 ? blocks : a->N * blocks;
    const size_t x_bytes = (size_t)(hp * wp * VL) * sizeof(T);
    const size_t y_bytes = (size_t)(plane * VL) * sizeof(T);
    const size_t w_bytes = (size_t)(2 * taps * VL) * sizeof(T); /* 2: the gather's copy */
    int threads = a->threads < 1 ? 1 : a->threads;
    if (threads > items) threads = (int)(items > 0 ? items : 1);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed) if (threads > 1)
    {
        const ptrdiff_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
        T* X = (T*)fnn_workspace(0, x_bytes);
        T* Y = (T*)fnn_workspace(1, y_bytes);
        T* wl = (T*)fnn_workspace(3, w_bytes);
        ptrdiff_t* toff = (ptrdiff_t*)fnn_workspace(
            2, (size_t)(2 * taps + a->sh * a->sw + 1) * sizeof(ptrdiff_t));
        T* flat = (T*)fnn_workspace(4, (size_t)(a->H * a->W * VL) * sizeof(T));
        if (X == NULL || Y == NULL || wl == NULL || toff == NULL || flat == NULL) {
            failed = 1;
        } else {
            memset(X, 0, x_bytes); /* the padding border stays zero for the whole call */
            LFN(fnn_dwl_taps)(a, wp, toff);
            const T* w = (const T*)a->w;
            for (ptrdiff_t item = items * tid / nth; item < items * (tid + 1) / nth; ++item) {
                const ptrdiff_t blk = pass == 2 ? item : item % blocks;
                const ptrdiff_t c0 = blk * VL, n = a->C - c0 < VL ? a->C - c0 : VL;
                if (pass == 0) {
                    const ptrdiff_t n0 = item / blocks;
                    const T* bias = (const T*)a->bias;
                    LFN(fnn_dwl_gather)(a, (const T*)a->x + n0 * a->sn, c0, n, wp, flat, X);
                    for (ptrdiff_t j = 0; j < a->KM; ++j) {
                        T bl[VL] __attribute__((aligned(64)));
                        for (ptrdiff_t lane = 0; lane < VL; ++lane)
                            bl[lane] = bias != NULL && lane < n ? bias[(c0 + lane) * a->KM + j]
                                                                : (T)0;
                        LFN(fnn_dwl_weights)(a, w, c0, n, j, wl);
                        LFN(fnn_dwl_forward_block)(a, X, wl, toff, wp, bl, Y);
                        LFN(fnn_dwl_scatter)(a, Y, n0, c0, n, j, (T*)a->out);
                    }
                } else if (pass == 1 && a->KM == 1) {
                    const ptrdiff_t n0 = item / blocks;
                    LFN(fnn_dwl_weights)(a, w, c0, n, 0, wl);
                    LFN(fnn_dwl_gather_gy)(a, (const T*)a->gy, n0, c0, n, 0, Y);
                    LFN(fnn_dwl_grad_input_gather)(a, Y, wl, wp, X, toff, flat);
                    T* gx = (T*)a->out + n0 * a->C * a->H * a->W;
                    LFN(fnn_dwl_transpose)(flat, VL, a->H * a->W, n, gx + c0 * a->H * a->W,
                                           a->H * a->W);
                } else if (pass == 1) {
                    /* G (the padded gradient) accumulates every multiplier's scatter */
                    const ptrdiff_t n0 = item / blocks;
                    const T* gy = (const T*)a->gy;
                    memset(X, 0, x_bytes);
                    for (ptrdiff_t j = 0; j < a->KM; ++j) {
                        LFN(fnn_dwl_weights)(a, w, c0, n, j, wl);
                        LFN(fnn_dwl_gather_gy)(a, gy, n0, c0, n, j, Y);
                        for (ptrdiff_t oh = 0; oh < a->Ho; ++oh)
                            for (ptrdiff_t ow = 0; ow < a->Wo; ++ow) {
                                const VEC g = *(const VEC*)(Y + (oh * a->Wo + ow) * VL);
                                T* base = X + ((oh * a->sh) * wp + ow * a->sw) * VL;
                                for (ptrdiff_t t = 0; t < taps; ++t) {
                                    VEC* dst = (VEC*)(base + toff[t] * VL);
                                    *dst += g * *(const VEC*)(wl + t * VL);
                                }
                            }
                    }
                    /* the interior of G, row by row into `flat`, out to the planes */
                    T* gx = (T*)a->out + n0 * a->C * a->H * a->W;
                    for (ptrdiff_t h = 0; h < a->H; ++h)
                        memcpy(flat + h * a->W * VL, X + ((h + a->pt) * wp + a->pl) * VL,
                               (size_t)(a->W * VL) * sizeof(T));
                    LFN(fnn_dwl_transpose)(flat, VL, a->H * a->W, n, gx + c0 * a->H * a->W,
                                           a->H * a->W);
                } else {
                    /* one channel block, every image: per tap a vector of lane sums */
                    double* gw = (double*)a->out;
                    for (ptrdiff_t j = 0; j < a->KM; ++j) {
                        VEC acc[64];
                        VEC* accp = taps <= 64 ? acc : (VEC*)wl; /* wl is free here */
                        for (ptrdiff_t t = 0; t < taps; ++t) accp[t] = (VEC){0};
                        for (ptrdiff_t n0 = 0; n0 < a->N; ++n0) {
                            LFN(fnn_dwl_gather)(a, (const T*)a->x + n0 * a->sn, c0, n, wp, flat, X);
                            LFN(fnn_dwl_gather_gy)(a, (const T*)a->gy, n0, c0, n, j, Y);
                            /* the taps in balanced groups of at most 8 (9: 4 + 5) */
                            const ptrdiff_t groups = (taps + 7) / 8;
                            for (ptrdiff_t q = 0; q < groups; ++q) {
                                const ptrdiff_t t0 = taps * q / groups;
                                const ptrdiff_t nt = taps * (q + 1) / groups - t0;
                                switch (nt) {
                                case 1: LFN(fnn_dwl_gw_taps)(a, X, Y, toff + t0, wp, accp + t0, 1); break;
                                case 2: LFN(fnn_dwl_gw_taps)(a, X, Y, toff + t0, wp, accp + t0, 2); break;
                                case 3: LFN(fnn_dwl_gw_taps)(a, X, Y, toff + t0, wp, accp + t0, 3); break;
                                case 4: LFN(fnn_dwl_gw_taps)(a, X, Y, toff + t0, wp, accp + t0, 4); break;
                                case 5: LFN(fnn_dwl_gw_taps)(a, X, Y, toff + t0, wp, accp + t0, 5); break;
                                case 6: LFN(fnn_dwl_gw_taps)(a, X, Y, toff + t0, wp, accp + t0, 6); break;
                                case 7: LFN(fnn_dwl_gw_taps)(a, X, Y, toff + t0, wp, accp + t0, 7); break;
                                default: LFN(fnn_dwl_gw_taps)(a, X, Y, toff + t0, wp, accp + t0, 8); break;
                                }
                            }
                        }
                        for (ptrdiff_t t = 0; t < taps; ++t) {
                            T v[VL] __attribute__((aligned(64)));
                            *(VEC*)v = accp[t];
                            for (ptrdiff_t lane = 0; lane < n; ++lane)
                                gw[((c0 + lane) * a->KM + j) * taps + t] = (double)v[lane];
                        }
                    }
                }
            }
        }
    }
    return failed ? -1 : 0;
}

#undef FNN_DWL_GROUP
#undef LFN
#undef LCAT
#undef LCAT_
