// Direct 2-D convolution (cross-correlation, as PyTorch) and its gradients, without a
// column buffer.  1-D convolution is the case in_h = k_h = 1.  Layouts: x (N, C_in, H, W),
// w (C_out, C_in / groups, k_h, k_w), y (N, C_out, out_h, out_w), all C-contiguous.
// pad_h / pad_w are the paddings before the input (those after are implied by out_h/out_w).
//
//   conv_direct_forward<T, ACT, BIAS>      one thread per output element, bias and the
//                                          activation ACT (common.cuh) fused in its store
//   conv_direct_backward_input<T>          one thread per input element: a gather over the
//                                          outputs that read it (no atomics)
//   conv_direct_backward_weight<T>         one block per weight element: a block reduction
//                                          over the batch and the output positions
// Every sum runs in a fixed order, so results are deterministic.
#include "common.cuh"

template <typename T, int ACT, bool BIAS>
__global__ void conv_direct_forward(const T* __restrict__ x, const T* __restrict__ w,
                                    const T* __restrict__ bias, T* __restrict__ y, int images,
                                    int in_c, int in_h, int in_w, int out_c, int out_h,
                                    int out_w, int k_h, int k_w, int stride_h, int stride_w,
                                    int pad_h, int pad_w, int dil_h, int dil_w, int groups) {
    const int group_in = in_c / groups;
    const int group_out = out_c / groups;
    const fastnn::index_t total = (fastnn::index_t)images * out_c * out_h * out_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, oh, ow] = fastnn::plane_position(idx, out_h, out_w);  // n * C_out + k
        const int k = (int)(plane % out_c);
        const int n = (int)(plane / out_c);
        const int first_channel = (k / group_out) * group_in;
        T acc = T(0);
        for (int c = 0; c < group_in; ++c) {
            const T* xc = x + ((fastnn::index_t)n * in_c + first_channel + c) * in_h * in_w;
            const T* wc = w + ((fastnn::index_t)k * group_in + c) * k_h * k_w;
            for (int i = 0; i < k_h; ++i) {
                const int h = oh * stride_h - pad_h + i * dil_h;
                if (h < 0 || h >= in_h) continue;
                for (int j = 0; j < k_w; ++j) {
                    const int col = ow * stride_w - pad_w + j * dil_w;
                    if (col < 0 || col >= in_w) continue;
                    acc += xc[(fastnn::index_t)h * in_w + col] * wc[i * k_w + j];
                }
            }
        }
        if (BIAS) acc += bias[k];
        y[idx] = fastnn::activate<ACT>(acc);
    }
}

template <typename T>
__global__ void conv_direct_backward_input(const T* __restrict__ gy, const T* __restrict__ w,
                                           T* __restrict__ gx, int images, int in_c, int in_h,
                                           int in_w, int out_c, int out_h, int out_w, int k_h,
                                           int k_w, int stride_h, int stride_w, int pad_h,
                                           int pad_w, int dil_h, int dil_w, int groups) {
    const int group_in = in_c / groups;
    const int group_out = out_c / groups;
    const fastnn::index_t total = (fastnn::index_t)images * in_c * in_h * in_w;
    FASTNN_GRID_STRIDE(idx, total) {
        const auto [plane, h, col] = fastnn::plane_position(idx, in_h, in_w);  // n * C_in + c
        const int c = (int)(plane % in_c);
        const int n = (int)(plane / in_c);
        const int g = c / group_in;
        const int c_in_group = c - g * group_in;
        T acc = T(0);
        for (int kk = 0; kk < group_out; ++kk) {
            const int k = g * group_out + kk;
            const T* gk = gy + ((fastnn::index_t)n * out_c + k) * out_h * out_w;
            const T* wk = w + ((fastnn::index_t)k * group_in + c_in_group) * k_h * k_w;
            for (int i = 0; i < k_h; ++i) {
                const int num_h = h + pad_h - i * dil_h;
                if (num_h < 0) break;
                if (num_h % stride_h != 0) continue;
                const int oh = num_h / stride_h;
                if (oh >= out_h) continue;
                for (int j = 0; j < k_w; ++j) {
                    const int num_w = col + pad_w - j * dil_w;
                    if (num_w < 0) break;
                    if (num_w % stride_w != 0) continue;
                    const int ow = num_w / stride_w;
                    if (ow >= out_w) continue;
                    acc += gk[(fastnn::index_t)oh * out_w + ow] * wk[i * k_w + j];
                }
            }
        }
        gx[idx] = acc;
    }
}

template <typename T>
__global__ void conv_direct_backward_weight(const T* __restrict__ gy, const T* __restrict__ x,
                                            T* __restrict__ gw, int images, int in_c,
                                            int in_h, int in_w, int out_c, int out_h,
                                            int out_w, int k_h, int k_w, int stride_h,
                                            int stride_w, int pad_h, int pad_w, int dil_h,
                                            int dil_w, int groups) {
    __shared__ T scratch[FASTNN_THREADS];
    const int group_in = in_c / groups;
    const int group_out = out_c / groups;
    const fastnn::index_t weights = (fastnn::index_t)out_c * group_in * k_h * k_w;
    const fastnn::index_t positions = (fastnn::index_t)out_h * out_w;
    const fastnn::index_t count = (fastnn::index_t)images * positions;
    // Block-uniform loop: every thread of a block takes the same weight elements.
    for (fastnn::index_t widx = blockIdx.x; widx < weights; widx += gridDim.x) {
        const int j = (int)(widx % k_w);
        const int i = (int)((widx / k_w) % k_h);
        const int c_in_group = (int)((widx / ((fastnn::index_t)k_w * k_h)) % group_in);
        const int k = (int)(widx / ((fastnn::index_t)k_w * k_h * group_in));
        const int c = (k / group_out) * group_in + c_in_group;
        T acc = T(0);
        for (fastnn::index_t q = threadIdx.x; q < count; q += FASTNN_THREADS) {
            const int n = (int)(q / positions);
            const fastnn::index_t p = q - n * positions;
            const int oh = (int)(p / out_w);
            const int ow = (int)(p % out_w);
            const int h = oh * stride_h - pad_h + i * dil_h;
            const int col = ow * stride_w - pad_w + j * dil_w;
            if (h < 0 || h >= in_h || col < 0 || col >= in_w) continue;
            acc += gy[((fastnn::index_t)n * out_c + k) * positions + p] *
                   x[(((fastnn::index_t)n * in_c + c) * in_h + h) * in_w + col];
        }
        acc = fastnn::block_sum<FASTNN_THREADS>(acc, scratch);
        if (threadIdx.x == 0) gw[widx] = acc;
    }
}
