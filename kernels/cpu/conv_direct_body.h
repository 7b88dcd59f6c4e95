/*
 * Register-blocked micro-kernels of the direct convolution: a template.
 *
 * conv_direct.h includes this file once per (element type, instruction set), through
 * isa_instances.h (or for plain scalar code without GCC's vector extension), with these
 * macros defined:
 *   T            the element type (float or double)
 *   VEC          a vector of VL elements of T (GCC vector extension), or T when VL == 1
 *   IVEC         an integer vector of the same size and lane count (for lane masks)
 *   VL           lanes per vector
 *   FN(name)     the instantiation's name for `name` (adds a type/ISA suffix)
 *   TARGET_ATTR  __attribute__((target(...))) for the instruction set, or empty
 *
 * The input is "packed": one image's channels, zero-padded, with every padded row split
 * into `stride_w` phases (packed[c][row][phase][j] = x_pad[c][row][j * stride_w + phase]),
 * so that the input an output column ow reads at kernel tap (r, s) is always the
 * contiguous run packed[c][oh * stride_h + r * dil_h][phase(s)][ow + off(s)].  A column
 * of the im2col matrix is therefore a fixed offset `qoff[q]` from a row base, for
 * q = (c, r, s) flattened; the kernels below are small GEMMs over q that never build the
 * column matrix.
 *
 * Lanes past the end of a row are computed but never stored and never summed, so values
 * read there (the next row, or the buffer's slack) cannot leak into a result.
 */

#define FWD_KB FASTNN_FWD_KB
#define FWD_NV 2 /* vectors of output columns per forward block */
#define GW_KB FASTNN_GW_KB
#define GW_QB FASTNN_GW_QB
#define GX_QB FASTNN_GX_QB
#define GX_NV 2 /* vectors of output columns per input-gradient block */

#include "vec_io.h" /* FNN_VLOAD, FNN_VSTORE */

/*
 * d[0, n) = s[0, n) for n < VL, in fixed-size pieces.  An element loop here is turned
 * into a call of libc's memcpy by the compiler, which cost more than the FMAs: a 28-wide
 * output row (28 = 16 + 12 at AVX-512) made memmove 31-40% of a 1 -> 32 channel 3x3
 * forward on 28x28 maps (perf, Intel(R) Xeon(R) Processor @ 2.80GHz, one thread).
 */
static inline __attribute__((always_inline)) void FN(copy_short)(T *restrict d,
                                                                const T *restrict s,
                                                                ptrdiff_t n)
{
    if (VL > 8 && (n & 8)) {
        __builtin_memcpy(d, s, 8 * sizeof(T));
        d += 8;
        s += 8;
    }
    if (VL > 4 && (n & 4)) {
        __builtin_memcpy(d, s, 4 * sizeof(T));
        d += 4;
        s += 4;
    }
    if (VL > 2 && (n & 2)) {
        __builtin_memcpy(d, s, 2 * sizeof(T));
        d += 2;
        s += 2;
    }
    if (n & 1)
        *d = *s;
}

/*
 * Forward: y[k][w] = act(bias[k] + sum_q wpk[q * KB + k] * xrow[qoff[q] + w])
 * for k < KB (KB <= FWD_KB) and w < nw; y rows are ykstride apart.  The activation
 * (conv_epilogue.h: none, relu, relu6) runs on the accumulators, before the store.
 */
