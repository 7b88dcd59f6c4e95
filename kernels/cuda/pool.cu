// Max and average pooling over (planes, in_h, in_w) inputs, planes = N * C (1-D pooling is
// the case in_h = k_h = 1), with PyTorch's rules:
//   - window (oh, ow) starts at (oh * stride_h - pad_h, ow * stride_w - pad_w); its taps are
//     dil apart; ceil_mode windows may hang over the right edge (out_h/out_w say how many).
//   - max pooling never reads padding: a window starts from its first real tap and takes a
//     later tap when it is larger or NaN (NaN propagates; the last NaN's index wins).
//     Indices are flat positions h * in_w + w within the plane, as int64.
//   - average pooling divides by the window clipped to the padded input
//     (count_include_pad) or by the number of real taps.
// Backward passes are gathers (one thread per input element, a fixed order, no atomics),
// except max_pool_backward_scatter, the fallback for user indices that point outside their
// windows: one thread per plane, serial over the plane's outputs (still deterministic).
#include "common.cuh"

// One output per thread; writes indices[idx] only when INDICES.
template <typename T, bool INDICES>
__global__ void max_pool_forward(const T* __restrict__ x, T* __restrict__ y,
                                 long long* __restrict__ indices, fastnn::index_t planes,
                                 int in_h, int in_w, int out_h, int out_w, int k_h, int k_w,
                                 int stride_h, int stride_w, int pad_h, int pad_w, int dil_h,
                                 int dil_w) {
    const fastnn::index_t total = planes * out_h * out_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, oh, ow] = fastnn::plane_position(idx, out_h, out_w);
        const T* xp = x + plane * in_h * in_w;
        T best = T(0);
        long long best_index = -1;
        for (int i = 0; i < k_h; ++i) {
            const int h = oh * stride_h - pad_h + i * dil_h;
            if (h < 0 || h >= in_h) continue;
            for (int j = 0; j < k_w; ++j) {
                const int w = ow * stride_w - pad_w + j * dil_w;
                if (w < 0 || w >= in_w) continue;
                const T v = xp[(fastnn::index_t)h * in_w + w];
                if (best_index < 0 || v > best || fastnn::is_nan(v)) {
                    best = v;
                    best_index = (long long)h * in_w + w;
                }
            }
        }
        y[idx] = best;  // the host rejects windows with no real tap (PyTorch would give -inf)
        if (INDICES) indices[idx] = best_index;
    }
}

// Sets *bad = 1 if some index is not a tap of its own window (user-supplied indices), so
// the host knows whether the gather below sees every contribution.
template <typename T>
__global__ void max_pool_check_indices(const long long* __restrict__ indices, int* bad,
                                       fastnn::index_t planes, int in_h, int in_w, int out_h,
                                       int out_w, int k_h, int k_w, int stride_h, int stride_w,
                                       int pad_h, int pad_w, int dil_h, int dil_w) {
    const fastnn::index_t total = planes * out_h * out_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const int ow = (int)(idx % out_w);
        const int oh = (int)((idx / out_w) % out_h);
        const long long where = indices[idx];
        const int dh = (int)(where / in_w) - (oh * stride_h - pad_h);  // offset in the window
        const int dw = (int)(where % in_w) - (ow * stride_w - pad_w);
        const bool tap = dh >= 0 && dh % dil_h == 0 && dh / dil_h < k_h && dw >= 0 &&
                         dw % dil_w == 0 && dw / dil_w < k_w;
        if (!tap) *bad = 1;  // every writer stores the same value
    }
}

// gx[plane, h, w] = sum of gy over the windows that contain (h, w) and chose it.
template <typename T>
__global__ void max_pool_backward_gather(const T* __restrict__ gy,
                                         const long long* __restrict__ indices,
                                         T* __restrict__ gx, fastnn::index_t planes, int in_h,
                                         int in_w, int out_h, int out_w, int k_h, int k_w,
                                         int stride_h, int stride_w, int pad_h, int pad_w,
                                         int dil_h, int dil_w) {
    const fastnn::index_t total = planes * in_h * in_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, h, w] = fastnn::plane_position(idx, in_h, in_w);
        const long long here = (long long)h * in_w + w;
        const fastnn::index_t first = plane * out_h * out_w;
        T acc = T(0);
        for (int i = k_h - 1; i >= 0; --i) {  // ascending oh
            const int num_h = h + pad_h - i * dil_h;
            if (num_h < 0 || num_h % stride_h != 0) continue;
            const int oh = num_h / stride_h;
            if (oh >= out_h) continue;
            for (int j = k_w - 1; j >= 0; --j) {
                const int num_w = w + pad_w - j * dil_w;
                if (num_w < 0 || num_w % stride_w != 0) continue;
                const int ow = num_w / stride_w;
                if (ow >= out_w) continue;
                const fastnn::index_t o = first + (fastnn::index_t)oh * out_w + ow;
                if (indices[o] == here) acc += gy[o];
            }
        }
        gx[idx] = acc;
    }
}

