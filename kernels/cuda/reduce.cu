// Deterministic sums over axes 0 and 2 of a C-contiguous (outer, channels, inner) array:
// the bias gradients of linear / dense layers ((rows, out): inner = 1) and of
// convolution ((N, C_out, P)), and the reduced losses (channels = 1).
//
// Two launches, no atomics, a fixed order of additions, double accumulators:
//   1. a *_partial kernel: block (channel, chunk) or (channel tile, chunk) sums its slice
//      of the outer * inner elements of a channel into partial[chunk * channels + c];
//   2. sum_finish adds the chunks of each channel in order and scales (1/count for a
//      "mean", 1 for a "sum").
#include "common.cuh"

// Channel c = blockIdx.x, chunk = blockIdx.y; the chunk covers the flat positions
// [chunk * chunk_len, (chunk + 1) * chunk_len) of the outer * inner elements of channel c.
// For inner > 1 (convolution), consecutive threads read consecutive addresses.
template <typename T>
__global__ void sum_strided_partial(const T* __restrict__ x, fastnn::index_t outer,
                                    int channels, fastnn::index_t inner,
                                    fastnn::index_t chunk_len, double* __restrict__ partial) {
    __shared__ double scratch[FASTNN_THREADS];
    const int c = blockIdx.x;
    const fastnn::index_t count = outer * inner;
    const fastnn::index_t begin = (fastnn::index_t)blockIdx.y * chunk_len;
    const fastnn::index_t end = fastnn::smaller(begin + chunk_len, count);
    double acc = 0.0;
    for (fastnn::index_t q = begin + threadIdx.x; q < end; q += FASTNN_THREADS) {
        fastnn::index_t o = q / inner;
        fastnn::index_t p = q - o * inner;
        acc += (double)x[(o * channels + c) * inner + p];
    }
    acc = fastnn::block_sum<FASTNN_THREADS>(acc, scratch);
    if (threadIdx.x == 0) partial[(fastnn::index_t)blockIdx.y * channels + c] = acc;
}

// Column sums of a (rows, channels) matrix (inner = 1) with coalesced reads: a block of
// (32, 8) threads covers 32 adjacent columns; its 8 thread rows walk the chunk's rows
// 8 apart and are then added in a fixed order.  Grid: (ceil(channels / 32), chunks).
#define FASTNN_COLUMN_TILE 32
#define FASTNN_COLUMN_LANES 8

template <typename T>
__global__ void sum_columns_partial(const T* __restrict__ x, fastnn::index_t rows,
                                    int channels, fastnn::index_t chunk_len,
                                    double* __restrict__ partial) {
    __shared__ double scratch[FASTNN_COLUMN_LANES][FASTNN_COLUMN_TILE];
    const int c = blockIdx.x * FASTNN_COLUMN_TILE + threadIdx.x;
    const fastnn::index_t begin = (fastnn::index_t)blockIdx.y * chunk_len;
    const fastnn::index_t end = fastnn::smaller(begin + chunk_len, rows);
    double acc = 0.0;
    if (c < channels) {
        for (fastnn::index_t r = begin + threadIdx.y; r < end; r += FASTNN_COLUMN_LANES) {
            acc += (double)x[r * channels + c];
        }
    }
    scratch[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < channels) {
        double total = 0.0;
        for (int lane = 0; lane < FASTNN_COLUMN_LANES; ++lane) total += scratch[lane][threadIdx.x];
        partial[(fastnn::index_t)blockIdx.y * channels + c] = total;
    }
}

// out[c] = scale * sum over chunks of partial[chunk * channels + c], one thread per channel.
template <typename T>
__global__ void sum_finish(const double* __restrict__ partial, int chunks,
                           fastnn::index_t channels, double scale, T* __restrict__ out) {
    FASTNN_GRID_STRIDE(c, channels) {
        double total = 0.0;
        for (int k = 0; k < chunks; ++k) total += partial[(fastnn::index_t)k * channels + c];
        out[c] = (T)(total * scale);
    }
}