static inline __attribute__((always_inline)) void FN(fwd_body)(
    const int KB, const T *restrict xrow, const ptrdiff_t *restrict qoff, ptrdiff_t Q,
    const T *restrict wpk, const T *restrict bias, T *restrict y, ptrdiff_t ykstride,
    ptrdiff_t nw, int act)
{
    const ptrdiff_t BW = FWD_NV * VL;
    for (ptrdiff_t wb = 0; wb < nw; wb += BW) {
        /* a last partial block of a row at least BW wide ends at nw instead, overlapping
         * the one before: those columns are computed twice, the same way, and every
         * store is a whole vector */
        const ptrdiff_t w0 = wb + BW <= nw || nw < BW ? wb : nw - BW;
        VEC acc[FWD_KB][FWD_NV];
        UNROLL
        for (int k = 0; k < KB; k++) {
            VEC b = {0};
            b += bias ? bias[k] : (T)0;
            UNROLL
            for (int v = 0; v < FWD_NV; v++)
                acc[k][v] = b;
        }
        const T *xb = xrow + w0;
        for (ptrdiff_t q = 0; q < Q; q++) {
            const T *xp = xb + qoff[q];
            VEC xv[FWD_NV];
            UNROLL
            for (int v = 0; v < FWD_NV; v++)
                FNN_VLOAD(xv[v], xp + v * VL);
            const T *wq = wpk + q * KB;
            UNROLL
            for (int k = 0; k < KB; k++) {
                T wk = wq[k];
                UNROLL
                for (int v = 0; v < FWD_NV; v++)
                    acc[k][v] += xv[v] * wk;
            }
        }
        if (act != FNN_CONV_ACT_NONE) {
            UNROLL
            for (int k = 0; k < KB; k++)
                UNROLL
                for (int v = 0; v < FWD_NV; v++)
                    FASTNN_ACT_ACC(acc[k][v], act);
        }
        ptrdiff_t rem = nw - w0;
        if (rem >= BW) {
            UNROLL
            for (int k = 0; k < KB; k++)
                UNROLL
                for (int v = 0; v < FWD_NV; v++)
                    FNN_VSTORE(y + k * ykstride + w0 + v * VL, acc[k][v]);
        } else { /* a row narrower than BW: whole vectors, then element by element (a
                  * libc memcpy of a few bytes per channel cost more than the FMAs) */
            UNROLL
            for (int k = 0; k < KB; k++) {
                T tmp[FWD_NV * VL];
                UNROLL
                for (int v = 0; v < FWD_NV; v++)
                    FNN_VSTORE(tmp + v * VL, acc[k][v]);
                T *yk = y + k * ykstride + w0;
                ptrdiff_t j = 0;
                for (; j + VL <= rem; j += VL)
                    __builtin_memcpy(yk + j, tmp + j, sizeof(VEC));
                if (j < rem) {
                    if (rem >= VL) /* a last vector ending at rem, over the one before */
                        __builtin_memcpy(yk + rem - VL, tmp + rem - VL, sizeof(VEC));
                    else
                        FN(copy_short)(yk, tmp, rem);
                }
            }
        }
    }
}

/*
 * Weight gradient: gw[k * gwk + q] += sum_{i < nimg, row < nrows, w < nw}
 *     gy[i * gyi + k * gyk + row * gyr + w] * x[i * xi + row * xr + qoff[q] + w]
 * for k < KB, q < QB.  Partial sums stay in vector lanes over the whole call and are
 * reduced into the double accumulator gw at the end.  The last partial vector of a row is
 * loaded whole (gy and x need a vector of readable slack after each row's end) and its
 * lanes past nw are cleared bitwise, so they add exactly 0 whatever they held.
 */
