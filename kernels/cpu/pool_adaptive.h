/* Adaptive pooling over C-contiguous stacks of planes x (P, H, W) -> y (P, Ho, Wo), with
 * PyTorch's windows: output (oh, ow) covers rows [floor(oh H / Ho), ceil((oh + 1) H / Ho))
 * and columns likewise.  Every function handles planes [lo, hi); pool_adaptive.pyx splits
 * the planes over OpenMP threads.  Each is built for the portable baseline, AVX2 and
 * AVX-512 (FNN_MULTIVERSION of activation_loops.h), the row loops being plain vectorisable loops.
 *
 *   fnn_adaptive_avg_global_S(x, y, n, lo, hi)          y[p] = mean of plane p (n values):
 *                                                       global pooling, a vector sum
 *   fnn_adaptive_avg_S(x, y, H, W, Ho, Wo, buf, lo, hi)  buf: W doubles (per thread)
 *   fnn_adaptive_avg_backward_S(gy, gx, ..., buf, lo, hi) buf: W doubles (per thread)
 *   fnn_adaptive_max_S(x, y, index | NULL, H, W, Ho, Wo, lo, hi)
 *   fnn_adaptive_max_backward_S(gy, index, gx, H * W, Ho * Wo, lo, hi)
 *
 * The general average sums a window's rows into a row of doubles, then each window's
 * columns of that row.  Global pooling sums in the element type over vector lanes, as
 * PyTorch does for float.  Max pooling scans a window row by row from its first
 * element and takes a later one when it is larger or NaN (NaN propagates; the first
 * maximum, or the last NaN, wins), giving the flat index h * W + w.  The backward scatter
 * adds up repeated indices (overlapping windows).
 */
#ifndef FNN_POOL_ADAPTIVE_H
#define FNN_POOL_ADAPTIVE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "activation_loops.h" /* FNN_MULTIVERSION, FNN_INLINE */

FNN_INLINE ptrdiff_t fnn_adaptive_start(ptrdiff_t i, ptrdiff_t in, ptrdiff_t out) {
    return i * in / out;
}

FNN_INLINE ptrdiff_t fnn_adaptive_end(ptrdiff_t i, ptrdiff_t in, ptrdiff_t out) {
    return ((i + 1) * in + out - 1) / out;
}

