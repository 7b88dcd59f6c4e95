/* softmax / log_softmax and their backward along one axis, float and double.
 *
 * An array reduced along axis `dim` is viewed as (outer, D, inner): D is the length of
 * the reduced axis, inner the product of the sizes after it.  Two layouts of kernels:
 *   *_rows     inner == 1: each of `rows` contiguous rows of D elements is one softmax;
 *   *_columns  inner > 1: one (D, inner) slab, reduced down its columns, vectorised
 *              along inner (the caller hands out slabs, or column chunks of one, to
 *              threads).
 * Stability: x - max(x) is taken before exp, so exp never overflows; sums accumulate in
 * double.  A row holding NaN gives NaN; +inf gives NaN (inf - inf), as in PyTorch.
 * Backward, from the forward output y and the incoming gradient g:
 *   softmax      gx = y * (g - sum(g * y))
 *   log_softmax  gx = g - exp(y) * sum(g)
 */
#ifndef FNN_SOFTMAX_ROWS_H
#define FNN_SOFTMAX_ROWS_H

#include <math.h>

#include "activation_loops.h"

enum { FNN_SOFTMAX = 0, FNN_LOG_SOFTMAX = 1 };

#define FNN_DEFINE_SOFTMAX(T, SUFFIX)                                                     \
    /* Forward over `rows` contiguous rows of d elements. */                              \
    FNN_MULTIVERSION(fnn_softmax_rows_##SUFFIX,                                           \
        (int log_mode, const T* restrict x, T* restrict y, ptrdiff_t rows, ptrdiff_t d),  \
        (log_mode, x, y, rows, d), {                                                      \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                            \
            const T* restrict xr = x + r * d;                                             \
            T* restrict yr = y + r * d;                                                   \
            T m = -INFINITY;                                                              \
            double s = 0.0;                                                               \
            _Pragma("omp simd reduction(max: m)")                                         \
            for (ptrdiff_t j = 0; j < d; ++j) m = xr[j] > m ? xr[j] : m;                  \
            if (log_mode) {                                                               \
                _Pragma("omp simd reduction(+: s)")                                       \
                for (ptrdiff_t j = 0; j < d; ++j) s += (double)fnn_exp_##SUFFIX(xr[j] - m); \
                T ls = (T)log(s);                                                         \
                for (ptrdiff_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) - ls;               \
            } else {                                                                      \
                _Pragma("omp simd reduction(+: s)")                                       \
                for (ptrdiff_t j = 0; j < d; ++j) {                                       \
                    T e = fnn_exp_##SUFFIX(xr[j] - m);                                    \
                    yr[j] = e;                                                            \
                    s += (double)e;                                                       \
                }                                                                         \
                T inv = (T)(1.0 / s);                                                     \
                for (ptrdiff_t j = 0; j < d; ++j) yr[j] *= inv;                           \
            }                                                                             \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    /* Forward down the columns [c0, c1) of one (d, inner) slab; work: 2 * inner. */      \
    FNN_MULTIVERSION(fnn_softmax_columns_##SUFFIX,                                        \
        (int log_mode, const T* restrict x, T* restrict y, ptrdiff_t d, ptrdiff_t inner,  \
         ptrdiff_t c0, ptrdiff_t c1, T* restrict mx, double* restrict s),                 \
        (log_mode, x, y, d, inner, c0, c1, mx, s), {                                      \
        ptrdiff_t w = c1 - c0;                                                            \
        x += c0;                                                                          \
        y += c0;                                                                          \
        for (ptrdiff_t i = 0; i < w; ++i) {                                               \
            mx[i] = -INFINITY;                                                            \
            s[i] = 0.0;                                                                   \
        }                                                                                 \
        for (ptrdiff_t k = 0; k < d; ++k)                                                 \
            for (ptrdiff_t i = 0; i < w; ++i)                                             \
                mx[i] = x[k * inner + i] > mx[i] ? x[k * inner + i] : mx[i];              \
        for (ptrdiff_t k = 0; k < d; ++k)                                                 \
            for (ptrdiff_t i = 0; i < w; ++i) {                                           \
                T e = fnn_exp_##SUFFIX(x[k * inner + i] - mx[i]);                         \
                if (!log_mode) y[k * inner + i] = e;                                      \
                s[i] += (double)e;                                                        \
            }                                                                             \
        if (log_mode) {                                                                   \
            for (ptrdiff_t i = 0; i < w; ++i) s[i] = log(s[i]);                           \
            for (ptrdiff_t k = 0; k < d; ++k)                                             \
                for (ptrdiff_t i = 0; i < w; ++i)                                         \
                    y[k * inner + i] = (x[k * inner + i] - mx[i]) - (T)s[i];              \
        } else {                                                                          \
            for (ptrdiff_t i = 0; i < w; ++i) mx[i] = (T)(1.0 / s[i]);                    \
            for (ptrdiff_t k = 0; k < d; ++k)                                             \
                for (ptrdiff_t i = 0; i < w; ++i) y[k * inner + i] *= mx[i];              \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    /* Backward over `rows` contiguous rows of d elements. */                             \
    FNN_MULTIVERSION(fnn_softmax_backward_rows_##SUFFIX,                                  \
        (int log_mode, const T* restrict g, const T* restrict y, T* restrict gx,          \
         ptrdiff_t rows, ptrdiff_t d),                                                    \
        (log_mode, g, y, gx, rows, d), {                                                  \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                            \
            const T* restrict gr = g + r * d;                                             \
            const T* restrict yr = y + r * d;                                             \
            T* restrict out = gx + r * d;                                                 \
            double s = 0.0;                                                               \
            if (log_mode) {                                                               \
                _Pragma("omp simd reduction(+: s)")                                       \
                for (ptrdiff_t j = 0; j < d; ++j) s += (double)gr[j];                     \
                T st = (T)s;                                                              \
                for (ptrdiff_t j = 0; j < d; ++j)                                         \
                    out[j] = gr[j] - fnn_exp_##SUFFIX(yr[j]) * st;                        \
            } else {                                                                      \
                _Pragma("omp simd reduction(+: s)")                                       \
                for (ptrdiff_t j = 0; j < d; ++j) s += (double)(gr[j] * yr[j]);           \
                T st = (T)s;                                                              \
                for (ptrdiff_t j = 0; j < d; ++j) out[j] = yr[j] * (gr[j] - st);          \
            }                                                                             \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    /* Backward down the columns [c0, c1) of one (d, inner) slab. */                      \
    FNN_MULTIVERSION(fnn_softmax_backward_columns_##SUFFIX,                               \
        (int log_mode, const T* restrict g, const T* restrict y, T* restrict gx,          \
         ptrdiff_t d, ptrdiff_t inner, ptrdiff_t c0, ptrdiff_t c1, double* restrict s),   \
        (log_mode, g, y, gx, d, inner, c0, c1, s), {                                      \
        ptrdiff_t w = c1 - c0;                                                            \
        g += c0;                                                                          \
        y += c0;                                                                          \
        gx += c0;                                                                         \
        for (ptrdiff_t i = 0; i < w; ++i) s[i] = 0.0;                                     \
        for (ptrdiff_t k = 0; k < d; ++k)                                                 \
            for (ptrdiff_t i = 0; i < w; ++i)                                             \
                s[i] += log_mode ? (double)g[k * inner + i]                               \
                                 : (double)(g[k * inner + i] * y[k * inner + i]);         \
        for (ptrdiff_t k = 0; k < d; ++k)                                                 \
            for (ptrdiff_t i = 0; i < w; ++i) {                                           \
                T gv = g[k * inner + i], yv = y[k * inner + i], sv = (T)s[i];             \
                gx[k * inner + i] = log_mode ? gv - fnn_exp_##SUFFIX(yv) * sv             \
                                             : yv * (gv - sv);                            \
            }                                                                             \
    })

FNN_DEFINE_SOFTMAX(float, f32)
FNN_DEFINE_SOFTMAX(double, f64)

#endif /* FNN_SOFTMAX_ROWS_H */
