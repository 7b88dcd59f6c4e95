/* Elementwise activations for arrays far larger than the caches: the result is computed
 * into a small buffer that stays in L1, then written with non-temporal (streaming)
 * stores.  An ordinary store first reads the destination line into the cache ("read for
 * ownership"), so a memory-bound y = f(x) moves 12 bytes per float instead of 8; streaming
 * stores skip that read, as memcpy does for large copies.
 *
 *   fnn_activate_array_f32 / _f64(act, x, y, n, stream)          y = f(x)
 *   fnn_backward_array_f32 / _f64(act, g, y, out, n, stream)     out = g * f'(from y)
 *
 * Only relu streams: it is pure data movement.  sigmoid and tanh cost ~1.5 cycles per
 * element of arithmetic, and the extra pass through the buffer made them slower
 * (measured: 16M floats, one thread: relu 9.1 -> 7.6 ms, memcpy 9.0; sigmoid 10.2 ->
 * 13.0 ms).  The caller says whether to stream (activation.pyx: when the call's input and
 * output together outgrow the last-level cache, read from the system at run time);
 * otherwise (or without AVX2) these are the plain loops of activation_loops.h: a result
 * that fits in cache is better left there for its reader.
 */
#ifndef FNN_ACTIVATION_STREAM_H
#define FNN_ACTIVATION_STREAM_H

#include <stdint.h>

#include "activation_loops.h"

#if FNN_X86
#include <immintrin.h>
#endif

/* Elements computed into the L1 buffer between two streaming bursts. */
#define FNN_STREAM_CHUNK 2048

#if FNN_X86
/* dst[0 .. n) = src[0 .. n) with streaming stores for the 32-byte aligned middle. */
FNN_TARGET_AVX2 static void fnn_stream_copy_f32(float* dst, const float* src, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 31u) != 0; ++i) dst[i] = src[i];
    for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
    for (; i < n; ++i) dst[i] = src[i];
}

FNN_TARGET_AVX2 static void fnn_stream_copy_f64(double* dst, const double* src, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 31u) != 0; ++i) dst[i] = src[i];
    for (; i + 4 <= n; i += 4) _mm256_stream_pd(dst + i, _mm256_loadu_pd(src + i));
    for (; i < n; ++i) dst[i] = src[i];
}

#define FNN_DEFINE_STREAMED(T, SUFFIX)                                                    \
    FNN_TARGET_AVX2 static void fnn_activate_streamed_##SUFFIX(int act, const T* x, T* y, \
                                                               ptrdiff_t n) {             \
        T buffer[FNN_STREAM_CHUNK] __attribute__((aligned(64)));                          \
        for (ptrdiff_t i0 = 0; i0 < n; i0 += FNN_STREAM_CHUNK) {                          \
            ptrdiff_t len = n - i0 < FNN_STREAM_CHUNK ? n - i0 : FNN_STREAM_CHUNK;        \
            fnn_activate_loop_##SUFFIX##_body(act, x + i0, buffer, len);                  \
            fnn_stream_copy_##SUFFIX(y + i0, buffer, len);                                \
        }                                                                                 \
        _mm_sfence(); /* order the streaming stores before anything that follows */      \
    }                                                                                     \
                                                                                          \
    FNN_TARGET_AVX2 static void fnn_backward_streamed_##SUFFIX(int act, const T* g,       \
                                                               const T* y, T* out,        \
                                                               ptrdiff_t n) {             \
        T buffer[FNN_STREAM_CHUNK] __attribute__((aligned(64)));                          \
        for (ptrdiff_t i0 = 0; i0 < n; i0 += FNN_STREAM_CHUNK) {                          \
            ptrdiff_t len = n - i0 < FNN_STREAM_CHUNK ? n - i0 : FNN_STREAM_CHUNK;        \
            fnn_backward_loop_##SUFFIX##_body(act, g + i0, y + i0, buffer, len);          \
            fnn_stream_copy_##SUFFIX(out + i0, buffer, len);                              \
        }                                                                                 \
        _mm_sfence();                                                                     \
    }
#else
#define FNN_DEFINE_STREAMED(T, SUFFIX)                                                    \
    static void fnn_activate_streamed_##SUFFIX(int act, const T* x, T* y, ptrdiff_t n) {  \
        fnn_activate_loop_##SUFFIX(act, x, y, n);                                         \
    }                                                                                     \
    static void fnn_backward_streamed_##SUFFIX(int act, const T* g, const T* y, T* out,   \
                                               ptrdiff_t n) {                             \
        fnn_backward_loop_##SUFFIX(act, g, y, out, n);                                    \
    }
#endif

#define FNN_DEFINE_STREAM_DISPATCH(T, SUFFIX)                                             \
    FNN_DEFINE_STREAMED(T, SUFFIX)                                                        \
    static void fnn_activate_array_##SUFFIX(int act, const T* x, T* y, ptrdiff_t n,       \
                                            int stream) {                                 \
        if (stream && act == FNN_ACT_RELU && fnn_cpu_has_avx2())                          \
            fnn_activate_streamed_##SUFFIX(act, x, y, n);                                 \
        else                                                                              \
            fnn_activate_loop_##SUFFIX(act, x, y, n);                                     \
    }                                                                                     \
    static void fnn_backward_array_##SUFFIX(int act, const T* g, const T* y, T* out,      \
                                            ptrdiff_t n, int stream) {                    \
        if (stream && act == FNN_ACT_RELU && fnn_cpu_has_avx2())                          \
            fnn_backward_streamed_##SUFFIX(act, g, y, out, n);                            \
        else                                                                              \
            fnn_backward_loop_##SUFFIX(act, g, y, out, n);                                \
    }

FNN_DEFINE_STREAM_DISPATCH(float, f32)
FNN_DEFINE_STREAM_DISPATCH(double, f64)

#endif /* FNN_ACTIVATION_STREAM_H */
