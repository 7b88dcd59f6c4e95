/* Vectorisable math for the CPU kernels: exp, expm1, sigmoid, tanh and the activation
 * derivatives, in float and double, log and log1p in double.
 *
 * Why not libm?  A call to expf() cannot be vectorised by gcc without -ffast-math and
 * libmvec, and a scalar expf costs ~10 cycles: too slow for a bandwidth-bound kernel
 * (a 2-core machine copies ~3 G floats/s).  The functions here are branch-free
 * (selects only), use no lookup tables and no float->int conversion, so a loop that
 * calls them vectorises with whatever ISA the enclosing function is compiled for
 * (see FNN_TARGET_AVX2 below).
 *
 * Accuracy: exp is a Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, followed by a
 * polynomial (fitted degree 6 in float: < 2 ulp; Taylor degree 13 in double: < 2 ulp), scaled by
 * 2^n built from the exponent bits.  Results underflow to exactly 0 below the smallest
 * normal number (exp(-inf) == 0, as softmax masking needs) and overflow to +inf once
 * round(x / ln2) reaches the exponent range's end (x > 88.38 in float, a hair before
 * expf's own overflow at 88.72; x > 709.44 in double).  NaN in gives NaN out.
 */
#ifndef FNN_ACTIVATION_SIMD_H
#define FNN_ACTIVATION_SIMD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FNN_INLINE static inline __attribute__((always_inline))

/* Activation codes shared by every kernel (fastnn/_backends/cpu passes them in). */
enum { FNN_ACT_IDENTITY = 0, FNN_ACT_RELU = 1, FNN_ACT_SIGMOID = 2, FNN_ACT_TANH = 3 };

/* Run-time CPU dispatch: FNN_X86, FNN_TARGET_AVX2/AVX512 and fnn_cpu_has_*(). */
#include "cpu_features.h"

/* ------------------------------------------------------------------------------------
 * Bit casts (memcpy compiles to a register move and keeps strict aliasing happy).
 * ---------------------------------------------------------------------------------- */
