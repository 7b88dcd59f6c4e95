// Epilogues that run over a fresh cuBLAS result in place (one thread per element):
//
//   bias_activation<T, ACT, BIAS>(y, bias, n, inner, channels)
//       y = f(y + bias[channel]) with channel = (i / inner) % channels: the fused
//       epilogue of linear ((rows, out): inner = 1) and of convolution ((N, C, P):
//       inner = P).  Without BIAS the bias argument is not read.
//   derivative_multiply<T, ACT>(v, u, n)
//       v *= f'(u): the sensitivity recursion delta = f'(u) * (delta_next @ W), applied
//       to the product cuBLAS just wrote, so the product needs no second buffer.
//   gemm_epilogue<T>(y, c, rows, cols, c_row_step, c_col_step, alpha, beta)
//       y = alpha * y + beta * c[r * c_row_step + k * c_col_step]: a step of 0 broadcasts
//       c along that axis.  The host skips c entirely when beta == 0 (so NaN in c never
//       reaches the result) and passes y itself as c then.
#include "common.cuh"

template <typename T, int ACT, bool BIAS>
__global__ void bias_activation(T* y, const T* bias, fastnn::index_t n, fastnn::index_t inner,
                                int channels) {
    FASTNN_GRID_STRIDE(i, n) {
        T u = y[i];
        if (BIAS) u += bias[(i / inner) % channels];
        y[i] = fastnn::activate<ACT>(u);
    }
}

template <typename T, int ACT>
__global__ void derivative_multiply(T* v, const T* __restrict__ u, fastnn::index_t n) {
    FASTNN_GRID_STRIDE(i, n) { v[i] *= fastnn::derivative_at<ACT>(u[i]); }
}

template <typename T, bool USE_C>
__global__ void gemm_epilogue(T* y, const T* c, fastnn::index_t rows, fastnn::index_t cols,
                              fastnn::index_t c_row_step, fastnn::index_t c_col_step, T alpha,
                              T beta) {
    FASTNN_GRID_STRIDE(i, rows * cols) {
        T value = alpha * y[i];
        if (USE_C) {
            fastnn::index_t r = i / cols;
            fastnn::index_t k = i - r * cols;
            value += beta * c[r * c_row_step + k * c_col_step];
        }
        y[i] = value;
    }
}
