// softmax / log_softmax along one axis, and their gradients.
//
// The input is viewed as a C-contiguous (outer, d, inner) array, the axis being d.  Two
// shapes of kernel:
//   *_rows<T, LOG, THREADS>: inner = 1 (the last axis); one block of THREADS threads per
//       row (grid-stride over rows), block reductions for the maximum and the sums.
//   *_strided<T, LOG>: any inner; one thread per (outer, inner) line, which walks its d
//       elements inner apart (neighbouring threads read neighbouring addresses).
// A line holding NaN or +inf, or only -inf, gives NaN throughout, as in PyTorch: the
// maximum m is then NaN or infinite and x - m is NaN.
//
//   forward:  softmax y = exp(x - m) / s,  log_softmax y = (x - m) - log(s),
//             with m = max(x) and s = sum(exp(x - m)) over the line
//   backward: softmax gx = y * (gy - sum(gy * y)),  log_softmax gx = gy - exp(y) * sum(gy)
#include "common.cuh"

template <typename T, bool LOG, int THREADS>
__global__ void softmax_rows(const T* __restrict__ x, T* __restrict__ y, fastnn::index_t rows,
                             fastnn::index_t d) {
    __shared__ T scratch[THREADS];
    for (fastnn::index_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * d;
        T* yr = y + row * d;
        T m = fastnn::negative_infinity(T(0));
        for (fastnn::index_t j = threadIdx.x; j < d; j += THREADS) m = fastnn::nan_max(m, xr[j]);
        m = fastnn::block_max<THREADS>(m, scratch);
        T s = T(0);
        for (fastnn::index_t j = threadIdx.x; j < d; j += THREADS) s += fastnn::math_exp(xr[j] - m);
        s = fastnn::block_sum<THREADS>(s, scratch);
        if (LOG) {
            const T log_s = fastnn::math_log(s);
            for (fastnn::index_t j = threadIdx.x; j < d; j += THREADS) yr[j] = (xr[j] - m) - log_s;
        } else {
            const T inv_s = T(1) / s;
            for (fastnn::index_t j = threadIdx.x; j < d; j += THREADS) {
                yr[j] = fastnn::math_exp(xr[j] - m) * inv_s;
            }
        }
    }
}

template <typename T, bool LOG>
__global__ void softmax_strided(const T* __restrict__ x, T* __restrict__ y,
                                fastnn::index_t outer, fastnn::index_t d,
                                fastnn::index_t inner) {
    FASTNN_GRID_STRIDE(line, outer * inner) {
        const fastnn::index_t o = line / inner;
        const fastnn::index_t base = o * d * inner + (line - o * inner);
        T m = fastnn::negative_infinity(T(0));
        for (fastnn::index_t j = 0; j < d; ++j) m = fastnn::nan_max(m, x[base + j * inner]);
        T s = T(0);
        for (fastnn::index_t j = 0; j < d; ++j) s += fastnn::math_exp(x[base + j * inner] - m);
        if (LOG) {
            const T log_s = fastnn::math_log(s);
            for (fastnn::index_t j = 0; j < d; ++j) {
                y[base + j * inner] = (x[base + j * inner] - m) - log_s;
            }
        } else {
            const T inv_s = T(1) / s;
            for (fastnn::index_t j = 0; j < d; ++j) {
                y[base + j * inner] = fastnn::math_exp(x[base + j * inner] - m) * inv_s;
            }
        }
    }
}

template <typename T, bool LOG, int THREADS>
__global__ void softmax_backward_rows(const T* __restrict__ gy, const T* __restrict__ y,
                                      T* __restrict__ gx, fastnn::index_t rows,
                                      fastnn::index_t d) {
    __shared__ T scratch[THREADS];
    for (fastnn::index_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* g = gy + row * d;
        const T* yr = y + row * d;
        T* out = gx + row * d;
        T s = T(0);
        for (fastnn::index_t j = threadIdx.x; j < d; j += THREADS) s += LOG ? g[j] : g[j] * yr[j];
        s = fastnn::block_sum<THREADS>(s, scratch);
        for (fastnn::index_t j = threadIdx.x; j < d; j += THREADS) {
            out[j] = LOG ? g[j] - fastnn::math_exp(yr[j]) * s : yr[j] * (g[j] - s);
        }
    }
}

template <typename T, bool LOG>
__global__ void softmax_backward_strided(const T* __restrict__ gy, const T* __restrict__ y,
                                         T* __restrict__ gx, fastnn::index_t outer,
                                         fastnn::index_t d, fastnn::index_t inner) {
    FASTNN_GRID_STRIDE(line, outer * inner) {
        const fastnn::index_t o = line / inner;
        const fastnn::index_t base = o * d * inner + (line - o * inner);
        T s = T(0);
        for (fastnn::index_t j = 0; j < d; ++j) {
            const fastnn::index_t k = base + j * inner;
            s += LOG ? gy[k] : gy[k] * y[k];
        }
        for (fastnn::index_t j = 0; j < d; ++j) {
            const fastnn::index_t k = base + j * inner;
            gx[k] = LOG ? gy[k] - fastnn::math_exp(y[k]) * s : y[k] * (gy[k] - s);
        }
    }
}
