/* The bias gradient of a convolution: per output channel k, the sum of the flat
 * contiguous (N, K, plane) grad_output over its images and positions.
 *
 * Each plane is summed FNN_BIAS_SUM_BLOCK terms at a time in T across the vector lanes
 * (fast: no conversions), the block sums in double: a float32 sum of any length keeps
 * ~1e-6 accuracy, as the softmax row sums (softmax_rows.h).  The scalar double loop
 * before it ran ~13 GB/s, the bias pass of 256 x 32 x 28 x 28 taking 2 ms on the AMD
 * EPYC, more than half of the weight gradient's time.  Compiled per instruction set
 * (FNN_MULTIVERSION: the module's elementwise level).
 */
#ifndef FNN_CONV_BIAS_SUMS_H
#define FNN_CONV_BIAS_SUMS_H

#include <stddef.h>

#include "activation_loops.h"

#define FNN_BIAS_SUM_BLOCK 512

/* gb[k] = sum over n, i of gy[(n * channels + k) * plane + i], for k in [k0, k1). */
#define FNN_DEFINE_BIAS_SUMS(T, SUFFIX)                                                   \
    FNN_MULTIVERSION(fnn_bias_sums_##SUFFIX,                                              \
        (const T* restrict gy, T* restrict gb, ptrdiff_t images, ptrdiff_t channels,      \
         ptrdiff_t plane, ptrdiff_t k0, ptrdiff_t k1),                                    \
        (gy, gb, images, channels, plane, k0, k1), {                                      \
        for (ptrdiff_t k = k0; k < k1; ++k) {                                             \
            double total = 0.0;                                                           \
            for (ptrdiff_t n = 0; n < images; ++n) {                                      \
                const T* restrict row = gy + (n * channels + k) * plane;                  \
                for (ptrdiff_t j0 = 0; j0 < plane; j0 += FNN_BIAS_SUM_BLOCK) {            \
                    ptrdiff_t j1 = plane - j0 <= FNN_BIAS_SUM_BLOCK                       \
                                       ? plane : j0 + FNN_BIAS_SUM_BLOCK;                 \
                    T block = 0;                                                          \
                    _Pragma("omp simd reduction(+: block)")                               \
                    for (ptrdiff_t j = j0; j < j1; ++j) block += row[j];                  \
                    total += (double)block;                                               \
                }                                                                         \
            }                                                                             \
            gb[k] = (T)total;                                                             \
        }                                                                                 \
    })

FNN_DEFINE_BIAS_SUMS(float, f32)
FNN_DEFINE_BIAS_SUMS(double, f64)

#endif /* FNN_CONV_BIAS_SUMS_H */
