// Helpers shared by every kernels/cuda/*.cu file: index type, grid-stride loops, math by
// element type, activations and their derivatives, block reductions.
//
// The sources are compiled at run time by NVRTC (cupy.RawModule), which has no system
// headers: nothing here may #include anything.  fastnn/_backends/cupy/_sources.py pastes
// this file into each .cu file in place of its #include line, so every source reaching
// NVRTC is self-contained (and CuPy's compile cache sees every character of it).
//
// Every kernel is a template over the element type T (float or double), instantiated by
// name from Python ("relu_forward<float>" ...).  Arrays reach kernels C-contiguous.
#pragma once

namespace fastnn {

// Flat indices and element counts are 64-bit: a tensor may hold more than 2^31 elements.
typedef long long index_t;

// Threads per block of the 1-D (grid-stride) kernels and of the block reductions.  The
// host code launches those kernels with exactly this many threads (see _sources.py).
#define FASTNN_THREADS 256

// for (i = global thread index; i < n; i += total threads): every kernel that maps one
// thread to one element loops like this, so any grid size covers any n.
#define FASTNN_GRID_STRIDE(i, n)                                                          \
    for (fastnn::index_t i = (fastnn::index_t)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (fastnn::index_t)blockDim.x * gridDim.x)

// Where flat index idx of a C-contiguous (planes, rows, cols) array lies, in that order, so
// that a kernel writes `const auto [plane, h, w] = fastnn::plane_position(idx, rows, cols);`.
struct PlanePosition {
    index_t plane;
    int row, col;
};

__device__ __forceinline__ PlanePosition plane_position(index_t idx, int rows, int cols) {
    PlanePosition at;  // col, row, plane: this order gives the same PTX as the open-coded form
    at.col = (int)(idx % cols);
    at.row = (int)((idx / cols) % rows);
    at.plane = idx / ((index_t)rows * cols);
    return at;
}

// ---------------------------------------------------------------------------------------
// Math by element type (the float versions stay in single precision)
// ---------------------------------------------------------------------------------------

__device__ __forceinline__ float math_exp(float x) { return expf(x); }
__device__ __forceinline__ double math_exp(double x) { return exp(x); }
__device__ __forceinline__ float math_log(float x) { return logf(x); }
__device__ __forceinline__ double math_log(double x) { return log(x); }
__device__ __forceinline__ float math_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double math_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float math_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double math_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float math_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double math_abs(double x) { return fabs(x); }

// x != x is true only for NaN (NVRTC compiles without fast-math, so this holds).
template <typename T>
__device__ __forceinline__ bool is_nan(T x) {
    return x != x;
}

template <typename T>
__device__ __forceinline__ T larger(T a, T b) {
    return a > b ? a : b;
}

template <typename T>
__device__ __forceinline__ T smaller(T a, T b) {
    return a < b ? a : b;
}

// The larger of a and b, NaN if either is NaN (as torch.max): max-reductions propagate NaN.
template <typename T>
__device__ __forceinline__ T nan_max(T a, T b) {
    if (is_nan(a)) return a;
    if (is_nan(b)) return b;
    return a > b ? a : b;
}

__device__ __forceinline__ float negative_infinity(float) { return __int_as_float(0xff800000); }
__device__ __forceinline__ double negative_infinity(double) {
    return __longlong_as_double((long long)0xfff0000000000000ULL);
}

// ---------------------------------------------------------------------------------------
// Activations: f(u), f'(u), and f'(u) written with the output y = f(u)
// ---------------------------------------------------------------------------------------

// The activation codes; fastnn/_backends/cupy/_sources.py holds the same numbers.
enum { ACT_IDENTITY = 0, ACT_RELU = 1, ACT_SIGMOID = 2, ACT_TANH = 3 };
// relu6 = min(max(u, 0), 6): the convolutions' fused activation.
enum { ACT_RELU6 = 4 };

// 1 / (1 + exp(-u)) without overflow: exp is only taken of -|u| <= 0.
template <typename T>
__device__ __forceinline__ T stable_sigmoid(T u) {
    T e = math_exp(-math_abs(u));
    return u >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <int ACT, typename T>
__device__ __forceinline__ T activate(T u) {
    if (ACT == ACT_RELU) return (u > T(0) || is_nan(u)) ? u : T(0);  // NaN stays NaN
    if (ACT == ACT_RELU6) return u < T(0) ? T(0) : (u > T(6) ? T(6) : u);  // NaN stays NaN
    if (ACT == ACT_SIGMOID) return stable_sigmoid(u);
    if (ACT == ACT_TANH) return math_tanh(u);
    return u;
}

// f'(u) at the pre-activation u (relu: 1 where u > 0, else 0; NaN gives 0).
template <int ACT, typename T>
__device__ __forceinline__ T derivative_at(T u) {
    if (ACT == ACT_RELU) return u > T(0) ? T(1) : T(0);
    if (ACT == ACT_RELU6) return (u > T(0) && u < T(6)) ? T(1) : T(0);
    if (ACT == ACT_SIGMOID) {
        T s = stable_sigmoid(u);
        return s * (T(1) - s);
    }
    if (ACT == ACT_TANH) {
        T t = math_tanh(u);
        return T(1) - t * t;
    }
    return T(1);
}

// g * f'(u) written with the forward output y = f(u), as PyTorch's backward does: relu
// passes g where y > 0 (and where y is NaN), sigmoid g y (1 - y), tanh g (1 - y^2).
template <int ACT, typename T>
__device__ __forceinline__ T gradient_from_output(T g, T y) {
    if (ACT == ACT_RELU) return y <= T(0) ? T(0) : g;
    if (ACT == ACT_RELU6) return (y <= T(0) || y >= T(6)) ? T(0) : g;  // as hardtanh's
    if (ACT == ACT_SIGMOID) return g * y * (T(1) - y);
    if (ACT == ACT_TANH) return g * (T(1) - y * y);
    return g;
}

// ---------------------------------------------------------------------------------------
// Block reductions (deterministic: a fixed tree over the threads of one block)
// ---------------------------------------------------------------------------------------

// combine(v) of all THREADS threads of the block, by a fixed tree; every thread gets the
// result.  `scratch` is a __shared__ array of THREADS elements; blockDim.x must equal THREADS
// (a power of two) and every thread of the block must call this (it synchronises).
template <int THREADS, typename A, typename Combine>
__device__ __forceinline__ A block_reduce(A v, A* scratch, Combine combine) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            scratch[threadIdx.x] = combine(scratch[threadIdx.x], scratch[threadIdx.x + half]);
        }
        __syncthreads();
    }
    A result = scratch[0];
    __syncthreads();  // scratch may be reused right after
    return result;
}

struct Plus {
    template <typename A>
    __device__ __forceinline__ A operator()(A a, A b) const {
        return a + b;
    }
};

struct NanMax {
    template <typename A>
    __device__ __forceinline__ A operator()(A a, A b) const {
        return nan_max(a, b);
    }
};

// Sum of v over the THREADS threads of the block (contract of block_reduce).
template <int THREADS, typename A>
__device__ __forceinline__ A block_sum(A v, A* scratch) {
    return block_reduce<THREADS>(v, scratch, Plus());
}

// Maximum of v over the block, NaN if any thread holds NaN (contract of block_reduce).
template <int THREADS, typename A>
__device__ __forceinline__ A block_max(A v, A* scratch) {
    return block_reduce<THREADS>(v, scratch, NanMax());
}

}  // namespace fastnn
