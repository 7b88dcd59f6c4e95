/* The fused activation of the convolution kernels: applied where each kernel writes its
 * output (after the bias), never as a pass of its own over the whole output.
 *
 * Codes (fastnn/_backends/cpu/conv.py passes them in): 0 none, 1 relu (the same number
 * as activation_simd.h's FNN_ACT_RELU), 4 relu6 (the CUDA epilogue's number).
 *
 * NaN propagates through both, as in PyTorch and fastnn.relu: relu is "x < 0 ? 0 : x"
 * and relu6 "x < 0 ? 0 : (x > 6 ? 6 : x)", and NaN fails both compares.
 */
#ifndef FNN_CONV_EPILOGUE_H
#define FNN_CONV_EPILOGUE_H

#include <stddef.h>

#define FNN_CONV_ACT_NONE 0
#define FNN_CONV_ACT_RELU 1
#define FNN_CONV_ACT_RELU6 4

#define FNN_CONV_INLINE static inline __attribute__((always_inline))

FNN_CONV_INLINE float fnn_conv_relu6_f32(float x) {
    return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
}
FNN_CONV_INLINE double fnn_conv_relu6_f64(double x) {
    return x < 0.0 ? 0.0 : (x > 6.0 ? 6.0 : x);
}
FNN_CONV_INLINE float fnn_conv_relu_f32(float x) { return x < 0.0f ? 0.0f : x; }
FNN_CONV_INLINE double fnn_conv_relu_f64(double x) { return x < 0.0 ? 0.0 : x; }

/* One scalar through the activation `act`. */
FNN_CONV_INLINE float fnn_conv_act_f32(int act, float x) {
    return act == FNN_CONV_ACT_RELU ? fnn_conv_relu_f32(x)
           : act == FNN_CONV_ACT_RELU6 ? fnn_conv_relu6_f32(x)
                                       : x;
}
FNN_CONV_INLINE double fnn_conv_act_f64(int act, double x) {
    return act == FNN_CONV_ACT_RELU ? fnn_conv_relu_f64(x)
           : act == FNN_CONV_ACT_RELU6 ? fnn_conv_relu6_f64(x)
                                       : x;
}

/* A GCC vector v (any vector_size type) through `act`, in place: compares give lane
 * masks, the masks select bits, so NaN lanes (both compares false) stay NaN. */
#define FNN_CONV_ACT_VEC(v, act)                                                           \
    do {                                                                                   \
        if ((act) != FNN_CONV_ACT_NONE) {                                                  \
            const __typeof__(v) zero_ = {0};                                               \
            const __typeof__((v) < zero_) lo_ = (v) < zero_;                               \
            (v) = (__typeof__(v))((__typeof__(lo_))(v) & ~lo_);                            \
            if ((act) == FNN_CONV_ACT_RELU6) {                                             \
                const __typeof__(v) six_ = zero_ + 6;                                      \
                const __typeof__(lo_) hi_ = (v) > six_;                                    \
                (v) = (__typeof__(v))(((__typeof__(lo_))(v) & ~hi_) |                      \
                                      ((__typeof__(lo_))six_ & hi_));                      \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* y[i * ld + j] = act(y[i * ld + j] + bias[i]) for i < rows, j < n (bias may be NULL):
 * the bias and activation of a block of output rows that a GEMM just wrote (still in
 * cache).  The loops are split by activation so that each one vectorises. */
#define FNN_CONV_DEFINE_ROWS(T, sfx)                                                       \
    FNN_CONV_INLINE void fnn_conv_rows_##sfx(int act, T* y, ptrdiff_t rows, ptrdiff_t n,   \
                                             ptrdiff_t ld, const T* bias) {                \
        for (ptrdiff_t i = 0; i < rows; ++i) {                                             \
            T* restrict r = y + i * ld;                                                    \
            const T b = bias != NULL ? bias[i] : (T)0;                                     \
            if (act == FNN_CONV_ACT_RELU)                                                  \
                for (ptrdiff_t j = 0; j < n; ++j) r[j] = fnn_conv_relu_##sfx(r[j] + b);    \
            else if (act == FNN_CONV_ACT_RELU6)                                            \
                for (ptrdiff_t j = 0; j < n; ++j) r[j] = fnn_conv_relu6_##sfx(r[j] + b);   \
            else if (bias != NULL)                                                         \
                for (ptrdiff_t j = 0; j < n; ++j) r[j] += b;                               \
        }                                                                                  \
    }                                                                                      \
    /* dst[j] = act(src[j] + b) for j < n: a copy-out with the bias and activation. */     \
    FNN_CONV_INLINE void fnn_conv_copy_##sfx(int act, T* restrict dst, const T* restrict src, \
                                             ptrdiff_t n, T b) {                           \
        if (act == FNN_CONV_ACT_RELU)                                                      \
            for (ptrdiff_t j = 0; j < n; ++j) dst[j] = fnn_conv_relu_##sfx(src[j] + b);    \
        else if (act == FNN_CONV_ACT_RELU6)                                                \
            for (ptrdiff_t j = 0; j < n; ++j) dst[j] = fnn_conv_relu6_##sfx(src[j] + b);   \
        else                                                                               \
            for (ptrdiff_t j = 0; j < n; ++j) dst[j] = src[j] + b;                         \
    }

FNN_CONV_DEFINE_ROWS(float, f32)
FNN_CONV_DEFINE_ROWS(double, f64)

#endif /* FNN_CONV_EPILOGUE_H */
