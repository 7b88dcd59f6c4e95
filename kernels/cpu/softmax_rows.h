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

/* Row sums add FNN_SUM_BLOCK terms in T across the vector lanes (fast: no conversions),
 * then the block sums in double: a float32 sum of any length keeps ~1e-6 accuracy. */
#define FNN_SUM_BLOCK 512

#define FNN_DEFINE_ROW_HELPERS(T, SUFFIX)                                                 \
    /* max of x[0 .. d) (-inf for d == 0). */                                             \
    FNN_INLINE T fnn_row_max_##SUFFIX(const T* restrict x, ptrdiff_t d) {                 \
        T m = -INFINITY;                                                                  \
        _Pragma("omp simd reduction(max: m)")                                             \
        for (ptrdiff_t j = 0; j < d; ++j) m = x[j] > m ? x[j] : m;                        \
        return m;                                                                         \
    }                                                                                     \
    /* sum of exp(x[j] - m); the terms are also stored in y unless y is NULL. */          \
    FNN_INLINE double fnn_row_sum_exp_##SUFFIX(const T* restrict x, T* restrict y,        \
                                               ptrdiff_t d, T m) {                        \
        double s = 0.0;                                                                   \
        for (ptrdiff_t j0 = 0; j0 < d; j0 += FNN_SUM_BLOCK) {                             \
            ptrdiff_t j1 = d - j0 < FNN_SUM_BLOCK ? d : j0 + FNN_SUM_BLOCK;               \
            T block = 0;                                                                  \
            if (y != NULL) {                                                              \
                _Pragma("omp simd reduction(+: block)")                                   \
                for (ptrdiff_t j = j0; j < j1; ++j) {                                     \
                    T e = fnn_exp_nonpos_##SUFFIX(x[j] - m);                                     \
                    y[j] = e;                                                             \
                    block += e;                                                           \
                }                                                                         \
            } else {                                                                      \
                _Pragma("omp simd reduction(+: block)")                                   \
                for (ptrdiff_t j = j0; j < j1; ++j) block += fnn_exp_nonpos_##SUFFIX(x[j] - m);  \
            }                                                                             \
            s += (double)block;                                                           \
        }                                                                                 \
        return s;                                                                         \
    }                                                                                     \
    /* sum of a[j] * b[j] (b NULL: of a[j]). */                                           \
    FNN_INLINE double fnn_row_dot_##SUFFIX(const T* restrict a, const T* restrict b,      \
                                           ptrdiff_t d) {                                 \
        double s = 0.0;                                                                   \
        for (ptrdiff_t j0 = 0; j0 < d; j0 += FNN_SUM_BLOCK) {                             \
            ptrdiff_t j1 = d - j0 < FNN_SUM_BLOCK ? d : j0 + FNN_SUM_BLOCK;               \
            T block = 0;                                                                  \
            if (b != NULL) {                                                              \
                _Pragma("omp simd reduction(+: block)")                                   \
                for (ptrdiff_t j = j0; j < j1; ++j) block += a[j] * b[j];                 \
            } else {                                                                      \
                _Pragma("omp simd reduction(+: block)")                                   \
                for (ptrdiff_t j = j0; j < j1; ++j) block += a[j];                        \
            }                                                                             \
            s += (double)block;                                                           \
        }                                                                                 \
        return s;                                                                         \
    }

FNN_DEFINE_ROW_HELPERS(float, f32)
FNN_DEFINE_ROW_HELPERS(double, f64)

