/* Batch normalisation kernels for C-contiguous (N, C, P) arrays (P = product of the
 * trailing dims), float and double:
 *
 *   fnn_bn_stats_*     per-channel mean and biased variance (double accumulators)
 *   fnn_bn_elemt_*     y = act((x - mean) * invstd * w + b), one pass
 *   fnn_bn_grad_sums_* per-channel sum g' and sum g' (x - mean), g' = g masked by the
 *                      activation's gradient (through the forward output y)
 *   fnn_bn_grad_input_* gx = g' k1 + (x - mean) k2 + k3 per channel, one pass
 *   fnn_bn_backward_*  both, with the coefficients in between (the backward op)
 *
 * Work is split over threads by position in the flat array (by rows when P == 1), so
 * it scales whatever C is: each thread walks its range plane segment by plane segment.
 * Reductions go into per-(thread, channel) partial sums added in thread order, so results
 * depend only on the shape and the thread count.  The statistics are shifted sums,
 * sum (x - K) and sum (x - K)^2 with K = x[0, c, 0], in double: no cancellation for data
 * far from zero.  Inner loops over contiguous memory are compiled for the baseline,
 * AVX2 and AVX-512 (FNN_MULTIVERSION); reductions keep 8 independent lanes so that they vectorise
 * without reassociation.
 *
 * Activation codes: FNN_BN_NONE, FNN_BN_RELU, FNN_BN_RELU6.  Forward keeps NaN; backward
 * masks as PyTorch: relu 0 where y <= 0, relu6 0 where y <= 0 or y >= 6 (NaN passes g).
 */
#ifndef FNN_BATCH_NORM_H
#define FNN_BATCH_NORM_H

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "activation_loops.h"
#include "parallel_scale.h"

enum { FNN_BN_NONE = 0, FNN_BN_RELU = 1, FNN_BN_RELU6 = 2 };

/* Below this many elements the kernels run on one thread (an OpenMP region costs
 * microseconds). */
#define FNN_BN_PARALLEL_MIN fnn_scaled_min((ptrdiff_t)1 << 15)

/* Elements of the on-stack buffer of the masked gradient. */
#define FNN_BN_CHUNK 256

#define FNN_BN_ACT(T, act, v)                                                            \
    ((act) == FNN_BN_RELU ? ((v) < (T)0 ? (T)0 : (v))                                    \
     : (act) == FNN_BN_RELU6 ? ((v) < (T)0 ? (T)0 : ((v) > (T)6 ? (T)6 : (v))) : (v))

#define FNN_BN_MASK(T, act, g, y)                                                        \
    ((act) == FNN_BN_RELU ? ((y) <= (T)0 ? (T)0 : (g))                                   \
     : (act) == FNN_BN_RELU6 ? ((((y) <= (T)0) | ((y) >= (T)6)) ? (T)0 : (g)) : (g))

/* Run LOOP(T, A) with the activation code A a compile-time constant, so that every inner
 * loop is specialised (and vectorised) for its activation. */
#define FNN_BN_SWITCH(T, act, LOOP)                                                      \
    switch (act) {                                                                       \
    case FNN_BN_RELU: LOOP(T, FNN_BN_RELU); break;                                       \
    case FNN_BN_RELU6: LOOP(T, FNN_BN_RELU6); break;                                     \
    default: LOOP(T, FNN_BN_NONE);                                                       \
    }

/* Planes shorter than this are walked a channel at a time (every image's plane of one
 * channel in one call, threads splitting the channels) in the backward passes: one call
 * per 49-value plane (7x7 maps) cost more than its arithmetic, and the batch-norm
 * backward of 8 x 2048 x 7 x 7 ran at 0.54x torch's. */
#define FNN_BN_SMALL_PLANE 1024

/* Whether the backward passes go a channel at a time: small planes (P > 1), and at least
 * as many channels as threads, so that every thread gets a share. */
static inline int fnn_bn_by_channel(ptrdiff_t N, ptrdiff_t C, ptrdiff_t P, int threads) {
    return P > 1 && P < FNN_BN_SMALL_PLANE && N > 0 && C >= threads;
}

/* Start of part t of `parts` equal parts of range(n). */
static inline ptrdiff_t fnn_bn_split(ptrdiff_t n, int t, int parts) {
    return (ptrdiff_t)((double)n * t / parts);
}

/* Eight values of T, and of double: the gradient sums' lanes, written as vectors (gcc
 * left the eight-array form of these loops scalar: a convert, a subtract and an add per
 * element, half the batch-norm backward's time on 7x7 maps). */