#define FNN_DEFINE_ADAPTIVE(T, S)                                                         \
    FNN_MULTIVERSION(fnn_adaptive_avg_##S,                                                \
        (const T* restrict x, T* restrict y, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho,      \
         ptrdiff_t Wo, double* restrict buf, ptrdiff_t lo, ptrdiff_t hi),                 \
        (x, y, H, W, Ho, Wo, buf, lo, hi), {                                              \
        for (ptrdiff_t p = lo; p < hi; ++p) {                                             \
            const T* xp = x + p * H * W;                                                  \
            T* yp = y + p * Ho * Wo;                                                      \
            for (ptrdiff_t oh = 0; oh < Ho; ++oh) {                                       \
                ptrdiff_t h0 = fnn_adaptive_start(oh, H, Ho);                             \
                ptrdiff_t h1 = fnn_adaptive_end(oh, H, Ho);                               \
                const T* restrict first = xp + h0 * W;                                    \
                for (ptrdiff_t w = 0; w < W; ++w) buf[w] = first[w];                      \
                for (ptrdiff_t h = h0 + 1; h < h1; ++h) {                                 \
                    const T* restrict row = xp + h * W;                                   \
                    for (ptrdiff_t w = 0; w < W; ++w) buf[w] += row[w];                   \
                }                                                                         \
                for (ptrdiff_t ow = 0; ow < Wo; ++ow) {                                   \
                    ptrdiff_t w0 = fnn_adaptive_start(ow, W, Wo);                         \
                    ptrdiff_t w1 = fnn_adaptive_end(ow, W, Wo);                           \
                    double s = 0.0;                                                       \
                    for (ptrdiff_t w = w0; w < w1; ++w) s += buf[w];                      \
                    yp[oh * Wo + ow] = (T)(s / (double)((h1 - h0) * (w1 - w0)));          \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_adaptive_avg_backward_##S,                                       \
        (const T* restrict gy, T* restrict gx, ptrdiff_t H, ptrdiff_t W, ptrdiff_t Ho,    \
         ptrdiff_t Wo, double* restrict buf, ptrdiff_t lo, ptrdiff_t hi),                 \
        (gy, gx, H, W, Ho, Wo, buf, lo, hi), {                                            \
        for (ptrdiff_t p = lo; p < hi; ++p) {                                             \
            const T* gp = gy + p * Ho * Wo;                                               \
            T* xp = gx + p * H * W;                                                       \
            memset(xp, 0, (size_t)(H * W) * sizeof(T));                                   \
            for (ptrdiff_t oh = 0; oh < Ho; ++oh) {                                       \
                ptrdiff_t h0 = fnn_adaptive_start(oh, H, Ho);                             \
                ptrdiff_t h1 = fnn_adaptive_end(oh, H, Ho);                               \
                /* buf[w]: the share of column w from every window of this output row */  \
                for (ptrdiff_t w = 0; w < W; ++w) buf[w] = 0.0;                           \
                for (ptrdiff_t ow = 0; ow < Wo; ++ow) {                                   \
                    ptrdiff_t w0 = fnn_adaptive_start(ow, W, Wo);                         \
                    ptrdiff_t w1 = fnn_adaptive_end(ow, W, Wo);                           \
                    double share =                                                        \
                        (double)gp[oh * Wo + ow] / (double)((h1 - h0) * (w1 - w0));       \
                    for (ptrdiff_t w = w0; w < w1; ++w) buf[w] += share;                  \
                }                                                                         \
                for (ptrdiff_t h = h0; h < h1; ++h) {                                     \
                    T* restrict row = xp + h * W;                                         \
                    for (ptrdiff_t w = 0; w < W; ++w) row[w] = (T)(row[w] + buf[w]);      \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    FNN_MULTIVERSION(fnn_adaptive_max_##S,                                                \
        (const T* restrict x, T* restrict y, int64_t* restrict index, ptrdiff_t H,        \
         ptrdiff_t W, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t lo, ptrdiff_t hi),            \
        (x, y, index, H, W, Ho, Wo, lo, hi), {                                            \
        for (ptrdiff_t p = lo; p < hi; ++p) {                                             \
            const T* xp = x + p * H * W;                                                  \
            for (ptrdiff_t oh = 0; oh < Ho; ++oh) {                                       \
                ptrdiff_t h0 = fnn_adaptive_start(oh, H, Ho);                             \
                ptrdiff_t h1 = fnn_adaptive_end(oh, H, Ho);                               \
                for (ptrdiff_t ow = 0; ow < Wo; ++ow) {                                   \
                    ptrdiff_t w0 = fnn_adaptive_start(ow, W, Wo);                         \
                    ptrdiff_t w1 = fnn_adaptive_end(ow, W, Wo);                           \
                    ptrdiff_t best_at = h0 * W + w0;                                      \
                    T best = xp[best_at];                                                 \
                    for (ptrdiff_t h = h0; h < h1; ++h) {                                 \
                        for (ptrdiff_t w = w0; w < w1; ++w) {                             \
                            T v = xp[h * W + w];                                          \
                            if (v > best || v != v) {                                     \
                                best = v;                                                 \
                                best_at = h * W + w;                                      \
                            }                                                             \
                        }                                                                 \
                    }                                                                     \
                    ptrdiff_t o = (p * Ho + oh) * Wo + ow;                                \
                    y[o] = best;                                                          \
                    if (index) index[o] = (int64_t)best_at;                               \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    })                                                                                    \
                                                                                          \
    static void fnn_adaptive_max_backward_##S(const T* restrict gy,                        \
                                              const int64_t* restrict index,              \
                                              T* restrict gx, ptrdiff_t plane,            \
                                              ptrdiff_t outputs, ptrdiff_t lo,            \
                                              ptrdiff_t hi) {                             \
        for (ptrdiff_t p = lo; p < hi; ++p) {                                             \
            T* xp = gx + p * plane;                                                       \
            memset(xp, 0, (size_t)plane * sizeof(T));                                     \
            for (ptrdiff_t o = p * outputs; o < (p + 1) * outputs; ++o)                   \
                xp[index[o]] += gy[o];                                                    \
        }                                                                                 \
    }

/* ---- global average pooling: one sum per plane ---------------------------------------
 * With AVX2: four independent vector accumulators over 32-element blocks (no add waits on
 * the previous one), then whole vectors, then the tail through a masked load (which never
 * touches the elements it masks out), one horizontal sum per plane.  Small planes (the
 * 7 x 7 of classifier heads) cost a few loads and one horizontal sum.  Without AVX2, the
 * same sum as a vectorisable loop (omp simd reduction). */
#if FNN_X86
#include <immintrin.h>

static const int32_t fnn_tail_mask32[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                            0,  0,  0,  0,  0,  0,  0,  0};
static const int64_t fnn_tail_mask64[8] = {-1, -1, -1, -1, 0, 0, 0, 0};

FNN_TARGET_AVX2 static float fnn_plane_sum_f32_avx2(const float* x, ptrdiff_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i + 8 <= n; i += 8) a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i));
    if (i < n) {
        __m256i mask = _mm256_loadu_si256((const __m256i*)(fnn_tail_mask32 + 8 - (n - i)));
        a2 = _mm256_add_ps(a2, _mm256_maskload_ps(x + i, mask));
    }
    __m256 v = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

FNN_TARGET_AVX2 static double fnn_plane_sum_f64_avx2(const double* x, ptrdiff_t n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_pd(a0, _mm256_loadu_pd(x + i));
        a1 = _mm256_add_pd(a1, _mm256_loadu_pd(x + i + 4));
        a2 = _mm256_add_pd(a2, _mm256_loadu_pd(x + i + 8));
        a3 = _mm256_add_pd(a3, _mm256_loadu_pd(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) a1 = _mm256_add_pd(a1, _mm256_loadu_pd(x + i));
    if (i < n) {
        __m256i mask = _mm256_loadu_si256((const __m256i*)(fnn_tail_mask64 + 4 - (n - i)));
        a2 = _mm256_add_pd(a2, _mm256_maskload_pd(x + i, mask));
    }
    __m256d v = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

FNN_TARGET_AVX2 static void fnn_adaptive_avg_global_f32_avx2(const float* x, float* y,
                                                             ptrdiff_t n, ptrdiff_t lo,
                                                             ptrdiff_t hi) {
    for (ptrdiff_t p = lo; p < hi; ++p) y[p] = fnn_plane_sum_f32_avx2(x + p * n, n) / (float)n;
}

FNN_TARGET_AVX2 static void fnn_adaptive_avg_global_f64_avx2(const double* x, double* y,
                                                             ptrdiff_t n, ptrdiff_t lo,
                                                             ptrdiff_t hi) {
    for (ptrdiff_t p = lo; p < hi; ++p)
        y[p] = fnn_plane_sum_f64_avx2(x + p * n, n) / (double)n;
}
#endif

/* Whether global pooling may take its AVX2 build (tests turn it off to run the other). */
static int fnn_adaptive_avx2_allowed = 1;

/* Allow (1) or forbid (0) the AVX2 build; returns whether it is used now. */
static int fnn_adaptive_set_avx2(int enabled) {
    fnn_adaptive_avx2_allowed = enabled != 0;
    return fnn_adaptive_avx2_allowed && fnn_cpu_has_avx2();
}

#define FNN_DEFINE_GLOBAL(T, S)                                                           \
    static void fnn_adaptive_avg_global_##S##_generic(const T* restrict x, T* restrict y, \
                                                      ptrdiff_t n, ptrdiff_t lo,          \
                                                      ptrdiff_t hi) {                     \
        for (ptrdiff_t p = lo; p < hi; ++p) {                                             \
            const T* restrict xp = x + p * n;                                             \
            T s = 0;                                                                      \
            _Pragma("omp simd reduction(+ : s)")                                          \
            for (ptrdiff_t i = 0; i < n; ++i) s += xp[i];                                 \
            y[p] = s / (T)n;                                                              \
        }                                                                                 \
    }                                                                                     \
                                                                                          \
    static void fnn_adaptive_avg_global_##S(const T* x, T* y, ptrdiff_t n, ptrdiff_t lo,  \
                                            ptrdiff_t hi) {                               \
        if (fnn_adaptive_avx2_allowed && fnn_cpu_has_avx2())                              \
            FNN_GLOBAL_AVX2(S)(x, y, n, lo, hi);                                          \
        else fnn_adaptive_avg_global_##S##_generic(x, y, n, lo, hi);                      \
    }

#if FNN_X86
#define FNN_GLOBAL_AVX2(S) fnn_adaptive_avg_global_##S##_avx2
#else
#define FNN_GLOBAL_AVX2(S) fnn_adaptive_avg_global_##S##_generic
#endif

FNN_DEFINE_GLOBAL(float, f32)
FNN_DEFINE_GLOBAL(double, f64)

FNN_DEFINE_ADAPTIVE(float, f32)
FNN_DEFINE_ADAPTIVE(double, f64)

#endif
