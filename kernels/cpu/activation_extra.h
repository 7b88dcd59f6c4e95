/* hardtanh (relu6), leaky_relu, silu and gelu (exact and tanh approximation), forward
 * and backward, float and double, over flat contiguous buffers.
 *
 *   fnn_xact_forward_f32 / _f64(act, x, y, n, p0, p1)         y = f(x)
 *   fnn_xact_backward_f32 / _f64(act, g, v, out, n, p0, p1)   out = g * f'
 *
 * Parameters: hardtanh p0 = min_val, p1 = max_val; leaky_relu p0 = negative_slope.
 * The backward of hardtanh and leaky_relu reads the forward OUTPUT (v = y): hardtanh
 * g where p0 < y < p1 (NaN passes g, as torch's hardtanh_backward), leaky_relu g where
 * y > 0 else p0 g (valid for p0 >= 0, checked by the caller).  silu and gelu read the
 * forward INPUT (v = x).
 *
 * Like activation_loops.h, every loop is compiled for the baseline, AVX2/FMA and AVX-512
 * (FNN_MULTIVERSION: the module's elementwise level) and calls only branch-free functions, so gcc vectorises it; y may
 * be x itself (in place: element i is read before it is written, and by nothing else).
 *
 * erf in float is fitted here (see fnn_erf_f32); in double it is libm's erf (exact to an
 * ulp, not vectorised).
 */
#ifndef FNN_ACTIVATION_EXTRA_H
#define FNN_ACTIVATION_EXTRA_H

#include <math.h>

#include "activation_loops.h"

enum {
    FNN_XACT_HARDTANH = 0,
    FNN_XACT_LEAKY_RELU = 1,
    FNN_XACT_SILU = 2,
    FNN_XACT_GELU = 3,
    FNN_XACT_GELU_TANH = 4
};

#define FNN_SQRT1_2 0.70710678118654752440
#define FNN_INV_SQRT_2PI 0.39894228040143267794 /* 1 / sqrt(2 pi) */
#define FNN_GELU_BETA 0.79788456080286535588    /* sqrt(2 / pi) */
#define FNN_GELU_KAPPA 0.044715
/* |x| beyond which the tanh-approximation's cubic is evaluated at the bound: tanh has
 * long saturated to +-1 there (its argument exceeds 3e4), and x^3 can no longer overflow
 * to inf (which would turn 0 * inf into NaN in the derivative). */
#define FNN_GELU_CUBIC_BOUND 100.0

/* ------------------------------------------------------------------------------------
 * erf in float, branch-free: both pieces are computed, one is selected.
 *   |x| <= 0.921875:  x P(x^2), P of degree 5
 *   0.921875 < |x| < 4:  1 - exp(Q(|x|)), Q of degree 7 fitting log(erfc) (erfc(4) is
 *   below float's half-ulp of 1, so erf is 1 beyond: |x| is clamped at 4)
 * Coefficients fitted (iteratively reweighted least squares) for the least maximum
 * error; measured against scipy's erf over [-6, 6] and [1e-38, 1]: < 2.5 ulp.
 * ---------------------------------------------------------------------------------- */
FNN_INLINE float fnn_erf_f32(float x) {
    /* Both polynomials in Estrin's scheme (short dependency chains); degrees are the
     * lowest that keep 2.5 ulp (one less in P or Q costs 13 ulp and more). */
    float a = fnn_abs_f32(x);
    float s = a * a, s2 = s * s, s4 = s2 * s2;
    float p01 = -0.37612494826316833f * s + 1.1283791065216064f;
    float p23 = -0.026766633614897728f * s + 0.1128181666135788f;
    float p45 = -0.0005990986246615648f * s + 0.0049932063557207584f;
    float small = a * ((p23 * s2 + p01) + p45 * s4);
    float t = 4.0f < a ? 4.0f : a; /* NaN stays NaN (and is selected below) */
    float t2 = t * t, t4 = t2 * t2;
    float q01 = -1.1266131401062012f * t - 0.0005497094243764877f;
    float q23 = -0.10400540381669998f * t - 0.6381544470787048f;
    float q45 = -0.003508462803438306f * t + 0.02291281148791313f;
    float q67 = -1.383624203299405e-05f * t + 0.00032708022627048194f;
    float q = (q23 * t2 + q01) + (q67 * t2 + q45) * t4;
    /* q is within [-17.7, -1.5] for t in [0.92, 4]: exp needs no clamping, and at the
     * clamp t = 4, 1 - exp(q) rounds to 1 already */
    float scale;
    float r = fnn_reduce_f32(q, &scale);
    float large = 1.0f - (fnn_expm1_poly_f32(r) + 1.0f) * scale;
    return fnn_copysign_f32(a > 0.921875f ? large : small, x);
}