#define FNN_DEFINE_SOFTMAX(T, SUFFIX)                                                     \
    /* Forward over `rows` contiguous rows of d elements. */                              \
    FNN_MULTIVERSION(fnn_softmax_rows_##SUFFIX,                                           \
        (int log_mode, const T* restrict x, T* restrict y, ptrdiff_t rows, ptrdiff_t d),  \
        (log_mode, x, y, rows, d), {                                                      \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                            \
            const T* restrict xr = x + r * d;                                             \
            T* restrict yr = y + r * d;                                                   \
            T m = fnn_row_max_##SUFFIX(xr, d);                                            \
            if (log_mode) {                                                               \
                T ls = (T)log(fnn_row_sum_exp_##SUFFIX(xr, NULL, d, m));                  \
                for (ptrdiff_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) - ls;               \
            } else {                                                                      \
                T inv = (T)(1.0 / fnn_row_sum_exp_##SUFFIX(xr, yr, d, m));                \
                for (ptrdiff_t j = 0; j < d; ++j) yr[j] *= inv;                           \
            }                                                                             \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    /* Forward down the columns [c0, c1) of one (d, inner) slab, in three passes that   \
     * only read x (max; sum of exp; y from x): 3 reads and 1 write of the slab, each     \
     * row segment read whole and in order.  exp is evaluated twice per element rather   \
     * than reading back a y written in the second pass. */                              \
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
        for (ptrdiff_t k = 0; k < d; ++k) {                                               \
            const T* xr = x + k * inner;                                                  \
            _Pragma("omp simd")                                                           \
            for (ptrdiff_t i = 0; i < w; ++i) mx[i] = xr[i] > mx[i] ? xr[i] : mx[i];      \
        }                                                                                 \
        for (ptrdiff_t k = 0; k < d; ++k) {                                               \
            const T* xr = x + k * inner;                                                  \
            _Pragma("omp simd")                                                           \
            for (ptrdiff_t i = 0; i < w; ++i)                                             \
                s[i] += (double)fnn_exp_nonpos_##SUFFIX(xr[i] - mx[i]);                   \
        }                                                                                 \
        if (log_mode) {                                                                   \
            for (ptrdiff_t i = 0; i < w; ++i) s[i] = log(s[i]);                           \
            for (ptrdiff_t k = 0; k < d; ++k) {                                           \
                const T* xr = x + k * inner;                                              \
                T* yr = y + k * inner;                                                    \
                _Pragma("omp simd")                                                       \
                for (ptrdiff_t i = 0; i < w; ++i) yr[i] = (xr[i] - mx[i]) - (T)s[i];      \
            }                                                                             \
        } else {                                                                          \
            for (ptrdiff_t i = 0; i < w; ++i) s[i] = 1.0 / s[i];                         \
            for (ptrdiff_t k = 0; k < d; ++k) {                                           \
                const T* xr = x + k * inner;                                              \
                T* yr = y + k * inner;                                                    \
                _Pragma("omp simd")                                                       \
                for (ptrdiff_t i = 0; i < w; ++i)                                         \
                    yr[i] = fnn_exp_nonpos_##SUFFIX(xr[i] - mx[i]) * (T)s[i];             \
            }                                                                             \
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
            if (log_mode) {                                                               \
                T st = (T)fnn_row_dot_##SUFFIX(gr, NULL, d);                              \
                _Pragma("omp simd")                                                       \
                for (ptrdiff_t j = 0; j < d; ++j)                                         \
                    out[j] = gr[j] - fnn_exp_##SUFFIX(yr[j]) * st;                        \
            } else {                                                                      \
                T st = (T)fnn_row_dot_##SUFFIX(gr, yr, d);                                \
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
            _Pragma("omp simd")                                                           \
            for (ptrdiff_t i = 0; i < w; ++i) {                                           \
                T gv = g[k * inner + i], yv = y[k * inner + i], sv = (T)s[i];             \
                gx[k * inner + i] = log_mode ? gv - fnn_exp_##SUFFIX(yv) * sv             \
                                             : yv * (gv - sv);                            \
            }                                                                             \
    })

FNN_DEFINE_SOFTMAX(float, f32)
FNN_DEFINE_SOFTMAX(double, f64)

#endif /* FNN_SOFTMAX_ROWS_H */