FNN_INLINE uint32_t fnn_bits_f32(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
FNN_INLINE float fnn_from_bits_f32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
FNN_INLINE uint64_t fnn_bits_f64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
FNN_INLINE double fnn_from_bits_f64(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

FNN_INLINE float fnn_abs_f32(float x) { return fnn_from_bits_f32(fnn_bits_f32(x) & 0x7fffffffu); }
FNN_INLINE double fnn_abs_f64(double x) {
    return fnn_from_bits_f64(fnn_bits_f64(x) & 0x7fffffffffffffffull);
}
/* |magnitude| with the sign bit of sign. */
FNN_INLINE float fnn_copysign_f32(float magnitude, float sign) {
    return fnn_from_bits_f32((fnn_bits_f32(magnitude) & 0x7fffffffu) |
                             (fnn_bits_f32(sign) & 0x80000000u));
}
FNN_INLINE double fnn_copysign_f64(double magnitude, double sign) {
    return fnn_from_bits_f64((fnn_bits_f64(magnitude) & 0x7fffffffffffffffull) |
                             (fnn_bits_f64(sign) & 0x8000000000000000ull));
}

/* ------------------------------------------------------------------------------------
 * exp / expm1 in float.  The reduction x = n ln2 + r finds n = round(x / ln2) with the
 * "add 1.5 * 2^23" trick, whose low mantissa bits then hold n: no float->int conversion
 * (undefined for NaN in C), so NaN flows through as NaN.
 * ---------------------------------------------------------------------------------- */
#define FNN_EXPF_LO (-87.33654f) /* below: exp underflows the normal range -> 0 */
#define FNN_EXPF_HI 89.0f        /* n reaches 128 there: 2^n is +inf, and so is exp */

/* r reduced and 2^n, for |x| within [FNN_EXPF_LO, FNN_EXPF_HI] (callers clamp). */
FNN_INLINE float fnn_reduce_f32(float x, float* scale) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    uint32_t n_bits = fnn_bits_f32(t) - fnn_bits_f32(magic); /* n as two's complement */
    *scale = fnn_from_bits_f32((n_bits + 127u) << 23);
    float r = x - n * 0.693145751953125f; /* ln2, high part: n * hi is exact */
    return r - n * 1.42860682030941723212e-6f;
}

/* exp(r) - 1 for |r| <= ln2 / 2: r + r^2 (c2 + c3 r + ... + c6 r^4) (Horner), the c_k
 * fitted here for the least maximum relative error of exp on that interval (iteratively
 * reweighted least squares): 4e-9, below float's rounding; one term fewer than Taylor. */
FNN_INLINE float fnn_expm1_poly_f32(float r) {
    float p = 0.0013871090355158811f;
    p = p * r + 0.008369502049320476f;
    p = p * r + 0.04166741603656163f;
    p = p * r + 0.16666513224539886f;
    p = p * r + 0.4999999735048168f;
    p = p * r + 1.0f;
    return p * r;
}

/* Clamp x to [lo, hi], NaN staying NaN.  Written as `bound < x ? bound : x` (and >) so
 * that it compiles to one vminps / vmaxps, whose NaN rule (return the second operand)
 * keeps a NaN x. */
FNN_INLINE float fnn_clamp_f32(float x, float lo, float hi) {
    x = hi < x ? hi : x;
    return lo > x ? lo : x;
}
FNN_INLINE double fnn_clamp_f64(double x, double lo, double hi) {
    x = hi < x ? hi : x;
    return lo > x ? lo : x;
}

/* The exp family for one type T (suffix SFX, range [LO, HI]), on fnn_reduce_SFX and
 * fnn_expm1_poly_SFX; instantiated for float below and for double after its reduction.
 *   exp:         exp(x), results below the normal range flushed to exactly 0
 *                (exp(-inf) == 0).
 *   exp_nonpos:  exp(x) for x <= 0 (softmax's x - max): no upper clamp needed; NaN stays
 *                NaN.
 *   exp_clamped: exp(x) without the flush to 0 (x below LO gives exp(LO) ~ the smallest
 *                normal): one select less, for callers to whom that and 0 are the same
 *                (sigmoid).
 *   expm1_pos:   expm1(x) for 0 <= x <= HI (callers clamp; tanh needs only that half):
 *                2^n expm1(r) + (2^n - 1), exact for small x where n = 0. */
#define FNN_DEFINE_EXP_FAMILY(T, SFX, LO, HI)                                            \
    FNN_INLINE T fnn_exp_##SFX(T x) {                                                    \
        T scale;                                                                         \
        T r = fnn_reduce_##SFX(fnn_clamp_##SFX(x, LO, HI), &scale);                      \
        T y = (fnn_expm1_poly_##SFX(r) + (T)1) * scale;                                  \
        return x < LO ? (T)0 : y;                                                        \
    }                                                                                    \
    FNN_INLINE T fnn_exp_nonpos_##SFX(T x) {                                             \
        T scale;                                                                         \
        T r = fnn_reduce_##SFX(LO > x ? LO : x, &scale);                                 \
        T y = (fnn_expm1_poly_##SFX(r) + (T)1) * scale;                                  \
        return x < LO ? (T)0 : y;                                                        \
    }                                                                                    \
    FNN_INLINE T fnn_exp_clamped_##SFX(T x) {                                            \
        T scale;                                                                         \
        T r = fnn_reduce_##SFX(fnn_clamp_##SFX(x, LO, HI), &scale);                      \
        return (fnn_expm1_poly_##SFX(r) + (T)1) * scale;                                 \
    }                                                                                    \
    FNN_INLINE T fnn_expm1_pos_##SFX(T x) {                                              \
        T scale;                                                                         \
        T r = fnn_reduce_##SFX(x, &scale);                                               \
        return fnn_expm1_poly_##SFX(r) * scale + (scale - (T)1);                         \
    }

