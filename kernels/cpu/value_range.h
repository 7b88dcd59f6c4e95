/* (min, max) of a contiguous run in one pass, for the checks fastnn.ops makes of class
 * targets, pooling indices and probabilities before a kernel reads them.
 *
 * Integers compare directly.  Floats are mapped to integers of the same order (the
 * sign-magnitude bits made two's complement), so the loop is integer-only: gcc
 * vectorises it without fast-math, and a NaN is counted apart.  Each loop is compiled
 * for the baseline, AVX2 and AVX-512 (FNN_MULTIVERSION).
 */
#ifndef FNN_VALUE_RANGE_H
#define FNN_VALUE_RANGE_H

#include <stdint.h>

#include "activation_loops.h"

typedef uint32_t __attribute__((may_alias)) fnn_u32_alias;
typedef uint64_t __attribute__((may_alias)) fnn_u64_alias;

/* The order-preserving integer key of a float's bits, and back (the map is its own
 * inverse): positives keep their bits, negatives get their magnitude bits flipped. */
FNN_INLINE int32_t fnn_order_key_f32(uint32_t bits) {
    return (int32_t)(bits ^ ((uint32_t)((int32_t)bits >> 31) & 0x7fffffffu));
}
FNN_INLINE int64_t fnn_order_key_f64(uint64_t bits) {
    return (int64_t)(bits ^ ((uint64_t)((int64_t)bits >> 63) & 0x7fffffffffffffffull));
}

#define FNN_INT_RANGE(NAME, T)                                                            \
    FNN_MULTIVERSION(NAME, (const T* x, ptrdiff_t n, int64_t* lo, int64_t* hi),           \
                     (x, n, lo, hi), {                                                    \
        T a = x[0], b = x[0];                                                             \
        for (ptrdiff_t i = 0; i < n; ++i) {                                               \
            T v = x[i];                                                                   \
            a = v < a ? v : a;                                                            \
            b = v > b ? v : b;                                                            \
        }                                                                                 \
        *lo = (int64_t)a;                                                                 \
        *hi = (int64_t)b;                                                                 \
    })

FNN_INT_RANGE(fnn_range_i32, int32_t)
FNN_INT_RANGE(fnn_range_i64, int64_t)

/* lo/hi receive the keys of the least and greatest values; nan is nonzero if any NaN. */
#define FNN_REAL_RANGE(NAME, U, ALIAS, K, KEY, ABS, INF)                                  \
    FNN_MULTIVERSION(NAME, (const void* x, ptrdiff_t n, int64_t* lo, int64_t* hi,         \
                            int64_t* nan), (x, n, lo, hi, nan), {                         \
        const ALIAS* u = (const ALIAS*)x;                                                 \
        K a = KEY(u[0]), b = a;                                                           \
        K nans = 0;                                                                       \
        for (ptrdiff_t i = 0; i < n; ++i) {                                               \
            U bits = u[i];                                                                \
            K k = KEY(bits);                                                              \
            nans |= (K)((bits & ABS) > INF);                                              \
            a = k < a ? k : a;                                                            \
            b = k > b ? k : b;                                                            \
        }                                                                                 \
        *lo = (int64_t)a;                                                                 \
        *hi = (int64_t)b;                                                                 \
        *nan = (int64_t)nans;                                                             \
    })

FNN_REAL_RANGE(fnn_range_f32, uint32_t, fnn_u32_alias, int32_t, fnn_order_key_f32,
               0x7fffffffu, 0x7f800000u)
FNN_REAL_RANGE(fnn_range_f64, uint64_t, fnn_u64_alias, int64_t, fnn_order_key_f64,
               0x7fffffffffffffffull, 0x7ff0000000000000ull)

/* The float (double) whose order key is k. */
static inline double fnn_from_key_f32(int64_t k) {
    uint32_t bits = (uint32_t)fnn_order_key_f32((uint32_t)(int32_t)k);
    float f;
    memcpy(&f, &bits, 4);
    return (double)f;
}
static inline double fnn_from_key_f64(int64_t k) {
    uint64_t bits = (uint64_t)fnn_order_key_f64((uint64_t)k);
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

#endif /* FNN_VALUE_RANGE_H */