typedef float float_bn8 __attribute__((vector_size(32)));
typedef double double_bn8 __attribute__((vector_size(64)));

/* The loops of fnn_bn_plane_grad_sums for one activation A (g, x, y, n, m, a, b, s1, s2
 * and i from the enclosing function).  The mask is a select in T before the conversion
 * (and A a constant): gcc then vectorises it instead of branching. */
#define FNN_BN_GRAD_SUMS_LOOP(T, A)                                                      \
    if ((A) != FNN_BN_NONE) {                                                            \
        /* The mask in T into a small buffer first, then the double sums as without an   \
         * activation: one loop mixing the T-wide select with the double-wide sums       \
         * vectorised poorly (4-6x slower than the plain loop). */                       \
        T buf[FNN_BN_CHUNK];                                                             \
        while (i < n) {                                                                  \
            ptrdiff_t len = n - i < FNN_BN_CHUNK ? n - i : FNN_BN_CHUNK, q = 0;          \
            for (ptrdiff_t j = 0; j < len; ++j)                                          \
                buf[j] = FNN_BN_MASK(T, A, g[i + j], y[i + j]);                          \
            for (; q + 8 <= len; q += 8) {                                               \
                T##_bn8 gt, xt;                                                          \
                __builtin_memcpy(&gt, buf + q, sizeof gt);                               \
                __builtin_memcpy(&xt, x + i + q, sizeof xt);                             \
                double_bn8 gv = __builtin_convertvector(gt, double_bn8);                 \
                va += gv;                                                                \
                vb += gv * (__builtin_convertvector(xt, double_bn8) - m);                \
            }                                                                            \
            for (; q < len; ++q) {                                                       \
                double gv = (double)buf[q];                                              \
                s1 += gv;                                                                \
                s2 += gv * ((double)x[i + q] - m);                                       \
            }                                                                            \
            i += len;                                                                    \
        }                                                                                \
    }                                                                                    \
    for (; i + 8 <= n; i += 8) { /* no activation (a masked loop ends with i == n) */    \
        T##_bn8 gt, xt;                                                                  \
        __builtin_memcpy(&gt, g + i, sizeof gt);                                         \
        __builtin_memcpy(&xt, x + i, sizeof xt);                                         \
        double_bn8 gv = __builtin_convertvector(gt, double_bn8);                         \
        va += gv;                                                                        \
        vb += gv * (__builtin_convertvector(xt, double_bn8) - m);                        \
    }                                                                                    \
    for (; i < n; ++i) {                                                                 \
        T gm = FNN_BN_MASK(T, A, g[i], y[i]);                                            \
        double gv = (double)gm;                                                          \
        s1 += gv;                                                                        \
        s2 += gv * ((double)x[i] - m);                                                   \
    }

#define FNN_BN_ROW_GRAD_SUMS_LOOP(T, A)                                                  \
    for (ptrdiff_t r = 0; r < rows; ++r) {                                               \
        for (ptrdiff_t c0 = 0; c0 < C; c0 += FNN_BN_CHUNK) {                             \
            T buf[FNN_BN_CHUNK];                                                         \
            const T* restrict gr = g + r * C + c0;                                       \
            const T* restrict xr = x + r * C + c0;                                       \
            const T* restrict yr = y + r * C + c0;                                       \
            ptrdiff_t len = C - c0 < FNN_BN_CHUNK ? C - c0 : FNN_BN_CHUNK;               \
            if ((A) != FNN_BN_NONE) {                                                    \
                for (ptrdiff_t q = 0; q < len; ++q)                                      \
                    buf[q] = FNN_BN_MASK(T, A, gr[q], yr[q]);                            \
                gr = buf;                                                                \
            }                                                                            \
            for (ptrdiff_t q = 0; q < len; ++q) {                                        \
                double gv = (double)gr[q];                                               \
                s1[c0 + q] += gv;                                                        \
                s2[c0 + q] += gv * ((double)xr[q] - m[c0 + q]);                          \
            }                                                                            \
        }                                                                                \
    }

#define FNN_BN_GRAD_LOOP(T, A)                                                           \
    if (centred) {                                                                       \
        for (ptrdiff_t i = 0; i < n; ++i)                                                \
            out[i] = FNN_BN_MASK(T, A, g[i], y[i]) * k1 + (x[i] - m) * k2 + k3;          \
    } else {                                                                             \
        for (ptrdiff_t i = 0; i < n; ++i) out[i] = FNN_BN_MASK(T, A, g[i], y[i]) * k1;   \
    }

