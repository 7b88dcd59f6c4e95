// Losses (PyTorch's definitions), their gradients, and the output-layer sensitivity (BP1).
//
//   loss_none<T, LOSS>(x, t, out, n)                  out = loss(x, t), elementwise
//   loss_partial<T, LOSS>(x, t, n, chunk_len, partial) per-chunk double sums of loss(x, t),
//                                                      finished by reduce.cu's sum_finish
//   loss_backward<T, LOSS>(x, t, gx, n, scale)        gx = d loss / d x * scale
//   cross_entropy_rows<T, THREADS>(logits, target, nll, rows, classes)
//        nll[r] = logsumexp(logits[r]) - logits[r, target[r]], one block per row
//   cross_entropy_grad_rows<T, FROM_LOGITS, THREADS>(y, target, gx, rows, classes, scale)
//        gx = (p - onehot(target)) * scale with p = softmax(y) (FROM_LOGITS) or p = y
//   output_sensitivity<T, LOSS, ACT>(y, t, u, delta, n, scale)
//        delta = f'(u) * d loss / d y * scale for the pointwise losses
//
// `scale` is 1 / count for reduction "mean" and 1 otherwise.  Binary cross-entropy clamps
// each log term at -100 and the denominator of its gradient at 1e-12 (a float constant in
// PyTorch, for double inputs too).
#include "common.cuh"

namespace fastnn {

enum { LOSS_MSE = 0, LOSS_BCE = 1 };

template <int LOSS, typename T>
__device__ __forceinline__ T pointwise_loss(T x, T t) {
    if (LOSS == LOSS_MSE) {
        const T d = x - t;
        return d * d;
    }
    const T log_p = larger(math_log(x), T(-100));
    const T log_q = larger(math_log1p(-x), T(-100));
    return -(t * log_p + (T(1) - t) * log_q);
}

// d loss / d x (before the reduction's scale).
template <int LOSS, typename T>
__device__ __forceinline__ T pointwise_loss_gradient(T x, T t) {
    if (LOSS == LOSS_MSE) return T(2) * (x - t);
    return (x - t) / larger(x * (T(1) - x), T(1e-12f));
}

}  // namespace fastnn

template <typename T, int LOSS>
__global__ void loss_none(const T* __restrict__ x, const T* __restrict__ t, T* __restrict__ out,
                          fastnn::index_t n) {
    FASTNN_GRID_STRIDE(i, n) { out[i] = fastnn::pointwise_loss<LOSS>(x[i], t[i]); }
}

// Block b sums the elements [b * chunk_len, (b + 1) * chunk_len) into partial[b].
template <typename T, int LOSS>
__global__ void loss_partial(const T* __restrict__ x, const T* __restrict__ t,
                             fastnn::index_t n, fastnn::index_t chunk_len,
                             double* __restrict__ partial) {
    __shared__ double scratch[FASTNN_THREADS];
    const fastnn::index_t begin = (fastnn::index_t)blockIdx.x * chunk_len;
    const fastnn::index_t end = fastnn::smaller(begin + chunk_len, n);
    double acc = 0.0;
    for (fastnn::index_t i = begin + threadIdx.x; i < end; i += FASTNN_THREADS) {
        acc += (double)fastnn::pointwise_loss<LOSS>(x[i], t[i]);
    }
    acc = fastnn::block_sum<FASTNN_THREADS>(acc, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <typename T, int LOSS>
__global__ void loss_backward(const T* __restrict__ x, const T* __restrict__ t,
                              T* __restrict__ gx, fastnn::index_t n, T scale) {
    FASTNN_GRID_STRIDE(i, n) { gx[i] = fastnn::pointwise_loss_gradient<LOSS>(x[i], t[i]) * scale; }
}

template <typename T, int THREADS>
__global__ void cross_entropy_rows(const T* __restrict__ logits,
                                   const long long* __restrict__ target, T* __restrict__ nll,
                                   fastnn::index_t rows, fastnn::index_t classes) {
    __shared__ T scratch[THREADS];
    for (fastnn::index_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* x = logits + row * classes;
        T m = fastnn::negative_infinity(T(0));
        for (fastnn::index_t j = threadIdx.x; j < classes; j += THREADS) m = fastnn::nan_max(m, x[j]);
        m = fastnn::block_max<THREADS>(m, scratch);
        T s = T(0);
        for (fastnn::index_t j = threadIdx.x; j < classes; j += THREADS) {
            s += fastnn::math_exp(x[j] - m);
        }
        s = fastnn::block_sum<THREADS>(s, scratch);
        if (threadIdx.x == 0) nll[row] = fastnn::math_log(s) - (x[target[row]] - m);
    }
}

template <typename T, bool FROM_LOGITS, int THREADS>
__global__ void cross_entropy_grad_rows(const T* __restrict__ y,
                                        const long long* __restrict__ target,
                                        T* __restrict__ gx, fastnn::index_t rows,
                                        fastnn::index_t classes, T scale) {
    __shared__ T scratch[THREADS];
    for (fastnn::index_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* x = y + row * classes;
        T* out = gx + row * classes;
        const fastnn::index_t label = target[row];
        T m = T(0);
        T inv_s = T(1);
        if (FROM_LOGITS) {
            m = fastnn::negative_infinity(T(0));
            for (fastnn::index_t j = threadIdx.x; j < classes; j += THREADS) {
                m = fastnn::nan_max(m, x[j]);
            }
            m = fastnn::block_max<THREADS>(m, scratch);
            T s = T(0);
            for (fastnn::index_t j = threadIdx.x; j < classes; j += THREADS) {
                s += fastnn::math_exp(x[j] - m);
            }
            inv_s = T(1) / fastnn::block_sum<THREADS>(s, scratch);
        }
        for (fastnn::index_t j = threadIdx.x; j < classes; j += THREADS) {
            const T p = FROM_LOGITS ? fastnn::math_exp(x[j] - m) * inv_s : x[j];
            out[j] = (j == label ? p - T(1) : p) * scale;
        }
    }
}

template <typename T, int LOSS, int ACT>
__global__ void output_sensitivity(const T* __restrict__ y, const T* __restrict__ t,
                                   const T* __restrict__ u, T* __restrict__ delta,
                                   fastnn::index_t n, T scale) {
    FASTNN_GRID_STRIDE(i, n) {
        T d;
        if (LOSS == fastnn::LOSS_BCE && ACT == fastnn::ACT_SIGMOID) {
            d = y[i] - t[i];  // f'(u) = y (1 - y) cancels the denominator exactly
        } else {
            d = fastnn::derivative_at<ACT>(u[i]) * fastnn::pointwise_loss_gradient<LOSS>(y[i], t[i]);
        }
        delta[i] = d * scale;
    }
}
