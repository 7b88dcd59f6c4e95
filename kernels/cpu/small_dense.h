/* The backward of a small dense layer in one call of plain loops, float and double:
 * grad_input = gy @ w (m x k), grad_weight = gy^T @ x (n x k), grad_bias = the column sums
 * of gy (n), each only when its pointer is not NULL.  Single-threaded and unblocked: for
 * layers of a few thousand multiply-adds, where a trip through the GEMM dispatcher costs
 * more than the arithmetic (fastnn/_backends/cpu/_small_dense.py measures where).  The
 * inner loops run along k, contiguous in every operand, and are vectorised for AVX2/FMA
 * when the CPU has it (FNN_MULTIVERSION).  The bias sums accumulate in double, as the
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

FNN_DEFINE_SMALL_LINEAR_BACKWARD(float, f32)
FNN_DEFINE_SMALL_LINEAR_BACKWARD(double, f64)

#endif
