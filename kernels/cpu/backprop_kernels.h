/* BP1, the output layer's sensitivity delta = dJ/du = f'(u) * dJ/dy, fused into one pass
 * over (y, t, u) for the pointwise losses, float and double:
 *   mse   delta = 2 (y - t) f'(u) * scale                 (the notes' -2 f'(u) (t - y))
 *   bce   delta = (y - t) * scale                         after a sigmoid (f' cancels)
 *         delta = f'(u) (y - t) / max(y (1 - y), eps) * scale   otherwise
 * f'(u) is evaluated at the pre-activation u (activation_simd.h); scale is 1 / count
 * for "mean" and 1 otherwise.  Cross-entropy's BP1 is softmax(u) - onehot(t): see
 * loss_kernels.h.  BP2 (the sensitivity recursion) is the GEMM of gemm_blocked.h with
 * its derivative epilogue.
 */
#ifndef FNN_BACKPROP_KERNELS_H
#define FNN_BACKPROP_KERNELS_H

#include "loss_kernels.h"

enum { FNN_LOSS_MSE = 0, FNN_LOSS_BCE = 1 };

#define FNN_DEFINE_OUTPUT_SENSITIVITY(T, SUFFIX)                                          \
    FNN_MULTIVERSION(fnn_output_sensitivity_##SUFFIX,                                     \
        (int loss, int act, const T* restrict y, const T* restrict t,                     \
         const T* restrict u, T* restrict delta, ptrdiff_t n, T scale),                   \
        (loss, act, y, t, u, delta, n, scale), {                                          \
        ptrdiff_t i;                                                                      \
        if (loss == FNN_LOSS_MSE) {                                                       \
            T two_scale = 2 * scale;                                                      \
            switch (act) {                                                                \
            case FNN_ACT_RELU:                                                            \
                for (i = 0; i < n; ++i)                                                   \
                    delta[i] = two_scale * (y[i] - t[i]) * (u[i] > 0 ? (T)1 : (T)0);      \
                break;                                                                    \
            case FNN_ACT_SIGMOID:                                                         \
            case FNN_ACT_TANH:                                                            \
                for (i = 0; i < n; ++i)                                                   \
                    delta[i] = two_scale * (y[i] - t[i]) * fnn_derivative_##SUFFIX(act, u[i]); \
                break;                                                                    \
            default:                                                                      \
                for (i = 0; i < n; ++i) delta[i] = two_scale * (y[i] - t[i]);             \
            }                                                                             \
        } else if (act == FNN_ACT_SIGMOID) {                                              \
            for (i = 0; i < n; ++i) delta[i] = scale * (y[i] - t[i]);                     \
        } else {                                                                          \
            for (i = 0; i < n; ++i) {                                                     \
                double p = (double)y[i];                                                  \
                double den = p * (1.0 - p);                                               \
                den = den > FNN_BCE_EPS ? den : FNN_BCE_EPS;                              \
                double d = (double)fnn_derivative_##SUFFIX(act, u[i]);                    \
                delta[i] = (T)(d * (p - (double)t[i]) / den * (double)scale);             \
            }                                                                             \
        }                                                                                 \
    })

FNN_DEFINE_OUTPUT_SENSITIVITY(float, f32)
FNN_DEFINE_OUTPUT_SENSITIVITY(double, f64)

#endif /* FNN_BACKPROP_KERNELS_H */
