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

/* Rows per block of the row kernels' phases (independent dependency chains in flight),
 * at most: fewer where the block's rows would not stay in L1 between phases. */
#define FNN_ROW_BLOCK 16

/* The bytes of rows a block may span (its arrays together), small enough for the L1 of
 * every x86 core (32-48 KiB) to keep them between phases beside what else it holds: a
 * 4096 x 1000 float backward read its rows from L2 in its second phase with 16 rows
 * (128 KiB) a block, and ran 0.79x torch's row-at-a-time loop. */
#ifndef FNN_ROW_L1_BYTES
#define FNN_ROW_L1_BYTES 16384
#endif

/* Rows per block for rows of d elements of `bytes` each in `arrays` arrays. */
static inline ptrdiff_t fnn_row_block(ptrdiff_t d, ptrdiff_t arrays, ptrdiff_t bytes) {
    ptrdiff_t fit = FNN_ROW_L1_BYTES / (d * arrays * bytes + 1);
    return fit < 1 ? 1 : fit > FNN_ROW_BLOCK ? FNN_ROW_BLOCK : fit;
}

/* The body of a row sum over j in [0, d), returned as a double: FNN_SUM_BLOCK terms at a
 * time are summed in T into `block` by the statement WITH (where COND holds) or WITHOUT,
 * then the blocks in double. */
#define FNN_BLOCKED_ROW_SUM(T, d, j, COND, WITH, WITHOUT)                                 \
    double s = 0.0;                                                                       \
    for (ptrdiff_t j0 = 0; j0 < d; j0 += FNN_SUM_BLOCK) {                                 \
        ptrdiff_t j1 = d - j0 < FNN_SUM_BLOCK ? d : j0 + FNN_SUM_BLOCK;                   \
        T block = 0;                                                                      \
        if (COND) {                                                                       \
            _Pragma("omp simd reduction(+: block)")                                       \
            for (ptrdiff_t j = j0; j < j1; ++j) WITH                                      \
        } else {                                                                          \
            _Pragma("omp simd reduction(+: block)")                                       \
            for (ptrdiff_t j = j0; j < j1; ++j) WITHOUT                                   \
        }                                                                                 \
        s += (double)block;                                                               \
    }                                                                                     \
    return s

/* Rows up to this long take the vector reductions below (their exp terms, staged in the
 * output row, are still in L1 when they are summed). */
#define FNN_SHORT_ROW 512

/* v = lanewise max(a, v) for a vector v of fnn_v8_<SFX>, v kept where a is NaN (as
 * "a > v ? a : v"); a macro, not a function: a vector argument outside the target's ISA
 * changes the calling convention (-Wpsabi). */
