/* Losses and their gradients with respect to the input, float and double, following
 * PyTorch's definitions:
 *   mse                  (x - t)^2                       grad 2 (x - t)
 *   binary_cross_entropy -(t log p + (1 - t) log(1 - p)), each log clamped at -100
 *                                                        grad (p - t) / max(p (1 - p), 1e-12)
 *   cross_entropy        logsumexp(x_row) - x_row[target] grad softmax(x_row) - onehot
 * Loops run over a flat range [0, n) (or `rows` rows for cross-entropy) so that the
 * caller can hand chunks to threads.  *_sum functions return a double sum of the
 * per-element losses of the chunk; the caller adds the chunks in a fixed order.
 * `scale` is 1 for "sum" and 1 / count for "mean".
 */
#ifndef FNN_LOSS_KERNELS_H
#define FNN_LOSS_KERNELS_H

#include <math.h>

#include "softmax_rows.h"

#define FNN_BCE_LOG_FLOOR (-100.0)
/* PyTorch floors the gradient's denominator at 1e-12 as a float32 constant, also for
 * float64 inputs: 9.99999996e-13, which shows in the gradient at p = 0 or 1. */
#define FNN_BCE_EPS ((double)1e-12f)

/* -(t log p + (1 - t) log(1 - p)) with PyTorch's clamp of each log at -100, in double. */
FNN_INLINE double fnn_bce_term(double p, double t) {
    double log_p = fnn_log_f64(p), log_q = fnn_log1p_f64(-p);
    log_p = log_p < FNN_BCE_LOG_FLOOR ? FNN_BCE_LOG_FLOOR : log_p;
    log_q = log_q < FNN_BCE_LOG_FLOOR ? FNN_BCE_LOG_FLOOR : log_q;
    return -(t * log_p + (1.0 - t) * log_q);
}

