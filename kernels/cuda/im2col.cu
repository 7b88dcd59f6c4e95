// im2col and col2im for 2-D convolution (1-D convolution is the case in_h = k_h = 1).
//
// The column matrix holds, for each row r = (c * k_h + i) * k_w + j (an input channel and a
// kernel offset), each image n of the batch chunk and each output position p = oh * out_w
// + ow, the input element that offset sees:
//     col[r * row_step + n * image_step + p] = x[n, c, oh * stride_h - pad_h + i * dil_h,
//                                                   ow * stride_w - pad_w + j * dil_w]
// (0 where that falls in the padding).  The steps choose the layout: (rows, images, P)
// for the weight gradient (one GEMM with the images in its inner dimension) and
// (images, rows, P) for the forward pass (a batched GEMM that writes NCHW directly).
// pad_h / pad_w are the paddings before the input; the paddings after are implied by
// out_h / out_w.
//
// col2im is the adjoint, written as a gather: one thread per input element adds up the
// column entries that read it, in a fixed order: no atomics, deterministic.
#include "common.cuh"

template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ col, int images, int channels,
                       int in_h, int in_w, int k_h, int k_w, int out_h, int out_w,
                       int stride_h, int stride_w, int pad_h, int pad_w, int dil_h, int dil_w,
                       fastnn::index_t row_step, fastnn::index_t image_step) {
    const fastnn::index_t positions = (fastnn::index_t)out_h * out_w;
    const fastnn::index_t total = (fastnn::index_t)channels * k_h * k_w * images * positions;
    FASTNN_GRID_STRIDE(idx, total) {
        // idx = (row * images + n) * positions + p: consecutive threads, consecutive p.
        const fastnn::index_t p = idx % positions;
        const fastnn::index_t rest = idx / positions;
        const int n = (int)(rest % images);
        const int row = (int)(rest / images);
        const int j = row % k_w;
        const int i = (row / k_w) % k_h;
        const int c = row / (k_w * k_h);
        const int oh = (int)(p / out_w);
        const int ow = (int)(p % out_w);
        const int h = oh * stride_h - pad_h + i * dil_h;
        const int w = ow * stride_w - pad_w + j * dil_w;
        T value = T(0);
        if (h >= 0 && h < in_h && w >= 0 && w < in_w) {
            value = x[(((fastnn::index_t)n * channels + c) * in_h + h) * in_w + w];
        }
        col[row * row_step + n * image_step + p] = value;
    }
}

template <typename T>
__global__ void col2im(const T* __restrict__ col, T* __restrict__ x, int images, int channels,
                       int in_h, int in_w, int k_h, int k_w, int out_h, int out_w,
                       int stride_h, int stride_w, int pad_h, int pad_w, int dil_h, int dil_w,
                       fastnn::index_t row_step, fastnn::index_t image_step) {
    const fastnn::index_t total = (fastnn::index_t)images * channels * in_h * in_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, h, w] = fastnn::plane_position(idx, in_h, in_w);  // n * C + c
        const int c = (int)(plane % channels);
        const int n = (int)(plane / channels);
        T acc = T(0);
        for (int i = 0; i < k_h; ++i) {
            const int num_h = h + pad_h - i * dil_h;  // = oh * stride_h for a reading oh
            if (num_h < 0) break;                     // only decreases with i
            if (num_h % stride_h != 0) continue;
            const int oh = num_h / stride_h;
            if (oh >= out_h) continue;
            for (int j = 0; j < k_w; ++j) {
                const int num_w = w + pad_w - j * dil_w;
                if (num_w < 0) break;
                if (num_w % stride_w != 0) continue;
                const int ow = num_w / stride_w;
                if (ow >= out_w) continue;
                const fastnn::index_t row = ((fastnn::index_t)c * k_h + i) * k_w + j;
                acc += col[row * row_step + n * image_step + (fastnn::index_t)oh * out_w + ow];
            }
        }
        x[idx] = acc;
    }
}
