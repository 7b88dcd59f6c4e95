// Elementwise activations and their gradients: one thread per element (grid-stride).
//
//   activation_forward<T, ACT>(x, y, n)         y = f(x)
//   activation_backward<T, ACT>(gy, y, gx, n)   gx = gy * f'(u), written with y = f(u)
//
// ACT is one of the codes in common.cuh (ACT_RELU, ACT_SIGMOID, ACT_TANH).
#include "common.cuh"

template <typename T, int ACT>
__global__ void activation_forward(const T* __restrict__ x, T* __restrict__ y,
                                   fastnn::index_t n) {
    FASTNN_GRID_STRIDE(i, n) { y[i] = fastnn::activate<ACT>(x[i]); }
}

template <typename T, int ACT>
__global__ void activation_backward(const T* __restrict__ gy, const T* __restrict__ y,
                                    T* __restrict__ gx, fastnn::index_t n) {
    FASTNN_GRID_STRIDE(i, n) { gx[i] = fastnn::gradient_from_output<ACT>(gy[i], y[i]); }
}