#define FNN_BN_ROW_GRAD_LOOP(T, A)                                                       \
    for (ptrdiff_t r = 0; r < rows; ++r) {                                               \
        const T* restrict gr = g + r * C;                                                \
        const T* restrict xr = x + r * C;                                                \
        const T* restrict yr = y + r * C;                                                \
        T* restrict orow = out + r * C;                                                  \
        if (centred) {                                                                   \
            for (ptrdiff_t c = 0; c < C; ++c)                                            \
                orow[c] = FNN_BN_MASK(T, A, gr[c], yr[c]) * k1[c]                        \
                          + (xr[c] - m[c]) * k2[c] + k3[c];                              \
        } else {                                                                         \
            for (ptrdiff_t c = 0; c < C; ++c)                                            \
                orow[c] = FNN_BN_MASK(T, A, gr[c], yr[c]) * k1[c];                       \
        }                                                                                \
    }

#define FNN_BN_ROW_AFFINE_LOOP(T, A)                                                     \
    for (ptrdiff_t r = 0; r < rows; ++r) {                                               \
        const T* restrict xr = x + r * C;                                                \
        T* restrict yr = y + r * C;                                                      \
        for (ptrdiff_t c = 0; c < C; ++c) {                                              \
            T v = (xr[c] - m[c]) * a[c] + b[c];                                          \
            yr[c] = FNN_BN_ACT(T, A, v);                                                 \
        }                                                                                \
    }

/* The two running sums of a plane loop: 8 lane partials each (a[], b[]: the loop adds
 * element i + l to lane l), s1 and s2 for the tail; at the end the lanes are folded in
 * lane order and the sums added to out[0] and out[1]. */
#define FNN_BN_LANE_SUMS_BEGIN                                                           \
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, b[8] = {0, 0, 0, 0, 0, 0, 0, 0};             \
    double s1 = 0.0, s2 = 0.0;                                                           \
    ptrdiff_t i = 0;
#define FNN_BN_LANE_SUMS_END                                                             \
    for (int l = 0; l < 8; ++l) {                                                        \
        s1 += a[l];                                                                      \
        s2 += b[l];                                                                      \
    }                                                                                    \
    out[0] += s1;                                                                        \
    out[1] += s2;

/* The same with the lanes as two vectors (va, vb), for FNN_BN_GRAD_SUMS_LOOP. */
#define FNN_BN_VEC_SUMS_BEGIN                                                            \
    double_bn8 va = {0, 0, 0, 0, 0, 0, 0, 0}, vb = {0, 0, 0, 0, 0, 0, 0, 0};             \
    double s1 = 0.0, s2 = 0.0;                                                           \
    ptrdiff_t i = 0;
#define FNN_BN_VEC_SUMS_END                                                              \
    for (int l = 0; l < 8; ++l) {                                                        \
        s1 += va[l];                                                                     \
        s2 += vb[l];                                                                     \
    }                                                                                    \
    out[0] += s1;                                                                        \
    out[1] += s2;

/* fnn_bn_plane_grad_sums_<NAME>_<S>(g, x, y, n, m, out) for the activation code A, and
 * fnn_bn_channel_grad_sums_<NAME>_<S>(g, x, y, planes, stride, n, m, out): the same over
 * `planes` planes of n values, `stride` apart (one channel of every image), in one set
 * of lanes. */
#define FNN_BN_DEFINE_GRAD_SUMS(T, S, NAME, A)                                           \
    FNN_MULTIVERSION(fnn_bn_plane_grad_sums_##NAME##_##S,                                \
        (const T* restrict g, const T* restrict x, const T* restrict y, ptrdiff_t n,     \
         double m, double* restrict out),                                                \
        (g, x, y, n, m, out), {                                                          \
        FNN_BN_VEC_SUMS_BEGIN                                                            \
        FNN_BN_GRAD_SUMS_LOOP(T, A)                                                      \
        FNN_BN_VEC_SUMS_END                                                               \
    })                                                                                   \
    FNN_MULTIVERSION(fnn_bn_channel_grad_sums_##NAME##_##S,                              \
        (const T* restrict g0, const T* restrict x0, const T* restrict y0,               \
         ptrdiff_t planes, ptrdiff_t stride, ptrdiff_t n, double m, double* restrict out), \
        (g0, x0, y0, planes, stride, n, m, out), {                                       \
        FNN_BN_VEC_SUMS_BEGIN                                                            \
        for (ptrdiff_t pl = 0; pl < planes; ++pl) {                                      \
            const T* restrict g = g0 + pl * stride;                                      \
            const T* restrict x = x0 + pl * stride;                                      \
            const T* restrict y = y0 + pl * stride;                                      \
            i = 0;                                                                       \
            FNN_BN_GRAD_SUMS_LOOP(T, A)                                                  \
        }                                                                                \
        FNN_BN_VEC_SUMS_END                                                               \
    })