FNN_INLINE double fnn_erf_f64(double x) { return erf(x); }

/* ------------------------------------------------------------------------------------
 * The functions, T in {float, double}, M the suffix of the activation_simd.h functions.
 * ---------------------------------------------------------------------------------- */
#define FNN_DEFINE_XACT_FUNCTIONS(T, M)                                                   \
    /* hardtanh: clamp to [lo, hi], NaN kept */                                           \
    FNN_INLINE T fnn_hardtanh_##M(T x, T lo, T hi) { return fnn_clamp_##M(x, lo, hi); }   \
    FNN_INLINE T fnn_leaky_relu_##M(T x, T slope) { return x > (T)0 ? x : x * slope; }    \
    /* x sigmoid(x) = x / (1 + exp(-x)): -0 for x -> -inf, NaN at -inf (as torch) */      \
    FNN_INLINE T fnn_silu_##M(T x) { return x / ((T)1 + fnn_exp_clamped_##M(-x)); }       \
    /* s (1 + x (1 - s)), s = sigmoid(x); s and 1 - s both from e = exp(-|x|) */          \
    FNN_INLINE T fnn_silu_grad_##M(T x) {                                                 \
        T e = fnn_exp_##M(-fnn_abs_##M(x));                                               \
        T p = (T)1 / ((T)1 + e);                                                          \
        T q = e * p;                                                                      \
        T s = x >= (T)0 ? p : q;                                                          \
        T c = x >= (T)0 ? q : p;                                                          \
        return s * ((T)1 + x * c);                                                        \
    }                                                                                     \
    /* Phi(x) = (1 + erf(x / sqrt 2)) / 2 */                                              \
    FNN_INLINE T fnn_phi_##M(T x) {                                                       \
        return (T)0.5 * ((T)1 + fnn_erf_##M(x * (T)FNN_SQRT1_2));                         \
    }                                                                                     \
    FNN_INLINE T fnn_gelu_##M(T x) { return x * fnn_phi_##M(x); }                         \
    /* Phi(x) + x phi(x) */                                                               \
    FNN_INLINE T fnn_gelu_grad_##M(T x) {                                                 \
        T pdf = fnn_exp_##M((T)-0.5 * x * x) * (T)FNN_INV_SQRT_2PI;                       \
        return fnn_phi_##M(x) + x * pdf;                                                  \
    }                                                                                     \
    /* sqrt(2/pi) (x + kappa x^3), with x bounded (FNN_GELU_CUBIC_BOUND) */               \
    FNN_INLINE T fnn_gelu_inner_##M(T x, T* slope) {                                      \
        T b = fnn_clamp_##M(x, (T)-FNN_GELU_CUBIC_BOUND, (T)FNN_GELU_CUBIC_BOUND);        \
        T b2 = b * b;                                                                     \
        *slope = (T)FNN_GELU_BETA * ((T)1 + (T)(3 * FNN_GELU_KAPPA) * b2);                \
        return (T)FNN_GELU_BETA * b * ((T)1 + (T)FNN_GELU_KAPPA * b2);                    \
    }                                                                                     \
    /* x (1 + tanh(u)) / 2 = x sigmoid(2u) = x / (1 + exp(-2u)): no cancellation in     \
     * 1 + tanh(u) for negative x */                                                      \
    FNN_INLINE T fnn_gelu_tanh_##M(T x) {                                                 \
        T slope;                                                                          \
        T u = fnn_gelu_inner_##M(x, &slope);                                              \
        return x / ((T)1 + fnn_exp_clamped_##M((T)-2 * u));                              \
    }                                                                                     \
    /* sigmoid(2u) + x / 2 sech^2(u) u'; both from e = exp(-2 |u|):                       \
     * sigmoid(2u) = 1 / (1 + e) or e / (1 + e), sech^2(u) = 4e / (1 + e)^2 */            \
    FNN_INLINE T fnn_gelu_tanh_grad_##M(T x) {                                            \
        T slope;                                                                          \
        T u = fnn_gelu_inner_##M(x, &slope);                                              \
        T e = fnn_exp_##M((T)-2 * fnn_abs_##M(u));                                        \
        T r = (T)1 / ((T)1 + e);                                                          \
        T s = u >= (T)0 ? r : e * r;                                                      \
        return s + (T)2 * x * (e * r * r) * slope;                                        \
    }

