/* Elementwise activation loops over flat contiguous buffers, float and double.
 *
 * Each loop is compiled three times: for the portable baseline, for AVX2/FMA and for
 * AVX-512F; each call runs the one of the module's level (elementwise_level.h), capped
 * at what the CPU executes (FNN_MULTIVERSION).  The loop bodies only call the
 * branch-free functions of activation_simd.h, so gcc vectorises them for any ISA.
 * Threads are the caller's business (activation.pyx splits the array into chunks).
 */
#ifndef FNN_ACTIVATION_LOOPS_H
#define FNN_ACTIVATION_LOOPS_H

#include "activation_simd.h"
#include "elementwise_level.h"

/* Define `void name params` that runs the body (the last argument, a braced block)
 * compiled for the module's elementwise level (AVX-512F, AVX2/FMA or the portable
 * baseline), or the highest below it that the CPU has.  `args` forwards the
 * parameters. */
#define FNN_MULTIVERSION(name, params, args, ...)                                         \
    FNN_INLINE void name##_body params __VA_ARGS__                                        \
    static void name##_generic params { name##_body args; }                               \
    FNN_TARGET_AVX2 static void name##_avx2 params { name##_body args; }                  \
    FNN_TARGET_AVX512 static void name##_avx512 params { name##_body args; }              \
    static void name params {                                                              \
        const int level_ = fnn_elementwise_level;                                         \
        if (level_ >= FNN_ISA_AVX512 && fnn_cpu_has_avx512()) name##_avx512 args;         \
        else if (level_ >= FNN_ISA_AVX2 && fnn_cpu_has_avx2()) name##_avx2 args;          \
        else name##_generic args;                                                          \
    }

/* y = f(x) for one activation code. */
#define FNN_DEFINE_ACTIVATE(T, SUFFIX)                                                    \
    FNN_MULTIVERSION(fnn_activate_loop_##SUFFIX,                                          \
        (int act, const T* restrict x, T* restrict y, ptrdiff_t n),                       \
        (act, x, y, n), {                                                                 \
        ptrdiff_t i;                                                                      \
        switch (act) {                                                                    \
        case FNN_ACT_RELU:                                                                \
            for (i = 0; i < n; ++i) y[i] = fnn_relu_##SUFFIX(x[i]);                       \
            break;                                                                        \
        case FNN_ACT_SIGMOID:                                                             \
            for (i = 0; i < n; ++i) y[i] = fnn_sigmoid_##SUFFIX(x[i]);                    \
            break;                                                                        \
        case FNN_ACT_TANH:                                                                \
            for (i = 0; i < n; ++i) y[i] = fnn_tanh_##SUFFIX(x[i]);                       \
            break;                                                                        \
        default:                                                                          \
            for (i = 0; i < n; ++i) y[i] = x[i];                                          \
        }                                                                                 \
    })

/* out = g * f'(input) where f' is expressed through the forward output y (relu as in
 * PyTorch: 0 where y <= 0, so a NaN output passes g through):
 * relu g [y > 0], sigmoid g y (1 - y), tanh g (1 - y^2). */
#define FNN_DEFINE_BACKWARD(T, SUFFIX)                                                    \
    FNN_MULTIVERSION(fnn_backward_loop_##SUFFIX,                                          \
        (int act, const T* restrict g, const T* restrict y, T* restrict out, ptrdiff_t n), \
        (act, g, y, out, n), {                                                            \
        ptrdiff_t i;                                                                      \
        switch (act) {                                                                    \
        case FNN_ACT_RELU:                                                                \
            for (i = 0; i < n; ++i) out[i] = y[i] <= 0 ? (T)0 : g[i];                     \
            break;                                                                        \
        case FNN_ACT_SIGMOID:                                                             \
            for (i = 0; i < n; ++i) out[i] = g[i] * y[i] * ((T)1 - y[i]);                 \
            break;                                                                        \
        case FNN_ACT_TANH:                                                                \
            for (i = 0; i < n; ++i) out[i] = g[i] * ((T)1 - y[i] * y[i]);                 \
            break;                                                                        \
        default:                                                                          \
            for (i = 0; i < n; ++i) out[i] = g[i];                                        \
        }                                                                                 \
    })

FNN_DEFINE_ACTIVATE(float, f32)
FNN_DEFINE_ACTIVATE(double, f64)
FNN_DEFINE_BACKWARD(float, f32)
FNN_DEFINE_BACKWARD(double, f64)

#endif /* FNN_ACTIVATION_LOOPS_H */
