// Dropout (forward, backward) and the fused residual add act(a + b), one thread per element
// of flat C-contiguous arrays.
//
// Dropout's random word for element i is splitmix64(seed + (i + 1) * golden) in uint64
// arithmetic, the same word as fastnn's C, numba and reference kernels; the element is
// kept when the word's top 32 bits are >= threshold = floor(p * 2^32).  The 64-bit seed
// and the threshold arrive as long long (their bits), and the uint8 mask as the int words
// of a buffer padded to a multiple of 4 bytes (the host's kernel arguments are int, long
// long and float types only); the kernels read and write it byte by byte.
#include "common.cuh"

namespace fastnn {

__device__ __forceinline__ unsigned long long splitmix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

}  // namespace fastnn

template <typename T>
__global__ void dropout_forward(const T* __restrict__ x, T* __restrict__ y,
                                int* __restrict__ mask_words, fastnn::index_t n,
                                long long seed, long long threshold, T scale) {
    unsigned char* mask = reinterpret_cast<unsigned char*>(mask_words);
    FASTNN_GRID_STRIDE(i, n) {
        const unsigned long long word = fastnn::splitmix64(
            (unsigned long long)seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL);
        const bool keep = (word >> 32) >= (unsigned long long)threshold;
        mask[i] = keep ? 1 : 0;
        y[i] = x[i] * (keep ? T(1) : T(0)) * scale;
    }
}

template <typename T>
__global__ void dropout_backward(const T* __restrict__ g, const int* __restrict__ mask_words,
                                 T* __restrict__ out, fastnn::index_t n, T scale) {
    const unsigned char* mask = reinterpret_cast<const unsigned char*>(mask_words);
    FASTNN_GRID_STRIDE(i, n) { out[i] = g[i] * (mask[i] != 0 ? T(1) : T(0)) * scale; }
}

// ACT: 0 identity, 1 relu, 2 relu6 (min(max(s, 0), 6); NaN fails both compares and stays).
template <typename T, int ACT>
__global__ void residual_add(const T* __restrict__ a, const T* __restrict__ b,
                             T* __restrict__ y, fastnn::index_t n) {
    FASTNN_GRID_STRIDE(i, n) {
        T s = a[i] + b[i];
        if (ACT >= 1 && s < T(0)) s = T(0);
        if (ACT == 2 && s > T(6)) s = T(6);
        y[i] = s;
    }
}
