// Adaptive pooling over (planes, in_h, in_w) inputs, planes = N * C (1-D pooling is the
// case in_h = out_h = 1), with PyTorch's windows: output o of an axis of size `in` pooled
// to `out` covers [floor(o * in / out), ceil((o + 1) * in / out)).
//   - forward: one thread per output.  Max scans its window row by row from the first
//     element and takes a later one when larger or NaN (the first maximum / the last NaN
//     wins); indices are flat positions h * in_w + w within the plane, as int64.
//   - backward: gathers, one thread per input element, over the windows that contain it:
//     by the symmetry of the rule, outputs [floor(h * out / in), ceil((h + 1) * out / in)).
//     A fixed order, no atomics.  adaptive_max_check_indices tells the host when a caller's
//     index lies outside its window; the host then runs pool.cu's per-plane scatter.
#include "common.cuh"

namespace fastnn {

__device__ __forceinline__ int adaptive_start(int i, int in, int out) {
    return (int)(((long long)i * in) / out);
}

__device__ __forceinline__ int adaptive_end(int i, int in, int out) {
    return (int)(((long long)(i + 1) * in + out - 1) / out);
}

// [adaptive_start, adaptive_end) of output i, as a pair.
struct Span {
    int start, end;
};

__device__ __forceinline__ Span adaptive_span(int i, int in, int out) {
    return {adaptive_start(i, in, out), adaptive_end(i, in, out)};
}

}  // namespace fastnn

template <typename T>
__global__ void adaptive_avg_forward(const T* __restrict__ x, T* __restrict__ y,
                                     fastnn::index_t planes, int in_h, int in_w, int out_h,
                                     int out_w) {
    const fastnn::index_t total = planes * out_h * out_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, oh, ow] = fastnn::plane_position(idx, out_h, out_w);
        const T* xp = x + plane * in_h * in_w;
        const auto [h0, h1] = fastnn::adaptive_span(oh, in_h, out_h);
        const auto [w0, w1] = fastnn::adaptive_span(ow, in_w, out_w);
        T sum = T(0);
        for (int h = h0; h < h1; ++h) {
            for (int w = w0; w < w1; ++w) sum += xp[(fastnn::index_t)h * in_w + w];
        }
        y[idx] = sum / T((h1 - h0) * (w1 - w0));
    }
}

// gx[plane, h, w] = sum over the windows containing (h, w) of gy / window size.
template <typename T>
__global__ void adaptive_avg_backward(const T* __restrict__ gy, T* __restrict__ gx,
                                      fastnn::index_t planes, int in_h, int in_w, int out_h,
                                      int out_w) {
    const fastnn::index_t total = planes * in_h * in_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, h, w] = fastnn::plane_position(idx, in_h, in_w);
        const T* gp = gy + plane * out_h * out_w;
        T sum = T(0);
        const int oh1 = fastnn::adaptive_end(h, out_h, in_h);
        const int ow1 = fastnn::adaptive_end(w, out_w, in_w);
        for (int oh = fastnn::adaptive_start(h, out_h, in_h); oh < oh1; ++oh) {
            const int rows = fastnn::adaptive_end(oh, in_h, out_h) -
                             fastnn::adaptive_start(oh, in_h, out_h);
            for (int ow = fastnn::adaptive_start(w, out_w, in_w); ow < ow1; ++ow) {
                const int cols = fastnn::adaptive_end(ow, in_w, out_w) -
                                 fastnn::adaptive_start(ow, in_w, out_w);
                sum += gp[(fastnn::index_t)oh * out_w + ow] / T(rows * cols);
            }
        }
        gx[idx] = sum;
    }
}

// One output per thread; writes indices[idx] only when INDICES.
template <typename T, bool INDICES>
__global__ void adaptive_max_forward(const T* __restrict__ x, T* __restrict__ y,
                                     long long* __restrict__ indices, fastnn::index_t planes,
                                     int in_h, int in_w, int out_h, int out_w) {
    const fastnn::index_t total = planes * out_h * out_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, oh, ow] = fastnn::plane_position(idx, out_h, out_w);
        const T* xp = x + plane * in_h * in_w;
        const auto [h0, h1] = fastnn::adaptive_span(oh, in_h, out_h);
        const auto [w0, w1] = fastnn::adaptive_span(ow, in_w, out_w);
        long long best_index = (long long)h0 * in_w + w0;
        T best = xp[best_index];
        for (int h = h0; h < h1; ++h) {
            for (int w = w0; w < w1; ++w) {
                const T v = xp[(fastnn::index_t)h * in_w + w];
                if (v > best || fastnn::is_nan(v)) {
                    best = v;
                    best_index = (long long)h * in_w + w;
                }
            }
        }
        y[idx] = best;
        if (INDICES) indices[idx] = best_index;
    }
}

// Sets *bad = 1 if some index lies outside its own window (caller-supplied indices).
template <typename T>
__global__ void adaptive_max_check_indices(const long long* __restrict__ indices, int* bad,
                                           fastnn::index_t planes, int in_h, int in_w,
                                           int out_h, int out_w) {
    const fastnn::index_t total = planes * out_h * out_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const int ow = (int)(idx % out_w);
        const int oh = (int)((idx / out_w) % out_h);
        const long long where = indices[idx];
        const int h = (int)(where / in_w);
        const int w = (int)(where % in_w);
        const bool inside = fastnn::adaptive_start(oh, in_h, out_h) <= h &&
                            h < fastnn::adaptive_end(oh, in_h, out_h) &&
                            fastnn::adaptive_start(ow, in_w, out_w) <= w &&
                            w < fastnn::adaptive_end(ow, in_w, out_w);
        if (!inside) *bad = 1;  // every writer stores the same value
    }
}

// gx[plane, h, w] = sum of gy over the windows that contain (h, w) and chose it.
template <typename T>
__global__ void adaptive_max_backward_gather(const T* __restrict__ gy,
                                             const long long* __restrict__ indices,
                                             T* __restrict__ gx, fastnn::index_t planes,
                                             int in_h, int in_w, int out_h, int out_w) {
    const fastnn::index_t total = planes * in_h * in_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, h, w] = fastnn::plane_position(idx, in_h, in_w);
        const fastnn::index_t base = plane * out_h * out_w;
        const long long me = (long long)h * in_w + w;
        T sum = T(0);
        const int oh1 = fastnn::adaptive_end(h, out_h, in_h);
        const int ow1 = fastnn::adaptive_end(w, out_w, in_w);
        for (int oh = fastnn::adaptive_start(h, out_h, in_h); oh < oh1; ++oh) {
            for (int ow = fastnn::adaptive_start(w, out_w, in_w); ow < ow1; ++ow) {
                const fastnn::index_t o = base + (fastnn::index_t)oh * out_w + ow;
                if (indices[o] == me) sum += gy[o];
            }
        }
        gx[idx] = sum;
    }
}
