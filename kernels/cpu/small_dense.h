/* A small dense layer in one call of plain loops, float and double.  The backward:
 * grad_input = gy @ w (m x k), grad_weight = gy^T @ x (n x k), grad_bias = the column sums
 * of gy (n), each only when its pointer is not NULL.  Single-threaded and unblocked: for
 * layers of a few thousand multiply-adds, where a trip through the GEMM dispatcher costs
 * more than the arithmetic (fastnn/_backends/cpu/_small_dense.py measures where).  The
 * inner loops run along k, contiguous in every operand, and are vectorised for the module's
 * elementwise level, AVX2/FMA or AVX-512 (FNN_MULTIVERSION).  The bias sums accumulate in double, as the
 * column sums of dense_reduce.h do. */
#ifndef FNN_SMALL_DENSE_H
#define FNN_SMALL_DENSE_H

#include <stddef.h>

#include "activation_loops.h"

#define FNN_DEFINE_SMALL_LINEAR_BACKWARD(T, SUFFIX)                                       \
    FNN_MULTIVERSION(fnn_small_linear_backward_##SUFFIX,                                  \
        (const T* restrict gy, const T* restrict x, const T* restrict w, T* restrict gi,  \
         T* restrict gw, T* restrict gb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k),          \
        (gy, x, w, gi, gw, gb, m, n, k), {                                                \
        ptrdiff_t i, j, p;                                                                \
        if (gi != NULL) {                                                                 \
            for (i = 0; i < m; ++i) {                                                     \
                T* restrict row = gi + i * k;                                             \
                for (p = 0; p < k; ++p) row[p] = 0;                                       \
                for (j = 0; j < n; ++j) {                                                 \
                    const T g = gy[i * n + j];                                            \
                    const T* restrict wj = w + j * k;                                     \
                    for (p = 0; p < k; ++p) row[p] += g * wj[p];                          \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        if (gw != NULL) {                                                                 \
            for (j = 0; j < n; ++j) {                                                     \
                T* restrict row = gw + j * k;                                             \
                for (p = 0; p < k; ++p) row[p] = 0;                                       \
                for (i = 0; i < m; ++i) {                                                 \
                    const T g = gy[i * n + j];                                            \
                    const T* restrict xi = x + i * k;                                     \
                    for (p = 0; p < k; ++p) row[p] += g * xi[p];                          \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        if (gb != NULL) {                                                                 \
            for (j = 0; j < n; ++j) {                                                     \
                double s = 0.0;                                                           \
                for (i = 0; i < m; ++i) s += (double)gy[i * n + j];                       \
                gb[j] = (T)s;                                                             \
            }                                                                             \
        }                                                                                 \
    })

/* y = act(x @ w^T + bias) for x (m, k), w (n, k), bias (n) or NULL, y (m, n): one dot
 * product along k per output, in eight partial sums (vectorisable without reordering
 * anything the compiler may not), then the bias and the activation (activation_simd.h
 * codes). */
#define FNN_DEFINE_SMALL_LINEAR(T, SUFFIX)                                                \
    FNN_MULTIVERSION(fnn_small_linear_##SUFFIX,                                           \
        (const T* restrict x, const T* restrict w, const T* restrict bias,               \
         T* restrict y, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, int act),                 \
        (x, w, bias, y, m, n, k, act), {                                                  \
        ptrdiff_t i, j, p;                                                                \
        int l;                                                                            \
        for (i = 0; i < m; ++i) {                                                         \
            const T* restrict xi = x + i * k;                                             \
            for (j = 0; j < n; ++j) {                                                     \
                const T* restrict wj = w + j * k;                                         \
                T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                      \
                T s = 0;                                                                  \
                for (p = 0; p + 8 <= k; p += 8)                                           \
                    for (l = 0; l < 8; ++l) acc[l] += xi[p + l] * wj[p + l];              \
                for (; p < k; ++p) s += xi[p] * wj[p];                                    \
                s += ((acc[0] + acc[1]) + (acc[2] + acc[3]))                              \
                     + ((acc[4] + acc[5]) + (acc[6] + acc[7]));                           \
                if (bias != NULL) s += bias[j];                                           \
                y[i * n + j] = fnn_activate_##SUFFIX(act, s);                             \
            }                                                                             \
        }                                                                                 \
    })

FNN_DEFINE_SMALL_LINEAR_BACKWARD(float, f32)
FNN_DEFINE_SMALL_LINEAR_BACKWARD(double, f64)
FNN_DEFINE_SMALL_LINEAR(float, f32)
FNN_DEFINE_SMALL_LINEAR(double, f64)

#endif