static inline __attribute__((always_inline)) void FN(gw_body)(
    const int KB, const int QB, const T *restrict gy, ptrdiff_t gyk, ptrdiff_t gyr,
    const T *restrict x, ptrdiff_t xr, const ptrdiff_t *restrict qoff, ptrdiff_t nrows,
    ptrdiff_t nw, ptrdiff_t nimg, ptrdiff_t gyi, ptrdiff_t xi, double *restrict gw,
    ptrdiff_t gwk)
{
    const VEC zero = {0};
    VEC acc[GW_KB][GW_QB];
    UNROLL
    for (int k = 0; k < KB; k++)
        UNROLL
        for (int q = 0; q < QB; q++)
            acc[k][q] = zero;
    const ptrdiff_t nfull = nw - nw % VL;
#if VL > 1
    const ptrdiff_t rem = nw - nfull;
    IVEC tail_mask;
    UNROLL
    for (int i = 0; i < VL; i++)
        tail_mask[i] = i < rem ? -1 : 0;
#endif
    for (ptrdiff_t rowi = 0; rowi < nimg * nrows; rowi++) {
        const ptrdiff_t img = rowi / nrows, row = rowi - img * nrows;
        const T *g = gy + img * gyi + row * gyr;
        const T *xb = x + img * xi + row * xr;
        for (ptrdiff_t w = 0; w < nfull; w += VL) {
            VEC gv[GW_KB];
            UNROLL
            for (int k = 0; k < KB; k++)
                FNN_VLOAD(gv[k], g + k * gyk + w);
            UNROLL
            for (int q = 0; q < QB; q++) {
                VEC xv;
                FNN_VLOAD(xv, xb + qoff[q] + w);
                UNROLL
                for (int k = 0; k < KB; k++)
                    acc[k][q] += gv[k] * xv;
            }
        }
#if VL > 1
        if (rem) { /* full loads (the caller provides slack), lanes >= rem cleared to 0 */
            VEC gv[GW_KB];
            UNROLL
            for (int k = 0; k < KB; k++) {
                VEC t;
                FNN_VLOAD(t, g + k * gyk + nfull);
                gv[k] = (VEC)((IVEC)t & tail_mask);
            }
            UNROLL
            for (int q = 0; q < QB; q++) {
                VEC t;
                FNN_VLOAD(t, xb + qoff[q] + nfull);
                VEC xv = (VEC)((IVEC)t & tail_mask);
                UNROLL
                for (int k = 0; k < KB; k++)
                    acc[k][q] += gv[k] * xv;
            }
        }
#endif
    }
    UNROLL
    for (int k = 0; k < KB; k++)
        UNROLL
        for (int q = 0; q < QB; q++) {
            T lanes[VL];
            FNN_VSTORE(lanes, acc[k][q]);
            double s = 0.0;
            UNROLL
            for (int i = 0; i < VL; i++)
                s += (double)lanes[i];
            gw[k * gwk + q] += s;
        }
}

/*
 * Input gradient (transposed convolution, scatter form):
 *     gx[qoff[q] + w] += sum_{k < K} wt[k * ldw + q] * gy[k * gyk + w]
 * for q < QB and w < nw.  gy is read up to a block past nw (the caller provides slack);
 * only lanes w < nw are added to gx.
 */
static inline __attribute__((always_inline)) void FN(gx_body)(
    const int QB, const T *restrict gy, ptrdiff_t gyk, ptrdiff_t K, const T *restrict wt,
    ptrdiff_t ldw, T *restrict gx, const ptrdiff_t *restrict qoff, ptrdiff_t nw)
{
    const ptrdiff_t BW = GX_NV * VL;
    for (ptrdiff_t w0 = 0; w0 < nw; w0 += BW) {
        const VEC zero = {0};
        VEC acc[GX_QB][GX_NV];
        UNROLL
        for (int q = 0; q < QB; q++)
            UNROLL
            for (int v = 0; v < GX_NV; v++)
                acc[q][v] = zero;
        for (ptrdiff_t k = 0; k < K; k++) {
            const T *g = gy + k * gyk + w0;
            VEC gv[GX_NV];
            UNROLL
            for (int v = 0; v < GX_NV; v++)
                FNN_VLOAD(gv[v], g + v * VL);
            const T *wk = wt + k * ldw;
            UNROLL
            for (int q = 0; q < QB; q++) {
                T wq = wk[q];
                UNROLL
                for (int v = 0; v < GX_NV; v++)
                    acc[q][v] += gv[v] * wq;
            }
        }
        ptrdiff_t rem = nw - w0;
        if (rem >= BW) {
            UNROLL
            for (int q = 0; q < QB; q++) {
                T *dst = gx + qoff[q] + w0;
                UNROLL
                for (int v = 0; v < GX_NV; v++) {
                    VEC old;
                    FNN_VLOAD(old, dst + v * VL);
                    old += acc[q][v];
                    FNN_VSTORE(dst + v * VL, old);
                }
            }
        } else {
            UNROLL
            for (int q = 0; q < QB; q++) {
                T tmp[GX_NV * VL];
                UNROLL
                for (int v = 0; v < GX_NV; v++)
                    FNN_VSTORE(tmp + v * VL, acc[q][v]);
                T *dst = gx + qoff[q] + w0;
                for (ptrdiff_t i = 0; i < rem; i++)
                    dst[i] += tmp[i];
            }
        }
    }
}

