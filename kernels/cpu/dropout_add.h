/* Dropout and the fused residual add over flat contiguous buffers, float and double.
 * Each loop is built for the portable baseline, AVX2 and AVX-512 (FNN_MULTIVERSION of
 * activation_loops.h); elementwise.pyx splits the arrays over OpenMP threads.
 *
 * Dropout's random word for element i (its C-order position in the whole array, so any
 * split over threads gives the same mask) is splitmix64(seed + (i + 1) * golden), the
 * i-th output of Vigna's SplitMix64 generator started at `seed`; the element is kept when
 * the word's top 32 bits are >= threshold = floor(p * 2^32).  fastnn's reference, numba
 * and CUDA kernels compute the same words.
 *
 *   fnn_dropout_S(x, y, mask, n, first, seed, threshold, scale)  elements first .. first+n
 *   fnn_dropout_backward_S(g, mask, out, n, scale)              out = g * [mask != 0] * scale
 *   fnn_add_S(act, a, b, y, n)                                  y = act(a + b)
 */
#ifndef FNN_DROPOUT_ADD_H
#define FNN_DROPOUT_ADD_H

#include <stdint.h>

#include "activation_loops.h"

#define FNN_GOLDEN 0x9E3779B97F4A7C15ULL

/* Residual-add activation codes (elementwise.pyx mirrors them). */
#define FNN_ADD_IDENTITY 0
#define FNN_ADD_RELU 1
#define FNN_ADD_RELU6 2

FNN_INLINE uint64_t fnn_splitmix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#define FNN_DEFINE_DROPOUT(T, S)                                                          \
    FNN_MULTIVERSION(fnn_dropout_##S,                                                     \
        (const T* restrict x, T* restrict y, uint8_t* restrict mask, ptrdiff_t n,         \
         uint64_t first, uint64_t seed, uint32_t threshold, T scale),                     \
        (x, y, mask, n, first, seed, threshold, scale), {                                 \
        for (ptrdiff_t i = 0; i < n; ++i) {                                               \
            uint64_t word = fnn_splitmix64(seed + (first + (uint64_t)i + 1) * FNN_GOLDEN); \
            uint8_t keep = (uint32_t)(word >> 32) >= threshold;                           \
            mask[i] = keep;                                                               \
            y[i] = x[i] * (T)keep * scale;                                                \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_dropout_backward_##S,                                            \
        (const T* restrict g, const uint8_t* restrict mask, T* restrict out, ptrdiff_t n, \
         T scale),                                                                        \
        (g, mask, out, n, scale), {                                                       \
        for (ptrdiff_t i = 0; i < n; ++i) out[i] = g[i] * (T)(mask[i] != 0) * scale;      \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_add_##S,                                                         \
        (int act, const T* restrict a, const T* restrict b, T* restrict y, ptrdiff_t n),  \
        (act, a, b, y, n), {                                                              \
        ptrdiff_t i;                                                                      \
        switch (act) {                                                                    \
        case FNN_ADD_RELU:                                                                \
            for (i = 0; i < n; ++i) {                                                     \
                T s = a[i] + b[i];                                                        \
                y[i] = s < (T)0 ? (T)0 : s;                                               \
            }                                                                             \
            break;                                                                        \
        case FNN_ADD_RELU6:                                                               \
            for (i = 0; i < n; ++i) {                                                     \
                T s = a[i] + b[i];                                                        \
                y[i] = s < (T)0 ? (T)0 : (s > (T)6 ? (T)6 : s);                           \
            }                                                                             \
            break;                                                                        \
        default:                                                                          \
            for (i = 0; i < n; ++i) y[i] = a[i] + b[i];                                   \
        }                                                                                 \
    })

FNN_DEFINE_DROPOUT(float, f32)
FNN_DEFINE_DROPOUT(double, f64)

#endif