FNN_DEFINE_EXP_FAMILY(float, f32, FNN_EXPF_LO, FNN_EXPF_HI)

/* ------------------------------------------------------------------------------------
 * exp / expm1 in double: the same scheme with 1.5 * 2^52 and a degree-13 polynomial.
 * ---------------------------------------------------------------------------------- */
#define FNN_EXP_LO (-708.3964185322641) /* exp(FNN_EXP_LO) ~ 2^-1022 */
#define FNN_EXP_HI 710.0                /* n reaches 1024: +inf */

FNN_INLINE double fnn_reduce_f64(double x, double* scale) {
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double t = x * 1.4426950408889634074 + magic;
    double n = t - magic;
    uint64_t n_bits = fnn_bits_f64(t) - fnn_bits_f64(magic);
    *scale = fnn_from_bits_f64((n_bits + 1023ull) << 52);
    double r = x - n * 6.93147180369123816490e-01; /* fdlibm's ln2_hi: n * hi exact */
    return r - n * 1.90821492927058770002e-10;
}

FNN_INLINE double fnn_expm1_poly_f64(double r) {
    double p = 1.0 / 6227020800.0; /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    return p * r;
}

FNN_DEFINE_EXP_FAMILY(double, f64, FNN_EXP_LO, FNN_EXP_HI)

/* ------------------------------------------------------------------------------------
 * log and log1p in double, for the binary cross-entropy.  x = 2^e m with m in
 * [sqrt(1/2), sqrt(2)) taken from the bits (the exponent turned into a double through
 * 2^52 + e, so no int->float conversion), f = m - 1 exact, s = f / (2 + f), and
 * log(1 + f) = f - s (f - T(s^2)), T(z) = sum_{k=1..10} 2 z^k / (2k + 1) (the atanh
 * series; the next term is below 2^-60 relative).  Then e ln2 is added in two parts.
 * Valid for positive normal x; 0 and subnormals give about -709 (callers clamp: BCE
 * floors at -100); +inf and NaN give x itself.
 * ---------------------------------------------------------------------------------- */