#define FNN_V8MAX(SFX, v, a)                                                              \
    do {                                                                                  \
        const fnn_v8_##SFX a_ = (a);                                                      \
        const fnn_v8i_##SFX gt_ = a_ > (v);                                               \
        (v) = (fnn_v8_##SFX)(((fnn_v8i_##SFX)a_ & gt_) | ((fnn_v8i_##SFX)(v) & ~gt_));    \
    } while (0)

#define FNN_DEFINE_ROW_HELPERS(T, SUFFIX, TI)                                             \
    /* 8 lanes of T, and the integer lanes of their compares */                           \
    typedef T fnn_v8_##SUFFIX __attribute__((vector_size(8 * sizeof(T))));               \
    typedef TI fnn_v8i_##SUFFIX __attribute__((vector_size(8 * sizeof(T))));             \
    /* max of x[0 .. d) (-inf for d == 0). */                                             \
    FNN_INLINE T fnn_row_max_##SUFFIX(const T* restrict x, ptrdiff_t d) {                 \
        T m = -INFINITY;                                                                  \
        ptrdiff_t j = 0;                                                                  \
        if (d >= 8) { /* lanes, then a shuffle tree: no spill of the lanes to memory */   \
            fnn_v8_##SUFFIX v;                                                            \
            __builtin_memcpy(&v, x, sizeof v);                                            \
            for (j = 8; j + 8 <= d; j += 8) {                                             \
                fnn_v8_##SUFFIX t;                                                        \
                __builtin_memcpy(&t, x + j, sizeof t);                                    \
                FNN_V8MAX(SUFFIX, v, t);                                             \
            }                                                                             \
            const fnn_v8i_##SUFFIX h = {4, 5, 6, 7, 0, 1, 2, 3}, q = {2, 3, 0, 1, 6, 7, 4, 5}, \
                                   p = {1, 0, 3, 2, 5, 4, 7, 6};                          \
            FNN_V8MAX(SUFFIX, v, __builtin_shuffle(v, h));                           \
            FNN_V8MAX(SUFFIX, v, __builtin_shuffle(v, q));                           \
            FNN_V8MAX(SUFFIX, v, __builtin_shuffle(v, p));                           \
            m = v[0];                                                                     \
        }                                                                                 \
        for (; j < d; ++j) m = x[j] > m ? x[j] : m;                                       \
        return m;                                                                         \
    }                                                                                     \
    /* sum of t[0 .. d), d <= FNN_SHORT_ROW, in T: lanes, then a shuffle tree. */         \
    FNN_INLINE T fnn_short_row_sum_##SUFFIX(const T* restrict t, ptrdiff_t d) {           \
        T s = 0;                                                                          \
        ptrdiff_t j = 0;                                                                  \
        if (d >= 8) {                                                                     \
            fnn_v8_##SUFFIX v;                                                            \
            __builtin_memcpy(&v, t, sizeof v);                                            \
            for (j = 8; j + 8 <= d; j += 8) {                                             \
                fnn_v8_##SUFFIX u;                                                        \
                __builtin_memcpy(&u, t + j, sizeof u);                                    \
                v += u;                                                                   \
            }                                                                             \
            const fnn_v8i_##SUFFIX h = {4, 5, 6, 7, 0, 1, 2, 3}, q = {2, 3, 0, 1, 6, 7, 4, 5}, \
                                   p = {1, 0, 3, 2, 5, 4, 7, 6};                          \
            v += __builtin_shuffle(v, h);                                                 \
            v += __builtin_shuffle(v, q);                                                 \
            v += __builtin_shuffle(v, p);                                                 \
            s = v[0];                                                                     \
        }                                                                                 \
        for (; j < d; ++j) s += t[j];                                                     \
        return s;                                                                         \
    }                                                                                     \
    /* sum of exp(x[j] - m); the terms are also stored in y unless y is NULL (a row of   \
     * up to FNN_SHORT_ROW stages them in `stage` to sum them as vectors). */             \
    FNN_INLINE double fnn_row_sum_exp_##SUFFIX(const T* restrict x, T* restrict y,        \
                                               ptrdiff_t d, T m, T* restrict stage) {     \
        if (d <= FNN_SHORT_ROW) {                                                         \
            T* restrict e = y != NULL ? y : stage;                                        \
            _Pragma("omp simd")                                                           \
            for (ptrdiff_t j = 0; j < d; ++j) e[j] = fnn_exp_nonpos_##SUFFIX(x[j] - m);   \
            return (double)fnn_short_row_sum_##SUFFIX(e, d);                              \
        }                                                                                 \
        FNN_BLOCKED_ROW_SUM(T, d, j, y != NULL, {                                         \
            T e = fnn_exp_nonpos_##SUFFIX(x[j] - m);                                      \
            y[j] = e;                                                                     \
            block += e;                                                                   \
        }, block += fnn_exp_nonpos_##SUFFIX(x[j] - m););                                  \
    }                                                                                     \
    /* sum of a[j] * b[j] (b NULL: of a[j]): FNN_SUM_BLOCK terms at a time in T lanes    \
     * and a shuffle tree, the blocks in double. */                                       \
    FNN_INLINE double fnn_row_dot_##SUFFIX(const T* restrict a, const T* restrict b,      \
                                           ptrdiff_t d) {                                 \
        const fnn_v8i_##SUFFIX h = {4, 5, 6, 7, 0, 1, 2, 3}, q = {2, 3, 0, 1, 6, 7, 4, 5},   \
                               p = {1, 0, 3, 2, 5, 4, 7, 6};                              \
        double s = 0.0;                                                                   \
        for (ptrdiff_t j0 = 0; j0 < d; j0 += FNN_SUM_BLOCK) {                             \
            const ptrdiff_t j1 = d - j0 < FNN_SUM_BLOCK ? d : j0 + FNN_SUM_BLOCK;         \
            fnn_v8_##SUFFIX v = {0};                                                      \
            ptrdiff_t j = j0;                                                             \
            for (; j + 8 <= j1; j += 8) {                                                 \
                fnn_v8_##SUFFIX u;                                                        \
                __builtin_memcpy(&u, a + j, sizeof u);                                    \
                if (b != NULL) {                                                          \
                    fnn_v8_##SUFFIX w;                                                    \
                    __builtin_memcpy(&w, b + j, sizeof w);                                \
                    u *= w;                                                               \
                }                                                                         \
                v += u;                                                                   \
            }                                                                             \
            v += __builtin_shuffle(v, h);                                                 \
            v += __builtin_shuffle(v, q);                                                 \
            v += __builtin_shuffle(v, p);                                                 \
            T block = v[0];                                                               \
            for (; j < j1; ++j) block += b != NULL ? a[j] * b[j] : a[j];                  \
            s += (double)block;                                                           \
        }                                                                                 \
        return s;                                                                         \
    }

