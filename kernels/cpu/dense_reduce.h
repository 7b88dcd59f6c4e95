/* Column sums of a row-major matrix (the bias gradient, BP3), float and double.
 *
 * Sums are accumulated in double for both dtypes: a float32 sum over many rows keeps
 * its full precision.  The rows are split over threads, each summing into its own
 * partial vector; the partials are added in a fixed order, so the result does not
 * depend on timing.
 */
#ifndef FNN_DENSE_REDUCE_H
#define FNN_DENSE_REDUCE_H

#include <omp.h>
#include <stdlib.h>

#include "activation_loops.h"

#define FNN_DEFINE_COLUMN_SUMS(T, SUFFIX)                                                 \
    FNN_MULTIVERSION(fnn_column_sums_rows_##SUFFIX,                                       \
        (const T* restrict x, ptrdiff_t rows, ptrdiff_t n, double* restrict acc),         \
        (x, rows, n, acc), {                                                              \
        for (ptrdiff_t i = 0; i < rows; ++i) {                                            \
            const T* restrict row = x + i * n;                                            \
            for (ptrdiff_t j = 0; j < n; ++j) acc[j] += (double)row[j];                   \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    /* out[j] = sum_i x[i, j] for the C-contiguous (m, n) x.  0 or -1 (out of memory). */ \
    static int fnn_column_sums_##SUFFIX(const T* x, ptrdiff_t m, ptrdiff_t n, T* out,     \
                                        int threads) {                                    \
        double* acc;                                                                      \
        if (n <= 0) return 0;                                                             \
        if ((double)m * (double)n < 65536.0) threads = 1;                                 \
        if (threads > m) threads = m > 0 ? (int)m : 1;                                    \
        acc = (double*)calloc((size_t)threads * (size_t)n, sizeof(double));               \
        if (acc == NULL) return -1;                                                       \
        if (threads == 1) { /* no OpenMP region at all: even an if(0) one costs ~1 us */   \
            fnn_column_sums_rows_##SUFFIX(x, m, n, acc);                                  \
        } else {                                                                          \
            _Pragma("omp parallel for schedule(static) num_threads(threads)")             \
            for (int t = 0; t < threads; ++t) {                                           \
                ptrdiff_t r0 = m * t / threads, r1 = m * (t + 1) / threads;               \
                fnn_column_sums_rows_##SUFFIX(x + r0 * n, r1 - r0, n,                     \
                                              acc + (ptrdiff_t)t * n);                    \
            }                                                                             \
        }                                                                                 \
        for (ptrdiff_t j = 0; j < n; ++j) {                                               \
            double s = 0.0;                                                               \
            for (int t = 0; t < threads; ++t) s += acc[(ptrdiff_t)t * n + j];             \
            out[j] = (T)s;                                                                \
        }                                                                                 \
        free(acc);                                                                        \
        return 0;                                                                         \
    }

FNN_DEFINE_COLUMN_SUMS(float, f32)
FNN_DEFINE_COLUMN_SUMS(double, f64)

#endif /* FNN_DENSE_REDUCE_H */