FNN_INLINE double fnn_log_f64(double x) {
    const double two52 = 4503599627370496.0; /* 2^52 */
    uint64_t bits = fnn_bits_f64(x);
    double m = fnn_from_bits_f64((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
    double e = fnn_from_bits_f64((bits >> 52) | 0x4330000000000000ull) - two52 - 1023.0;
    int big = m > 1.4142135623730951;
    m = big ? 0.5 * m : m;
    e = big ? e + 1.0 : e;
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double t = 2.0 / 21.0;
    t = t * z + 2.0 / 19.0;
    t = t * z + 2.0 / 17.0;
    t = t * z + 2.0 / 15.0;
    t = t * z + 2.0 / 13.0;
    t = t * z + 2.0 / 11.0;
    t = t * z + 2.0 / 9.0;
    t = t * z + 2.0 / 7.0;
    t = t * z + 2.0 / 5.0;
    t = t * z + 2.0 / 3.0;
    t = t * z;
    double log_m = f - s * (f - t);
    double y = e * 6.93147180369123816490e-01 + (log_m + e * 1.90821492927058770002e-10);
    return x != x || x > 1.7976931348623157e308 ? x : y;
}

/* log(1 + y) for y >= -1, accurate for tiny y: log(u) * y / (u - 1) with u = 1 + y
 * rounded corrects u's rounding (y itself when u == 1). */
FNN_INLINE double fnn_log1p_f64(double y) {
    double u = 1.0 + y;
    double d = u - 1.0;
    double r = fnn_log_f64(u) * (y / (d == 0.0 ? 1.0 : d));
    return d == 0.0 ? y : r;
}

/* ------------------------------------------------------------------------------------
 * Activations and their derivatives f'(u) at the pre-activation u.
 *   sigmoid(x) = 1 / (1 + exp(-x)), exp clamped: accurate to the last bits for all x
 *                (exp's relative accuracy carries over), 0 and 1 at the extremes
 *   tanh(x)    = sign(x) m / (m + 2),  m = expm1(2 |x|), |x| clamped at 20 (tanh = 1 there)
 *   sigmoid'(u) = e / (1 + e)^2,  e = exp(-|u|)     (= s (1 - s), without cancellation)
 *   tanh'(u)    = 4 e / (1 + e)^2, e = exp(-2 |u|)  (= 1 - tanh^2, without cancellation)
 * ---------------------------------------------------------------------------------- */
FNN_INLINE float fnn_sigmoid_f32(float x) {
    return 1.0f / (1.0f + fnn_exp_clamped_f32(-x));
}

FNN_INLINE double fnn_sigmoid_f64(double x) {
    return 1.0 / (1.0 + fnn_exp_clamped_f64(-x));
}

FNN_INLINE float fnn_tanh_f32(float x) {
    float a = fnn_abs_f32(x);
    a = 20.0f < a ? 20.0f : a; /* one vminps; NaN stays NaN */
    float m = fnn_expm1_pos_f32(2.0f * a);
    return fnn_copysign_f32(m / (m + 2.0f), x);
}

FNN_INLINE double fnn_tanh_f64(double x) {
    double a = fnn_abs_f64(x);
    a = 20.0 < a ? 20.0 : a;
    double m = fnn_expm1_pos_f64(2.0 * a);
    return fnn_copysign_f64(m / (m + 2.0), x);
}

/* max(x, 0) with NaN kept (as PyTorch): one compare and select, a vmaxps. */
FNN_INLINE float fnn_relu_f32(float x) { return x < 0.0f ? 0.0f : x; }
FNN_INLINE double fnn_relu_f64(double x) { return x < 0.0 ? 0.0 : x; }

FNN_INLINE float fnn_activate_f32(int act, float x) {
    switch (act) {
    case FNN_ACT_RELU: return fnn_relu_f32(x);
    case FNN_ACT_SIGMOID: return fnn_sigmoid_f32(x);
    case FNN_ACT_TANH: return fnn_tanh_f32(x);
    default: return x;
    }
}

FNN_INLINE double fnn_activate_f64(int act, double x) {
    switch (act) {
    case FNN_ACT_RELU: return fnn_relu_f64(x);
    case FNN_ACT_SIGMOID: return fnn_sigmoid_f64(x);
    case FNN_ACT_TANH: return fnn_tanh_f64(x);
    default: return x;
    }
}

/* f'(u).  relu'(u) = 1 where u > 0, else 0 (PyTorch's convention at 0). */
FNN_INLINE float fnn_derivative_f32(int act, float u) {
    float e, d;
    switch (act) {
    case FNN_ACT_RELU: return u > 0.0f ? 1.0f : 0.0f;
    case FNN_ACT_SIGMOID:
        e = fnn_exp_f32(-fnn_abs_f32(u));
        d = 1.0f + e;
        return e / (d * d);
    case FNN_ACT_TANH:
        e = fnn_exp_f32(-2.0f * fnn_abs_f32(u));
        d = 1.0f + e;
        return 4.0f * e / (d * d);
    default: return 1.0f;
    }
}

FNN_INLINE double fnn_derivative_f64(int act, double u) {
    double e, d;
    switch (act) {
    case FNN_ACT_RELU: return u > 0.0 ? 1.0 : 0.0;
    case FNN_ACT_SIGMOID:
        e = fnn_exp_f64(-fnn_abs_f64(u));
        d = 1.0 + e;
        return e / (d * d);
    case FNN_ACT_TANH:
        e = fnn_exp_f64(-2.0 * fnn_abs_f64(u));
        d = 1.0 + e;
        return 4.0 * e / (d * d);
    default: return 1.0;
    }
}

#endif /* FNN_ACTIVATION_SIMD_H */