/* Entry points of this instantiation: a switch picks the body compiled for the block. */

static TARGET_ATTR void FN(fwd)(int kb, const T *xrow, const ptrdiff_t *qoff, ptrdiff_t Q,
                                const T *wpk, const T *bias, T *y, ptrdiff_t ykstride,
                                ptrdiff_t nw, int act)
{
    switch (kb) {
    case 1: FN(fwd_body)(1, xrow, qoff, Q, wpk, bias, y, ykstride, nw, act); break;
    case 2: FN(fwd_body)(2, xrow, qoff, Q, wpk, bias, y, ykstride, nw, act); break;
    case 3: FN(fwd_body)(3, xrow, qoff, Q, wpk, bias, y, ykstride, nw, act); break;
    case 4: FN(fwd_body)(4, xrow, qoff, Q, wpk, bias, y, ykstride, nw, act); break;
    case 5: FN(fwd_body)(5, xrow, qoff, Q, wpk, bias, y, ykstride, nw, act); break;
    default: FN(fwd_body)(FWD_KB, xrow, qoff, Q, wpk, bias, y, ykstride, nw, act); break;
    }
}

static TARGET_ATTR void FN(gw)(int kb, int qb, const T *gy, ptrdiff_t gyk, ptrdiff_t gyr,
                               const T *x, ptrdiff_t xr, const ptrdiff_t *qoff,
                               ptrdiff_t nrows, ptrdiff_t nw, ptrdiff_t nimg, ptrdiff_t gyi,
                               ptrdiff_t xi, double *gw, ptrdiff_t gwk)
{
#define FASTNN_GW_CASE(KB_, QB_)                                                         \
    FN(gw_body)(KB_, QB_, gy, gyk, gyr, x, xr, qoff, nrows, nw, nimg, gyi, xi, gw, gwk)
    if (qb == 1) {
        switch (kb) {
        case 1: FASTNN_GW_CASE(1, 1); break;
        case 2: FASTNN_GW_CASE(2, 1); break;
        case 3: FASTNN_GW_CASE(3, 1); break;
        default: FASTNN_GW_CASE(GW_KB, 1); break;
        }
    } else {
        switch (kb) {
        case 1: FASTNN_GW_CASE(1, GW_QB); break;
        case 2: FASTNN_GW_CASE(2, GW_QB); break;
        case 3: FASTNN_GW_CASE(3, GW_QB); break;
        default: FASTNN_GW_CASE(GW_KB, GW_QB); break;
        }
    }
#undef FASTNN_GW_CASE
}

static TARGET_ATTR void FN(gx)(int qb, const T *gy, ptrdiff_t gyk, ptrdiff_t K, const T *wt,
                               ptrdiff_t ldw, T *gx, const ptrdiff_t *qoff, ptrdiff_t nw)
{
    switch (qb) {
    case 1: FN(gx_body)(1, gy, gyk, K, wt, ldw, gx, qoff, nw); break;
    case 2: FN(gx_body)(2, gy, gyk, K, wt, ldw, gx, qoff, nw); break;
    case 3: FN(gx_body)(3, gy, gyk, K, wt, ldw, gx, qoff, nw); break;
    case 4: FN(gx_body)(4, gy, gyk, K, wt, ldw, gx, qoff, nw); break;
    case 5: FN(gx_body)(5, gy, gyk, K, wt, ldw, gx, qoff, nw); break;
    default: FN(gx_body)(GX_QB, gy, gyk, K, wt, ldw, gx, qoff, nw); break;
    }
}

#undef FWD_KB
#undef FWD_NV
#undef GW_KB
#undef GW_QB
#undef GX_QB
#undef GX_NV
