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

// ------------------------------------------------------------------------------------
// hardtanh (relu6), leaky_relu, silu and gelu: codes 5 and up (EXTRA_ACTIVATIONS in
// fastnn/_backends/cupy/_sources.py), parameters p0, p1 passed as doubles:
//
//   extra_forward<T, ACT>(x, y, n, p0, p1)         y = f(x); y may be x (in place)
//   extra_backward<T, ACT>(gy, v, gx, n, p0, p1)   gx = gy * f'
//
// hardtanh: p0, p1 = min_val, max_val; its gradient from the OUTPUT v: gy where
// p0 < v < p1 (NaN passes gy, as torch's hardtanh_backward).  leaky_relu: p0 =
// negative_slope; gradient from the output: gy where v > 0, else p0 gy (p0 >= 0).
// silu and gelu: gradients from the forward INPUT v.
enum { XACT_HARDTANH = 5, XACT_LEAKY_RELU = 6, XACT_SILU = 7, XACT_GELU = 8, XACT_GELU_TANH = 9 };

__device__ __forceinline__ float math_erf(float x) { return erff(x); }
__device__ __forceinline__ double math_erf(double x) { return erf(x); }

// sqrt(2/pi) (x + 0.044715 x^3) and its derivative, x bounded at +-100: tanh is +-1
// there already, and x^3 cannot overflow (0 * inf would make the gradient NaN).
template <typename T>
__device__ __forceinline__ T gelu_inner(T x, T* slope) {
    const T beta = T(0.7978845608028654), kappa = T(0.044715);
    T b = x < T(-100) ? T(-100) : (x > T(100) ? T(100) : x);
    *slope = beta * (T(1) + T(3) * kappa * b * b);
    return beta * b * (T(1) + kappa * b * b);
}

template <int ACT, typename T>
__device__ __forceinline__ T extra_activate(T x, T p0, T p1) {
    if (ACT == XACT_HARDTANH) return x < p0 ? p0 : (x > p1 ? p1 : x);  // NaN stays NaN
    if (ACT == XACT_LEAKY_RELU) return x > T(0) ? x : x * p0;
    if (ACT == XACT_SILU) return x * fastnn::stable_sigmoid(x);  // NaN at -inf, as torch
    if (ACT == XACT_GELU) return x * T(0.5) * (T(1) + math_erf(x * T(0.7071067811865476)));
    if (ACT == XACT_GELU_TANH) {  // x (1 + tanh(u)) / 2 = x sigmoid(2u)
        T slope;
        return x * fastnn::stable_sigmoid(T(2) * gelu_inner(x, &slope));
    }
    return x;
}

template <int ACT, typename T>
__device__ __forceinline__ T extra_gradient(T g, T v, T p0, T p1) {
    if (ACT == XACT_HARDTANH) return (v <= p0 || v >= p1) ? T(0) : g;
    if (ACT == XACT_LEAKY_RELU) return v > T(0) ? g : g * p0;
    if (ACT == XACT_SILU) {  // s (1 + x (1 - s)), s and 1 - s from e = exp(-|x|)
        T e = fastnn::math_exp(-fastnn::math_abs(v));
        T r = T(1) / (T(1) + e);
        T s = v >= T(0) ? r : e * r;
        T c = v >= T(0) ? e * r : r;
        return g * (s * (T(1) + v * c));
    }
    if (ACT == XACT_GELU) {  // Phi(x) + x phi(x)
        T pdf = fastnn::math_exp(T(-0.5) * v * v) * T(0.3989422804014327);
        return g * (T(0.5) * (T(1) + math_erf(v * T(0.7071067811865476))) + v * pdf);
    }
    if (ACT == XACT_GELU_TANH) {  // sigmoid(2u) + x / 2 sech^2(u) u', from e = exp(-2|u|)
        T slope;
        T u = gelu_inner(v, &slope);
        T e = fastnn::math_exp(T(-2) * fastnn::math_abs(u));
        T r = T(1) / (T(1) + e);
        T s = u >= T(0) ? r : e * r;
        return g * (s + T(2) * v * (e * r * r) * slope);
    }
    return g;
}

template <typename T, int ACT>
__global__ void extra_forward(const T* x, T* y, fastnn::index_t n, double p0, double p1) {
    const T a = T(p0), b = T(p1);
    FASTNN_GRID_STRIDE(i, n) { y[i] = extra_activate<ACT>(x[i], a, b); }
}

template <typename T, int ACT>
__global__ void extra_backward(const T* __restrict__ gy, const T* __restrict__ v,
                               T* __restrict__ gx, fastnn::index_t n, double p0, double p1) {
    const T a = T(p0), b = T(p1);
    FASTNN_GRID_STRIDE(i, n) { gx[i] = extra_gradient<ACT>(gy[i], v[i], a, b); }
}
