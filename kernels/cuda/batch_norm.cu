// Batch normalisation of C-contiguous (outer, channels, inner) arrays: per-channel
// statistics, the normalising pass with relu / relu6 fused, and the backward's two passes.
//
// Reductions follow reduce.cu: block (channel, chunk) sums its slice of the channel's
// outer * inner values in double into partial[(chunk * 2 + k) * channels + c] (k = 0, 1),
// then a *_finish kernel adds the chunks of each channel in order: no atomics, a fixed
// order.  The statistics are shifted sums, sum (x - K) and sum (x - K)^2 with
// K = x[0, c, 0], so data far from zero loses nothing to cancellation.
//
// ACT: 0 none, 1 relu, 2 relu6 (fastnn/_backends/cupy/normalization.py holds the same).
// Forward keeps NaN; backward masks as PyTorch (relu: 0 where y <= 0, relu6: 0 where
// y <= 0 or y >= 6, so a NaN output passes g).
#include "common.cuh"

namespace fastnn_bn {

template <int ACT, typename T>
__device__ __forceinline__ T activate(T v) {
    if (ACT == 1) return v < T(0) ? T(0) : v;
    if (ACT == 2) return v < T(0) ? T(0) : (v > T(6) ? T(6) : v);
    return v;
}

template <int ACT, typename T>
__device__ __forceinline__ T mask(T g, T y) {
    if (ACT == 1) return y <= T(0) ? T(0) : g;
    if (ACT == 2) return (y <= T(0) || y >= T(6)) ? T(0) : g;
    return g;
}

// Block (c = blockIdx.x, chunk = blockIdx.y): adds(at, s1, s2) adds the terms of position
// `at` of x (layout (outer, channels, inner)) to the two sums, over the flat positions
// [chunk * chunk_len, (chunk + 1) * chunk_len) of channel c's outer * inner values; the
// block's sums go to partial[(2 chunk) channels + c] and partial[(2 chunk + 1) channels + c].
// `scratch`: the kernel's __shared__ double[FASTNN_THREADS].
template <typename Adds>
__device__ __forceinline__ void chunk_sums(fastnn::index_t outer, int channels,
                                           fastnn::index_t inner, fastnn::index_t chunk_len,
                                           double* __restrict__ partial, double* scratch,
                                           Adds adds) {
    const int c = blockIdx.x;
    const fastnn::index_t count = outer * inner;
    const fastnn::index_t begin = (fastnn::index_t)blockIdx.y * chunk_len;
    const fastnn::index_t end = fastnn::smaller(begin + chunk_len, count);
    double s1 = 0.0, s2 = 0.0;
    for (fastnn::index_t q = begin + threadIdx.x; q < end; q += FASTNN_THREADS) {
        fastnn::index_t o = q / inner;
        adds((o * channels + c) * inner + (q - o * inner), s1, s2);
    }
    s1 = fastnn::block_sum<FASTNN_THREADS>(s1, scratch);
    s2 = fastnn::block_sum<FASTNN_THREADS>(s2, scratch);
    if (threadIdx.x == 0) {
        partial[((fastnn::index_t)blockIdx.y * 2) * channels + c] = s1;
        partial[((fastnn::index_t)blockIdx.y * 2 + 1) * channels + c] = s2;
    }
}

}  // namespace fastnn_bn

// Block (c, chunk): shifted sums of channel c over flat positions [chunk * chunk_len,
// (chunk + 1) * chunk_len) of its outer * inner values (count > 0).
template <typename T>
__global__ void bn_stats_partial(const T* __restrict__ x, fastnn::index_t outer, int channels,
                                 fastnn::index_t inner, fastnn::index_t chunk_len,
                                 double* __restrict__ partial) {
    __shared__ double scratch[FASTNN_THREADS];
    const int c = blockIdx.x;
    const double k = (double)x[(fastnn::index_t)c * inner];
    auto adds = [&](fastnn::index_t at, double& s1, double& s2) {
        const double d = (double)x[at] - k;
        s1 += d;
        s2 += d * d;
    };
    fastnn_bn::chunk_sums(outer, channels, inner, chunk_len, partial, scratch, adds);
}

// One thread per channel: mean and invstd in T, and (update != 0) the running statistics
// moved in place: running = (1 - factor) running + factor batch, the variance times
// `unbias`.  count == 0 (no chunks) gives NaN statistics.
template <typename T>
__global__ void bn_stats_finish(const double* __restrict__ partial, int chunks,
                                fastnn::index_t channels, const T* __restrict__ x,
                                fastnn::index_t inner, double count, double eps, double factor,
                                double unbias, int update, T* __restrict__ running_mean,
                                T* __restrict__ running_var, T* __restrict__ mean,
                                T* __restrict__ invstd) {
    FASTNN_GRID_STRIDE(c, channels) {
        double s1 = 0.0, s2 = 0.0;
        for (int k = 0; k < chunks; ++k) {
            s1 += partial[((fastnn::index_t)k * 2) * channels + c];
            s2 += partial[((fastnn::index_t)k * 2 + 1) * channels + c];
        }
        const double shift = count > 0.0 ? (double)x[c * inner] : 0.0;
        const double d = s1 / count;
        double var = s2 / count - d * d;
        if (var < 0.0) var = 0.0;
        const double m = shift + d;
        mean[c] = (T)m;
        invstd[c] = (T)(1.0 / sqrt(var + eps));
        if (update) {
            running_mean[c] = (T)((1.0 - factor) * (double)running_mean[c] + factor * m);
            running_var[c] = (T)((1.0 - factor) * (double)running_var[c] + factor * var * unbias);
        }
    }
}