FNN_DEFINE_ROW_HELPERS(float, f32, int)
FNN_DEFINE_ROW_HELPERS(double, f64, long long)

#define FNN_DEFINE_SOFTMAX(T, SUFFIX)                                                     \
    /* Forward over `rows` contiguous rows of d elements, fnn_row_block rows at a time    \
     * phase by phase (all maxima, then all sums, then the outputs): each row's chain     \
     * of horizontal reductions is latency-bound, and rows of one phase are independent,  \
     * so the core overlaps them (256 x 33 log_softmax: 59 -> 35 ns per row). */           \
    FNN_MULTIVERSION(fnn_softmax_rows_##SUFFIX,                                           \
        (int log_mode, const T* restrict x, T* restrict y, ptrdiff_t rows, ptrdiff_t d),  \
        (log_mode, x, y, rows, d), {                                                      \
        T m[FNN_ROW_BLOCK];                                                               \
        double s[FNN_ROW_BLOCK];                                                          \
        T stage[FNN_SHORT_ROW];                                                           \
        ptrdiff_t blk = fnn_row_block(d, 2, sizeof(T));                                   \
        for (ptrdiff_t r0 = 0; r0 < rows; r0 += blk) {                                    \
            ptrdiff_t nb = rows - r0 < blk ? rows - r0 : blk;                             \
            const T* restrict xb = x + r0 * d;                                            \
            T* restrict yb = y + r0 * d;                                                  \
            for (ptrdiff_t i = 0; i < nb; ++i) m[i] = fnn_row_max_##SUFFIX(xb + i * d, d); \
            for (ptrdiff_t i = 0; i < nb; ++i)                                            \
                s[i] = fnn_row_sum_exp_##SUFFIX(xb + i * d, log_mode ? NULL : yb + i * d, \
                                                d, m[i], stage);                          \
            if (log_mode) { /* the block's logs at once, vectorised across its rows */    \
                _Pragma("omp simd")                                                       \
                for (ptrdiff_t i = 0; i < nb; ++i) s[i] = fnn_log_f64(s[i]);              \
            }                                                                             \
            for (ptrdiff_t i = 0; i < nb; ++i) {                                          \
                const T* restrict xr = xb + i * d;                                        \
                T* restrict yr = yb + i * d;                                              \
                if (log_mode) {                                                           \
                    T ls = (T)s[i], mi = m[i];                                            \
                    for (ptrdiff_t j = 0; j < d; ++j) yr[j] = (xr[j] - mi) - ls;          \
                } else {                                                                  \
                    T inv = (T)(1.0 / s[i]);                                              \
                    for (ptrdiff_t j = 0; j < d; ++j) yr[j] *= inv;                       \
                }                                                                         \
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
    /* Backward over `rows` contiguous rows of d elements, in blocks as the forward. */   \
    FNN_MULTIVERSION(fnn_softmax_backward_rows_##SUFFIX,                                  \
        (int log_mode, const T* restrict g, const T* restrict y, T* restrict gx,          \
         ptrdiff_t rows, ptrdiff_t d),                                                    \
        (log_mode, g, y, gx, rows, d), {                                                  \
        T st[FNN_ROW_BLOCK];                                                              \
        ptrdiff_t blk = fnn_row_block(d, 3, sizeof(T));                                   \
        for (ptrdiff_t r0 = 0; r0 < rows; r0 += blk) {                                    \
            ptrdiff_t nb = rows - r0 < blk ? rows - r0 : blk;                             \
            const T* restrict gb = g + r0 * d;                                            \
            const T* restrict yb = y + r0 * d;                                            \
            for (ptrdiff_t i = 0; i < nb; ++i)                                            \
                st[i] = (T)fnn_row_dot_##SUFFIX(gb + i * d, log_mode ? NULL : yb + i * d, \
                                                d);                                       \
            for (ptrdiff_t i = 0; i < nb; ++i) {                                          \
                const T* restrict gr = gb + i * d;                                        \
                const T* restrict yr = yb + i * d;                                        \
                T* restrict out = gx + (r0 + i) * d;                                      \
                T si = st[i];                                                             \
                if (log_mode) {                                                           \
                    _Pragma("omp simd")                                                   \
                    for (ptrdiff_t j = 0; j < d; ++j)                                     \
                        out[j] = gr[j] - fnn_exp_##SUFFIX(yr[j]) * si;                    \
                } else {                                                                  \
                    for (ptrdiff_t j = 0; j < d; ++j) out[j] = yr[j] * (gr[j] - si);      \
                }                                                                         \
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