#define FNN_DEFINE_BATCH_NORM(T, S)                                                      \
    /* out[0] += sum (x - k), out[1] += sum (x - k)^2 over n contiguous values. */       \
    FNN_MULTIVERSION(fnn_bn_plane_sums_##S,                                              \
        (const T* restrict x, ptrdiff_t n, double k, double* restrict out),              \
        (x, n, k, out), {                                                                \
        FNN_BN_LANE_SUMS_BEGIN                                                           \
        for (; i + 8 <= n; i += 8)                                                       \
            for (int l = 0; l < 8; ++l) {                                                \
                double d = (double)x[i + l] - k;                                         \
                a[l] += d;                                                               \
                b[l] += d * d;                                                           \
            }                                                                            \
        for (; i < n; ++i) {                                                             \
            double d = (double)x[i] - k;                                                 \
            s1 += d;                                                                     \
            s2 += d * d;                                                                 \
        }                                                                                \
        FNN_BN_LANE_SUMS_END                                                             \
    })                                                                                   \
                                                                                         \
    /* s1[c] += sum_r (x[r, c] - k[c]), s2[c] += its squares, over `rows` rows of C. */  \
    FNN_MULTIVERSION(fnn_bn_row_sums_##S,                                                \
        (const T* restrict x, ptrdiff_t rows, ptrdiff_t C, const double* restrict k,     \
         double* restrict s1, double* restrict s2),                                      \
        (x, rows, C, k, s1, s2), {                                                       \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                           \
            const T* restrict row = x + r * C;                                           \
            for (ptrdiff_t c = 0; c < C; ++c) {                                          \
                double d = (double)row[c] - k[c];                                        \
                s1[c] += d;                                                              \
                s2[c] += d * d;                                                          \
            }                                                                            \
        }                                                                                \
    })                                                                                   \
                                                                                         \
    /* y = act((x - m) a + b) over n contiguous values of one channel. */                \
    FNN_MULTIVERSION(fnn_bn_plane_affine_##S,                                            \
        (const T* restrict x, T* restrict y, ptrdiff_t n, T m, T a, T b, int act),       \
        (x, y, n, m, a, b, act), {                                                       \
        switch (act) {                                                                   \
        case FNN_BN_RELU:                                                                \
            for (ptrdiff_t i = 0; i < n; ++i) {                                          \
                T v = (x[i] - m) * a + b;                                                \
                y[i] = FNN_BN_ACT(T, FNN_BN_RELU, v);                                    \
            }                                                                            \
            break;                                                                       \
        case FNN_BN_RELU6:                                                               \
            for (ptrdiff_t i = 0; i < n; ++i) {                                          \
                T v = (x[i] - m) * a + b;                                                \
                y[i] = FNN_BN_ACT(T, FNN_BN_RELU6, v);                                   \
            }                                                                            \
            break;                                                                       \
        default:                                                                         \
            for (ptrdiff_t i = 0; i < n; ++i) y[i] = (x[i] - m) * a + b;                 \
        }                                                                                \
    })                                                                                   \
                                                                                         \
    /* The same over `rows` rows of C channels (P == 1). */                              \
    FNN_MULTIVERSION(fnn_bn_row_affine_##S,                                              \
        (const T* restrict x, T* restrict y, ptrdiff_t rows, ptrdiff_t C,                \
         const T* restrict m, const T* restrict a, const T* restrict b, int act),        \
        (x, y, rows, C, m, a, b, act), {                                                 \
        FNN_BN_SWITCH(T, act, FNN_BN_ROW_AFFINE_LOOP)                                    \
    })                                                                                   \
                                                                                         \
    /* out[0] += sum g', out[1] += sum g' (x - m) over n values (y == g when act 0): one \
     * function per activation, so that each keeps its 8 + 8 lanes in registers. */      \
    FNN_BN_DEFINE_GRAD_SUMS(T, S, none, FNN_BN_NONE)                                     \
    FNN_BN_DEFINE_GRAD_SUMS(T, S, relu, FNN_BN_RELU)                                     \
    FNN_BN_DEFINE_GRAD_SUMS(T, S, relu6, FNN_BN_RELU6)                                   \
    static void fnn_bn_plane_grad_sums_##S(const T* g, const T* x, const T* y, int act,  \
                                           ptrdiff_t n, double m, double* out) {         \
        if (act == FNN_BN_RELU) fnn_bn_plane_grad_sums_relu_##S(g, x, y, n, m, out);     \
        else if (act == FNN_BN_RELU6) fnn_bn_plane_grad_sums_relu6_##S(g, x, y, n, m, out); \
        else fnn_bn_plane_grad_sums_none_##S(g, x, y, n, m, out);                        \
    }                                                                                    \
                                                                                         \
    static void fnn_bn_channel_grad_sums_##S(const T* g, const T* x, const T* y, int act, \
                                             ptrdiff_t planes, ptrdiff_t stride,         \
                                             ptrdiff_t n, double m, double* out) {       \
        if (act == FNN_BN_RELU)                                                          \
            fnn_bn_channel_grad_sums_relu_##S(g, x, y, planes, stride, n, m, out);       \
        else if (act == FNN_BN_RELU6)                                                    \
            fnn_bn_channel_grad_sums_relu6_##S(g, x, y, planes, stride, n, m, out);      \
        else                                                                             \
            fnn_bn_channel_grad_sums_none_##S(g, x, y, planes, stride, n, m, out);       \
    }                                                                                    \
                                                                                         \
    /* out = g' k1 + (x - m) k2 + k3 (centred) or g' k1 over `planes` planes of n values, \
     * `stride` apart, of one channel. */                                                \
    FNN_MULTIVERSION(fnn_bn_channel_grad_##S,                                            \
        (const T* restrict g0, const T* restrict x0, const T* restrict y0, int act,      \
         ptrdiff_t planes, ptrdiff_t stride, ptrdiff_t n, int centred, T m, T k1, T k2,  \
         T k3, T* restrict out0),                                                        \
        (g0, x0, y0, act, planes, stride, n, centred, m, k1, k2, k3, out0), {            \
        for (ptrdiff_t pl = 0; pl < planes; ++pl) {                                      \
            const T* restrict g = g0 + pl * stride;                                      \
            const T* restrict x = x0 + pl * stride;                                      \
            const T* restrict y = y0 + pl * stride;                                      \
            T* restrict out = out0 + pl * stride;                                        \
            FNN_BN_SWITCH(T, act, FNN_BN_GRAD_LOOP)                                      \
        }                                                                                \
    })                                                                                   \
                                                                                         \
    FNN_MULTIVERSION(fnn_bn_row_grad_sums_##S,                                           \
        (const T* restrict g, const T* restrict x, const T* restrict y, int act,         \
         ptrdiff_t rows, ptrdiff_t C, const double* restrict m, double* restrict s1,     \
         double* restrict s2),                                                           \
        (g, x, y, act, rows, C, m, s1, s2), {                                            \
        FNN_BN_SWITCH(T, act, FNN_BN_ROW_GRAD_SUMS_LOOP)                                 \
    })                                                                                   \
                                                                                         \
    /* out = g' k1 + (x - m) k2 + k3 (centred) or g' k1 over n values of one channel. */ \
    FNN_MULTIVERSION(fnn_bn_plane_grad_##S,                                              \
        (const T* restrict g, const T* restrict x, const T* restrict y, int act,         \
         ptrdiff_t n, int centred, T m, T k1, T k2, T k3, T* restrict out),              \
        (g, x, y, act, n, centred, m, k1, k2, k3, out), {                                \
        FNN_BN_SWITCH(T, act, FNN_BN_GRAD_LOOP)                                          \
    })                                                                                   \
                                                                                         \
    FNN_MULTIVERSION(fnn_bn_row_grad_##S,                                                \
        (const T* restrict g, const T* restrict x, const T* restrict y, int act,         \
         ptrdiff_t rows, ptrdiff_t C, int centred, const T* restrict m,                  \
         const T* restrict k1, const T* restrict k2, const T* restrict k3,               \
         T* restrict out),                                                               \
        (g, x, y, act, rows, C, centred, m, k1, k2, k3, out), {                          \
        FNN_BN_SWITCH(T, act, FNN_BN_ROW_GRAD_LOOP)                                      \
    })                                                                                   \
                                                                                         \
    /* Sums of one thread's range [lo, hi) (rows when P == 1, else flat positions) into  \
     * s (2 C doubles: the first sums, then the second).  grad: the gradient sums of g,  \
     * x, y, else the shifted sums of x. */                                              \
    static void fnn_bn_range_sums_##S(int grad, const T* g, const T* x, const T* y,      \
                                      int act, ptrdiff_t C, ptrdiff_t P,                 \
                                      const double* k, ptrdiff_t lo, ptrdiff_t hi,       \
                                      double* s) {                                       \
        if (P == 1) {                                                                    \
            if (grad)                                                                    \
                fnn_bn_row_grad_sums_##S(g + lo * C, x + lo * C, y + lo * C, act, hi - lo, \
                                         C, k, s, s + C);                                \
            else                                                                         \
                fnn_bn_row_sums_##S(x + lo * C, hi - lo, C, k, s, s + C);                \
            return;                                                                      \
        }                                                                                \
        for (ptrdiff_t i = lo; i < hi;) {                                                \
            ptrdiff_t plane = i / P, p = i - plane * P, c = plane % C;                   \
            ptrdiff_t len = P - p < hi - i ? P - p : hi - i;                             \
            double acc[2] = {0.0, 0.0};                                                  \
            if (grad)                                                                    \
                fnn_bn_plane_grad_sums_##S(g + i, x + i, y + i, act, len, k[c], acc);    \
            else                                                                         \
                fnn_bn_plane_sums_##S(x + i, len, k[c], acc);                            \
            s[c] += acc[0];                                                              \
            s[C + c] += acc[1];                                                          \
            i += len;                                                                    \
        }                                                                                \
    }                                                                                    \
                                                                                         \
    /* out[c] (first sums), out[C + c] (second) over the whole (N, C, P) array: per-     \
     * (thread, channel) partials added in thread order.  0, or -1 when out of memory. */ \
    static int fnn_bn_sums_##S(int grad, const T* g, const T* x, const T* y, int act,    \
                               ptrdiff_t N, ptrdiff_t C, ptrdiff_t P, const double* k,   \
                               double* out, int threads) {                               \
        ptrdiff_t units = P == 1 ? N : N * C * P;                                        \
        double* part;                                                                    \
        if (N * C * P < FNN_BN_PARALLEL_MIN) threads = 1;                                \
        if (grad && fnn_bn_by_channel(N, C, P, threads)) {                               \
            if (threads > C) threads = (int)C;                                           \
            _Pragma("omp parallel for schedule(static) num_threads(threads) if(threads > 1)") \
            for (ptrdiff_t c = 0; c < C; ++c) {                                          \
                double acc[2] = {0.0, 0.0};                                              \
                fnn_bn_channel_grad_sums_##S(g + c * P, x + c * P, y + c * P, act, N,    \
                                             C * P, P, k[c], acc);                       \
                out[c] = acc[0];                                                         \
                out[C + c] = acc[1];                                                     \
            }                                                                            \
            return 0;                                                                    \
        }                                                                                \
        if (threads > units) threads = units > 0 ? (int)units : 1;                       \
        if (threads == 1) {                                                              \
            for (ptrdiff_t c = 0; c < 2 * C; ++c) out[c] = 0.0;                          \
            fnn_bn_range_sums_##S(grad, g, x, y, act, C, P, k, 0, units, out);           \
            return 0;                                                                    \
        }                                                                                \
        /* each thread's 2C partials, then at least a cache line of gap, up to a multiple  \
         * of 128 bytes: no two threads write one cache line */                           \
        ptrdiff_t stride = (2 * C + 8 + 15) / 16 * 16;                                   \
        part = (double*)calloc((size_t)threads * (size_t)stride, sizeof(double));         \
        if (part == NULL) return -1;                                                     \
        _Pragma("omp parallel for schedule(static) num_threads(threads)")                \
        for (int t = 0; t < threads; ++t)                                                \
            fnn_bn_range_sums_##S(grad, g, x, y, act, C, P, k,                           \
                                  fnn_bn_split(units, t, threads),                       \
                                  fnn_bn_split(units, t + 1, threads),                   \
                                  part + (ptrdiff_t)t * stride);                         \
        for (ptrdiff_t c = 0; c < 2 * C; ++c) {                                          \
            double v = 0.0;                                                              \
            for (int t = 0; t < threads; ++t) v += part[(ptrdiff_t)t * stride + c];      \
            out[c] = v;                                                                  \
        }                                                                                \
        free(part);                                                                      \
        return 0;                                                                        \
    }                                                                                    \
                                                                                         \
    /* mean[c] and the biased var[c] (double) of the (N, C, P) x; N * P > 0. */          \
    static int fnn_bn_stats_##S(const T* x, ptrdiff_t N, ptrdiff_t C, ptrdiff_t P,       \
                                double* mean, double* var, int threads) {                \
        double count = (double)N * (double)P;                                            \
        double* buf = (double*)malloc(3 * (size_t)C * sizeof(double));                   \
        double *k = buf, *s = buf + C;                                                   \
        if (buf == NULL) return -1;                                                      \
        for (ptrdiff_t c = 0; c < C; ++c) k[c] = (double)x[c * P];                       \
        if (fnn_bn_sums_##S(0, x, x, x, FNN_BN_NONE, N, C, P, k, s, threads) != 0) {     \
            free(buf);                                                                   \
            return -1;                                                                   \
        }                                                                                \
        for (ptrdiff_t c = 0; c < C; ++c) {                                              \
            double d = s[c] / count, v = s[C + c] / count - d * d;                       \
            mean[c] = k[c] + d;                                                          \
            var[c] = v > 0.0 ? v : (v == v ? 0.0 : v);                                   \
        }                                                                                \
        free(buf);                                                                       \
        return 0;                                                                        \
    }                                                                                    \
                                                                                         \
    static void fnn_bn_range_affine_##S(const T* x, T* y, ptrdiff_t C, ptrdiff_t P,      \
                                        const T* m, const T* a, const T* b, int act,     \
                                        ptrdiff_t lo, ptrdiff_t hi) {                    \
        if (P == 1) {                                                                    \
            fnn_bn_row_affine_##S(x + lo * C, y + lo * C, hi - lo, C, m, a, b, act);     \
            return;                                                                      \
        }                                                                                \
        for (ptrdiff_t i = lo; i < hi;) {                                                \
            ptrdiff_t plane = i / P, p = i - plane * P, c = plane % C;                   \
            ptrdiff_t len = P - p < hi - i ? P - p : hi - i;                             \
            fnn_bn_plane_affine_##S(x + i, y + i, len, m[c], a[c], b[c], act);           \
            i += len;                                                                    \
        }                                                                                \
    }                                                                                    \
                                                                                         \
    /* y = act((x - m[c]) a[c] + b[c]) over the (N, C, P) arrays. */                     \
    static void fnn_bn_affine_##S(const T* x, T* y, ptrdiff_t N, ptrdiff_t C,            \
                                  ptrdiff_t P, const T* m, const T* a, const T* b,       \
                                  int act, int threads) {                                \
        ptrdiff_t units = P == 1 ? N : N * C * P;                                        \
        if (N * C * P < FNN_BN_PARALLEL_MIN) threads = 1;                                \
        if (threads > units) threads = units > 0 ? (int)units : 1;                       \
        if (threads == 1) {                                                              \
            fnn_bn_range_affine_##S(x, y, C, P, m, a, b, act, 0, units);                 \
            return;                                                                      \
        }                                                                                \
        _Pragma("omp parallel for schedule(static) num_threads(threads)")                \
        for (int t = 0; t < threads; ++t)                                                \
            fnn_bn_range_affine_##S(x, y, C, P, m, a, b, act,                            \
                                    fnn_bn_split(units, t, threads),                     \
                                    fnn_bn_split(units, t + 1, threads));                \
    }                                                                                    \
                                                                                         \
    static void fnn_bn_range_grad_##S(const T* g, const T* x, const T* y, int act,       \
                                      ptrdiff_t C, ptrdiff_t P, int centred, const T* m, \
                                      const T* k1, const T* k2, const T* k3, T* out,     \
                                      ptrdiff_t lo, ptrdiff_t hi) {                      \
        if (P == 1) {                                                                    \
            fnn_bn_row_grad_##S(g + lo * C, x + lo * C, y + lo * C, act, hi - lo, C,     \
                                centred, m, k1, k2, k3, out + lo * C);                   \
            return;                                                                      \
        }                                                                                \
        for (ptrdiff_t i = lo; i < hi;) {                                                \
            ptrdiff_t plane = i / P, p = i - plane * P, c = plane % C;                   \
            ptrdiff_t len = P - p < hi - i ? P - p : hi - i;                             \
            fnn_bn_plane_grad_##S(g + i, x + i, y + i, act, len, centred, m[c], k1[c],   \
                                  k2[c], k3[c], out + i);                                \
            i += len;                                                                    \
        }                                                                                \
    }                                                                                    \
                                                                                         \
    /* out = g' k1[c] + (x - m[c]) k2[c] + k3[c] (centred) or g' k1[c]. */               \
    static void fnn_bn_grad_input_##S(const T* g, const T* x, const T* y, int act,       \
                                      ptrdiff_t N, ptrdiff_t C, ptrdiff_t P, int centred, \
                                      const T* m, const T* k1, const T* k2, const T* k3, \
                                      T* out, int threads) {                             \
        ptrdiff_t units = P == 1 ? N : N * C * P;                                        \
        if (N * C * P < FNN_BN_PARALLEL_MIN) threads = 1;                                \
        if (fnn_bn_by_channel(N, C, P, threads)) {                                       \
            if (threads > C) threads = (int)C;                                           \
            _Pragma("omp parallel for schedule(static) num_threads(threads) if(threads > 1)") \
            for (ptrdiff_t c = 0; c < C; ++c)                                            \
                fnn_bn_channel_grad_##S(g + c * P, x + c * P, y + c * P, act, N, C * P, P, \
                                        centred, m[c], k1[c], k2[c], k3[c], out + c * P); \
            return;                                                                      \
        }                                                                                \
        if (threads > units) threads = units > 0 ? (int)units : 1;                       \
        if (threads == 1) {                                                              \
            fnn_bn_range_grad_##S(g, x, y, act, C, P, centred, m, k1, k2, k3, out, 0,    \
                                  units);                                                \
            return;                                                                      \
        }                                                                                \
        _Pragma("omp parallel for schedule(static) num_threads(threads)")                \
        for (int t = 0; t < threads; ++t)                                                \
            fnn_bn_range_grad_##S(g, x, y, act, C, P, centred, m, k1, k2, k3, out,       \
                                  fnn_bn_split(units, t, threads),                       \
                                  fnn_bn_split(units, t + 1, threads));                  \
    }                                                                                    \
                                                                                         \
    /* The whole backward: gx (when gx != NULL), gw[c] = sum g' xhat and gb[c] = sum g'  \
     * (when not NULL) from the forward's mean and invstd (T, per channel) and w (NULL:  \
     * 1).  training: gx = w invstd (g' - mean g' - xhat mean(g' xhat)), else g' w invstd.\
     * 0, or -1 when out of memory. */                                                   \
    static int fnn_bn_backward_##S(const T* g, const T* x, const T* y, int act,          \
                                   ptrdiff_t N, ptrdiff_t C, ptrdiff_t P, const T* mean, \
                                   const T* invstd, const T* w, int training, T* gx, T* gw,\
                                   T* gb, int threads) {                                 \
        double count = (double)N * (double)P;                                            \
        double* buf = (double*)malloc((3 * (size_t)C + 1) * sizeof(double));             \
        T* coef = (T*)malloc((4 * (size_t)C + 1) * sizeof(T));                           \
        double *m64 = buf, *s = buf + C;                                                 \
        int status = 0;                                                                  \
        if (buf == NULL || coef == NULL) {                                               \
            free(buf);                                                                   \
            free(coef);                                                                  \
            return -1;                                                                   \
        }                                                                                \
        for (ptrdiff_t c = 0; c < C; ++c) {                                              \
            m64[c] = (double)mean[c];                                                    \
            s[c] = s[C + c] = 0.0;                                                       \
        }                                                                                \
        if (training || gw != NULL || gb != NULL)                                        \
            status = fnn_bn_sums_##S(1, g, x, y, act, N, C, P, m64, s, threads);         \
        if (status == 0) {                                                               \
            for (ptrdiff_t c = 0; c < C; ++c) {                                          \
                double istd = (double)invstd[c];                                         \
                double sgx = count > 0.0 ? s[C + c] * istd : 0.0; /* sum g' xhat */      \
                double k1 = w != NULL ? istd * (double)w[c] : istd;                      \
                if (gw != NULL) gw[c] = (T)sgx;                                          \
                if (gb != NULL) gb[c] = (T)s[c];                                         \
                coef[c] = mean[c];                                                       \
                coef[C + c] = (T)k1;                                                     \
                coef[2 * C + c] = training ? (T)(-k1 * istd * sgx / count) : (T)0;       \
                coef[3 * C + c] = training ? (T)(-k1 * s[c] / count) : (T)0;             \
            }                                                                            \
            if (gx != NULL)                                                              \
                fnn_bn_grad_input_##S(g, x, y, act, N, C, P, training, coef, coef + C,   \
                                      coef + 2 * C, coef + 3 * C, gx, threads);          \
        }                                                                                \
        free(buf);                                                                       \
        free(coef);                                                                      \
        return status;                                                                   \
    }

FNN_DEFINE_BATCH_NORM(float, f32)
FNN_DEFINE_BATCH_NORM(double, f64)

#endif /* FNN_BATCH_NORM_H */