// Eval mode: mean = running_mean, invstd = 1 / sqrt(running_var + eps).
template <typename T>
__global__ void bn_running_stats(const T* __restrict__ running_mean,
                                 const T* __restrict__ running_var, fastnn::index_t channels,
                                 double eps, T* __restrict__ mean, T* __restrict__ invstd) {
    FASTNN_GRID_STRIDE(c, channels) {
        mean[c] = running_mean[c];
        invstd[c] = (T)(1.0 / sqrt((double)running_var[c] + eps));
    }
}

// out = act((x - mean[c]) * invstd[c] * w[c] + b[c]) over the flat n elements (w, b read
// only when has_w / has_b).
template <typename T, int ACT>
__global__ void bn_affine(const T* __restrict__ x, const T* __restrict__ mean,
                          const T* __restrict__ invstd, const T* __restrict__ w,
                          const T* __restrict__ b, int has_w, int has_b, fastnn::index_t n,
                          fastnn::index_t channels, fastnn::index_t inner,
                          T* __restrict__ out) {
    FASTNN_GRID_STRIDE(i, n) {
        const fastnn::index_t c = (i / inner) % channels;
        const T scale = has_w ? invstd[c] * w[c] : invstd[c];
        const T shift = has_b ? b[c] : T(0);
        out[i] = fastnn_bn::activate<ACT>((x[i] - mean[c]) * scale + shift);
    }
}

// Block (c, chunk): sum g' and sum g' (x - mean[c]), g' the masked gradient.
template <typename T, int ACT>
__global__ void bn_grad_partial(const T* __restrict__ g, const T* __restrict__ x,
                                const T* __restrict__ y, const T* __restrict__ mean,
                                fastnn::index_t outer, int channels, fastnn::index_t inner,
                                fastnn::index_t chunk_len, double* __restrict__ partial) {
    __shared__ double scratch[FASTNN_THREADS];
    const int c = blockIdx.x;
    const double m = (double)mean[c];
    auto adds = [&](fastnn::index_t at, double& s1, double& s2) {
        const double gv = (double)fastnn_bn::mask<ACT>(g[at], y[at]);
        s1 += gv;
        s2 += gv * ((double)x[at] - m);
    };
    fastnn_bn::chunk_sums(outer, channels, inner, chunk_len, partial, scratch, adds);
}

// One thread per channel: sums[c] = sum g', sums[channels + c] = sum g' xhat; grad_weight
// and grad_bias when asked for.
template <typename T>
__global__ void bn_grad_finish(const double* __restrict__ partial, int chunks,
                               fastnn::index_t channels, const T* __restrict__ invstd,
                               double* __restrict__ sums, int want_w, int want_b,
                               T* __restrict__ grad_weight, T* __restrict__ grad_bias) {
    FASTNN_GRID_STRIDE(c, channels) {
        double s1 = 0.0, s2 = 0.0;
        for (int k = 0; k < chunks; ++k) {
            s1 += partial[((fastnn::index_t)k * 2) * channels + c];
            s2 += partial[((fastnn::index_t)k * 2 + 1) * channels + c];
        }
        s2 = chunks > 0 ? s2 * (double)invstd[c] : 0.0;  // a sum over nothing is 0
        sums[c] = s1;
        sums[channels + c] = s2;
        if (want_w) grad_weight[c] = (T)s2;
        if (want_b) grad_bias[c] = (T)s1;
    }
}

// grad_input over the flat n elements: training (centred) w invstd (g' - mean g' - xhat
// mean(g' xhat)), else w invstd g'.
template <typename T, int ACT>
__global__ void bn_grad_input(const T* __restrict__ g, const T* __restrict__ x,
                              const T* __restrict__ y, const T* __restrict__ mean,
                              const T* __restrict__ invstd, const T* __restrict__ w, int has_w,
                              const double* __restrict__ sums, int centred, double count,
                              fastnn::index_t n, fastnn::index_t channels,
                              fastnn::index_t inner, T* __restrict__ out) {
    FASTNN_GRID_STRIDE(i, n) {
        const fastnn::index_t c = (i / inner) % channels;
        const T k1 = has_w ? invstd[c] * w[c] : invstd[c];
        const T gv = fastnn_bn::mask<ACT>(g[i], y[i]);
        if (centred) {
            const T mean_g = (T)(sums[c] / count);
            const T mean_gx = (T)(sums[channels + c] / count);
            const T xhat = (x[i] - mean[c]) * invstd[c];
            out[i] = k1 * (gv - mean_g - xhat * mean_gx);
        } else {
            out[i] = k1 * gv;
        }
    }
}