// One thread per plane adds each output's gradient at its index, in output order.  gx
// must be zero on entry.
template <typename T>
__global__ void max_pool_backward_scatter(const T* __restrict__ gy,
                                          const long long* __restrict__ indices,
                                          T* __restrict__ gx, fastnn::index_t planes,
                                          fastnn::index_t outputs, fastnn::index_t inputs) {
    FASTNN_GRID_STRIDE(plane, planes) {
        for (fastnn::index_t o = plane * outputs; o < (plane + 1) * outputs; ++o) {
            gx[plane * inputs + indices[o]] += gy[o];
        }
    }
}

namespace fastnn {

// The divisor of window o along one axis: its length clipped to the padded input
// (count_include_pad) or its number of real taps.
__device__ __forceinline__ int window_divisor(int o, int size, int k, int stride, int pad,
                                              bool include_pad) {
    const int start = o * stride - pad;
    const int end = smaller(start + k, size + pad);
    if (include_pad) return end - start;
    return smaller(end, size) - larger(start, 0);
}

}  // namespace fastnn

template <typename T>
__global__ void avg_pool_forward(const T* __restrict__ x, T* __restrict__ y,
                                 fastnn::index_t planes, int in_h, int in_w, int out_h,
                                 int out_w, int k_h, int k_w, int stride_h, int stride_w,
                                 int pad_h, int pad_w, int count_include_pad) {
    const fastnn::index_t total = planes * out_h * out_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, oh, ow] = fastnn::plane_position(idx, out_h, out_w);
        const T* xp = x + plane * in_h * in_w;
        const int h0 = oh * stride_h - pad_h;
        const int w0 = ow * stride_w - pad_w;
        T acc = T(0);
        for (int h = fastnn::larger(h0, 0); h < fastnn::smaller(h0 + k_h, in_h); ++h) {
            for (int w = fastnn::larger(w0, 0); w < fastnn::smaller(w0 + k_w, in_w); ++w) {
                acc += xp[(fastnn::index_t)h * in_w + w];
            }
        }
        const bool include = count_include_pad != 0;
        const int divisor = fastnn::window_divisor(oh, in_h, k_h, stride_h, pad_h, include) *
                            fastnn::window_divisor(ow, in_w, k_w, stride_w, pad_w, include);
        y[idx] = acc / T(divisor);
    }
}

template <typename T>
__global__ void avg_pool_backward(const T* __restrict__ gy, T* __restrict__ gx,
                                  fastnn::index_t planes, int in_h, int in_w, int out_h,
                                  int out_w, int k_h, int k_w, int stride_h, int stride_w,
                                  int pad_h, int pad_w, int count_include_pad) {
    const fastnn::index_t total = planes * in_h * in_w;
    const bool include = count_include_pad != 0;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, h, w] = fastnn::plane_position(idx, in_h, in_w);
        const T* gp = gy + plane * out_h * out_w;
        // Windows o with o * stride - pad <= h < o * stride - pad + k.
        const int lo_h = fastnn::larger(0, (h + pad_h - k_h + stride_h) / stride_h);
        const int hi_h = fastnn::smaller(out_h - 1, (h + pad_h) / stride_h);
        const int lo_w = fastnn::larger(0, (w + pad_w - k_w + stride_w) / stride_w);
        const int hi_w = fastnn::smaller(out_w - 1, (w + pad_w) / stride_w);
        T acc = T(0);
        for (int oh = lo_h; oh <= hi_h; ++oh) {
            const int div_h = fastnn::window_divisor(oh, in_h, k_h, stride_h, pad_h, include);
            for (int ow = lo_w; ow <= hi_w; ++ow) {
                const int div_w = fastnn::window_divisor(ow, in_w, k_w, stride_w, pad_w, include);
                acc += gp[(fastnn::index_t)oh * out_w + ow] / T(div_h * div_w);
            }
        }
        gx[idx] = acc;
    }
}