FNN_DEFINE_XACT_FUNCTIONS(float, f32)
FNN_DEFINE_XACT_FUNCTIONS(double, f64)

/* ------------------------------------------------------------------------------------
 * Loops.  One switch outside each loop, so that every loop body is branch-free.
 * ---------------------------------------------------------------------------------- */
#define FNN_DEFINE_XACT_LOOPS(T, M)                                                       \
    FNN_MULTIVERSION(fnn_xact_forward_##M,                                                \
        (int act, const T* x, T* y, ptrdiff_t n, T p0, T p1), (act, x, y, n, p0, p1), {   \
        ptrdiff_t i;                                                                      \
        switch (act) {                                                                    \
        case FNN_XACT_HARDTANH:                                                           \
            for (i = 0; i < n; ++i) y[i] = fnn_hardtanh_##M(x[i], p0, p1);                \
            break;                                                                        \
        case FNN_XACT_LEAKY_RELU:                                                         \
            for (i = 0; i < n; ++i) y[i] = fnn_leaky_relu_##M(x[i], p0);                  \
            break;                                                                        \
        case FNN_XACT_SILU:                                                               \
            for (i = 0; i < n; ++i) y[i] = fnn_silu_##M(x[i]);                            \
            break;                                                                        \
        case FNN_XACT_GELU:                                                               \
            for (i = 0; i < n; ++i) y[i] = fnn_gelu_##M(x[i]);                            \
            break;                                                                        \
        case FNN_XACT_GELU_TANH:                                                          \
            for (i = 0; i < n; ++i) y[i] = fnn_gelu_tanh_##M(x[i]);                       \
            break;                                                                        \
        default:                                                                          \
            for (i = 0; i < n; ++i) y[i] = x[i];                                          \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_xact_backward_##M,                                               \
        (int act, const T* restrict g, const T* restrict v, T* restrict out, ptrdiff_t n, \
         T p0, T p1),                                                                     \
        (act, g, v, out, n, p0, p1), {                                                    \
        ptrdiff_t i;                                                                      \
        switch (act) {                                                                    \
        case FNN_XACT_HARDTANH:                                                           \
            for (i = 0; i < n; ++i) out[i] = (v[i] <= p0 || v[i] >= p1) ? (T)0 : g[i];    \
            break;                                                                        \
        case FNN_XACT_LEAKY_RELU:                                                         \
            for (i = 0; i < n; ++i) out[i] = v[i] > (T)0 ? g[i] : g[i] * p0;              \
            break;                                                                        \
        case FNN_XACT_SILU:                                                               \
            for (i = 0; i < n; ++i) out[i] = g[i] * fnn_silu_grad_##M(v[i]);              \
            break;                                                                        \
        case FNN_XACT_GELU:                                                               \
            for (i = 0; i < n; ++i) out[i] = g[i] * fnn_gelu_grad_##M(v[i]);              \
            break;                                                                        \
        case FNN_XACT_GELU_TANH:                                                          \
            for (i = 0; i < n; ++i) out[i] = g[i] * fnn_gelu_tanh_grad_##M(v[i]);         \
            break;                                                                        \
        default:                                                                          \
            for (i = 0; i < n; ++i) out[i] = g[i];                                        \
        }                                                                                 \
    })

FNN_DEFINE_XACT_LOOPS(float, f32)
FNN_DEFINE_XACT_LOOPS(double, f64)

#endif /* FNN_ACTIVATION_EXTRA_H */