#define FNN_DEFINE_LOSSES(T, SUFFIX)                                                      \
    FNN_MULTIVERSION(fnn_mse_sum_##SUFFIX,                                                \
        (const T* restrict x, const T* restrict t, ptrdiff_t n, double* restrict sum),    \
        (x, t, n, sum), {                                                                 \
        double s = 0.0;                                                                   \
        _Pragma("omp simd reduction(+: s)")                                               \
        for (ptrdiff_t i = 0; i < n; ++i) {                                               \
            double d = (double)x[i] - (double)t[i];                                       \
            s += d * d;                                                                   \
        }                                                                                 \
        *sum = s;                                                                         \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_mse_each_##SUFFIX,                                               \
        (const T* restrict x, const T* restrict t, T* restrict out, ptrdiff_t n),         \
        (x, t, out, n), {                                                                 \
        for (ptrdiff_t i = 0; i < n; ++i) {                                               \
            T d = x[i] - t[i];                                                            \
            out[i] = d * d;                                                               \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_mse_grad_##SUFFIX,                                               \
        (const T* restrict x, const T* restrict t, T* restrict out, ptrdiff_t n,          \
         T scale),                                                                        \
        (x, t, out, n, scale), {                                                          \
        T two_scale = 2 * scale;                                                          \
        for (ptrdiff_t i = 0; i < n; ++i) out[i] = two_scale * (x[i] - t[i]);             \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_bce_sum_##SUFFIX,                                                \
        (const T* restrict x, const T* restrict t, ptrdiff_t n, double* restrict sum),    \
        (x, t, n, sum), {                                                                 \
        double s = 0.0;                                                                   \
        _Pragma("omp simd reduction(+: s)")                                               \
        for (ptrdiff_t i = 0; i < n; ++i) s += fnn_bce_term((double)x[i], (double)t[i]);  \
        *sum = s;                                                                         \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_bce_each_##SUFFIX,                                               \
        (const T* restrict x, const T* restrict t, T* restrict out, ptrdiff_t n),         \
        (x, t, out, n), {                                                                 \
        for (ptrdiff_t i = 0; i < n; ++i)                                                 \
            out[i] = (T)fnn_bce_term((double)x[i], (double)t[i]);                         \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_bce_grad_##SUFFIX,                                               \
        (const T* restrict x, const T* restrict t, T* restrict out, ptrdiff_t n,          \
         T scale),                                                                        \
        (x, t, out, n, scale), {                                                          \
        for (ptrdiff_t i = 0; i < n; ++i) {                                               \
            double p = (double)x[i];                                                      \
            double den = p * (1.0 - p);                                                   \
            den = den > FNN_BCE_EPS ? den : FNN_BCE_EPS;                                  \
            out[i] = (T)((p - (double)t[i]) / den * (double)scale);                       \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    /* Elements [lo, hi) of a pointwise loss, mse or (bce != 0) binary cross-entropy:     \
     * mode 0 their sum into *sum, 1 the per-element losses into out, 2 the gradient      \
     * times scale into out (out is not read in mode 0). */                               \
    static void fnn_pointwise_chunk_##SUFFIX(int bce, int mode, const T* x, const T* t,   \
                                             T* out, ptrdiff_t lo, ptrdiff_t hi,          \
                                             double scale, double* sum) {                 \
        ptrdiff_t n = hi - lo;                                                            \
        x += lo;                                                                          \
        t += lo;                                                                          \
        if (mode == 0) {                                                                  \
            if (bce) fnn_bce_sum_##SUFFIX(x, t, n, sum);                                  \
            else fnn_mse_sum_##SUFFIX(x, t, n, sum);                                      \
        } else if (mode == 1) {                                                           \
            if (bce) fnn_bce_each_##SUFFIX(x, t, out + lo, n);                            \
            else fnn_mse_each_##SUFFIX(x, t, out + lo, n);                                \
        } else {                                                                          \
            if (bce) fnn_bce_grad_##SUFFIX(x, t, out + lo, n, (T)scale);                  \
            else fnn_mse_grad_##SUFFIX(x, t, out + lo, n, (T)scale);                      \
        }                                                                                 \
    }                                                                                     \
                                                                                          \
    /* nll[r] = logsumexp(x[r, :]) - x[r, target[r]] for rows r of c logits. */           \
    FNN_MULTIVERSION(fnn_cross_entropy_rows_##SUFFIX,                                     \
        (const T* restrict x, const ptrdiff_t* restrict target, ptrdiff_t rows,           \
         ptrdiff_t c, double* restrict nll),                                              \
        (x, target, rows, c, nll), {                                                      \
        T m[FNN_ROW_BLOCK]; /* phases over blocks of rows, as in fnn_softmax_rows */     \
        T stage[FNN_SHORT_ROW];                                                           \
        for (ptrdiff_t r0 = 0; r0 < rows; r0 += FNN_ROW_BLOCK) {                          \
            ptrdiff_t nb = rows - r0 < FNN_ROW_BLOCK ? rows - r0 : FNN_ROW_BLOCK;         \
            const T* restrict xb = x + r0 * c;                                            \
            for (ptrdiff_t i = 0; i < nb; ++i) m[i] = fnn_row_max_##SUFFIX(xb + i * c, c); \
            for (ptrdiff_t i = 0; i < nb; ++i)                                            \
                nll[r0 + i] = fnn_row_sum_exp_##SUFFIX(xb + i * c, NULL, c, m[i], stage); \
            _Pragma("omp simd") /* the logs vectorised across the block's rows */          \
            for (ptrdiff_t i = 0; i < nb; ++i)                                            \
                nll[r0 + i] = fnn_log_f64(nll[r0 + i]);                                   \
            for (ptrdiff_t i = 0; i < nb; ++i)                                            \
                nll[r0 + i] -= (double)xb[i * c + target[r0 + i]] - (double)m[i];         \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    /* gx[r, :] = (softmax(x[r, :]) - onehot(target[r])) * scale. */                      \
    static void fnn_cross_entropy_grad_rows_##SUFFIX(const T* x, const ptrdiff_t* target, \
                                                     T* gx, ptrdiff_t rows, ptrdiff_t c,  \
                                                     T scale) {                           \
        fnn_softmax_rows_##SUFFIX(FNN_SOFTMAX, x, gx, rows, c);                           \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                            \
            T* gr = gx + r * c;                                                           \
            gr[target[r]] -= 1;                                                           \
            if (scale != 1)                                                               \
                for (ptrdiff_t j = 0; j < c; ++j) gr[j] *= scale;                         \
        }                                                                                 \
    }

FNN_DEFINE_LOSSES(float, f32)
FNN_DEFINE_LOSSES(double, f64)

#endif /* FNN_LOSS_KERNELS_H */
