/* fastnn's C kernels behind plain C entry points, for the XLA FFI handlers of
 * fastnn_jax_ffi.cc (compiled as C: the kernel headers are C99).  Every argument was
 * validated at trace time by fastnn.jax; these functions only compute.
 *
 *   fnn_jax_activate           y = act(x)                     (activation_loops.h)
 *   fnn_jax_activate_backward  out = g * act'(from y)
 *   fnn_jax_softmax            softmax / log_softmax of contiguous rows (softmax_rows.h)
 *   fnn_jax_softmax_backward   their gradient from the output
 *   fnn_jax_linear             y = act(x @ w.T + bias)        (gemm_blocked.h, fused epilogue)
 *   fnn_jax_linear_backward    grad_input, grad_weight, grad_bias through act'(from y)
 *
 * `f64` selects double (1) or float (0).  The gemm entry points return 0, or -1 when a
 * packing buffer could not be allocated.
 */
#include <stddef.h>
#include <stdlib.h>

#include "activation_loops.h"
#include "gemm_blocked.h"
#include "softmax_rows.h"

void fnn_jax_activate(int f64, int act, const void* x, void* y, ptrdiff_t n) {
    if (f64) fnn_activate_loop_f64(act, (const double*)x, (double*)y, n);
    else fnn_activate_loop_f32(act, (const float*)x, (float*)y, n);
}

void fnn_jax_activate_backward(int f64, int act, const void* g, const void* y, void* out,
                               ptrdiff_t n) {
    if (f64) fnn_backward_loop_f64(act, (const double*)g, (const double*)y, (double*)out, n);
    else fnn_backward_loop_f32(act, (const float*)g, (const float*)y, (float*)out, n);
}

void fnn_jax_softmax(int f64, int log_mode, const void* x, void* y, ptrdiff_t rows,
                     ptrdiff_t d) {
    if (f64) fnn_softmax_rows_f64(log_mode, (const double*)x, (double*)y, rows, d);
    else fnn_softmax_rows_f32(log_mode, (const float*)x, (float*)y, rows, d);
}

void fnn_jax_softmax_backward(int f64, int log_mode, const void* g, const void* y, void* gx,
                              ptrdiff_t rows, ptrdiff_t d) {
    if (f64)
        fnn_softmax_backward_rows_f64(log_mode, (const double*)g, (const double*)y,
                                      (double*)gx, rows, d);
    else
        fnn_softmax_backward_rows_f32(log_mode, (const float*)g, (const float*)y, (float*)gx,
                                      rows, d);
}

/* This library's copies of the GEMM calibration (gemm_blocked.h: the flops per thread
 * below which fewer threads run, the longest reduction on the unpacked path, the time
 * per multiply-add of AVX-512's 3-vector tile relative to the 2-vector one, the rows of B
 * a few-row product prefetches, the widest product with a transposed A on column tiles),
 * set from the CPU backend's measurement (fastnn/_backends/cpu/_gemm.py: calibration())
 * by fastnn/jax/_ffi.py. */
void fnn_jax_gemm_set_calibration(double flops_per_thread, ptrdiff_t short_k,
                                  double t48_time, ptrdiff_t few_prefetch,
                                  ptrdiff_t narrow_t_n) {
    fnn_gemm_flops_per_thread = flops_per_thread;
    fnn_gemm_short_k = short_k;
    if (t48_time > 0) fnn_gemm_t48_time = t48_time;
    if (few_prefetch >= 0 && few_prefetch <= 64) fnn_gemm_few_prefetch = few_prefetch;
    if (narrow_t_n >= 0) fnn_gemm_narrow_t_n = narrow_t_n;
}
/* This library's copy of the elementwise loops' instruction-set level
 * (elementwise_level.h), set to the CPU backend's (fastnn/_isa.py) by fastnn/jax/_ffi.py. */
void fnn_jax_conv_set_elementwise_level(int level); /* fastnn_jax_conv.c's copy */
void fnn_jax_set_elementwise_level(int level) {
    fnn_set_elementwise_level(level);
    fnn_jax_conv_set_elementwise_level(level);
}
int fnn_jax_elementwise_level(void) { return fnn_get_elementwise_level(); }
double fnn_jax_gemm_flops_per_thread(void) { return fnn_gemm_flops_per_thread; }
ptrdiff_t fnn_jax_gemm_short_k(void) { return fnn_gemm_short_k; }
double fnn_jax_gemm_t48_time(void) { return fnn_gemm_t48_time; }
ptrdiff_t fnn_jax_gemm_few_prefetch(void) { return fnn_gemm_few_prefetch; }
ptrdiff_t fnn_jax_gemm_narrow_t_n(void) { return fnn_gemm_narrow_t_n; }

static int gemm(int f64, const fnn_gemm_args* g, int threads) {
    return f64 ? fnn_gemm_f64(g, threads, FNN_GEMM_AUTO) : fnn_gemm_f32(g, threads, FNN_GEMM_AUTO);
}

/* x (m, k), w (n, k), bias (n,) or NULL -> y (m, n). */
int fnn_jax_linear(int f64, int act, const void* x, const void* w, const void* bias, void* y,
                   ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, int threads) {
    fnn_gemm_args g = {0};
    g.m = m, g.n = n, g.k = k;
    g.a = x, g.a_rs = k, g.a_cs = 1;
    g.b = w, g.b_rs = 1, g.b_cs = k; /* op(B) = w.T */
    g.alpha = 1.0, g.beta = 0.0;
    g.out = y, g.ldo = n;
    g.epi.act = act, g.epi.bias = bias;
    return gemm(f64, &g, threads);
}

/* From grad_output (m, n), input x (m, k), weight w (n, k) and the forward output y (read
 * only with an activation): gi (m, k), gw (n, k) and gb (n,) (NULL: not wanted). */
int fnn_jax_linear_backward(int f64, int act, const void* grad, const void* x, const void* w,
                            const void* y, void* gi, void* gw, void* gb, ptrdiff_t m,
                            ptrdiff_t k, ptrdiff_t n, int threads) {
    size_t item = f64 ? sizeof(double) : sizeof(float);
    void* scratch = NULL;
    const void* gp = grad; /* the gradient of the pre-activation */
    fnn_gemm_args g = {0};
    int failed = 0;
    if (act != FNN_ACT_IDENTITY && m * n > 0) {
        scratch = malloc((size_t)(m * n) * item);
        if (scratch == NULL) return -1;
        fnn_jax_activate_backward(f64, act, grad, y, scratch, m * n);
        gp = scratch;
    }
    g.alpha = 1.0, g.beta = 0.0;
    /* gi = gp @ w: (m, n) @ (n, k) */
    g.m = m, g.n = k, g.k = n;
    g.a = gp, g.a_rs = n, g.a_cs = 1;
    g.b = w, g.b_rs = k, g.b_cs = 1;
    g.out = gi, g.ldo = k;
    failed |= gemm(f64, &g, threads);
    /* gw = gp.T @ x: (n, m) @ (m, k); an empty batch gives zeros */
    g.m = n, g.n = k, g.k = m;
    g.a = gp, g.a_rs = 1, g.a_cs = n;
    g.b = x, g.b_rs = k, g.b_cs = 1;
    g.out = gw, g.ldo = k;
    failed |= gemm(f64, &g, threads);
    if (gb != NULL) { /* row by row (contiguous reads), summed in double */
        double* sums = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
        if (sums == NULL) {
            free(scratch);
            return -1;
        }
        for (ptrdiff_t i = 0; i < m; ++i)
            for (ptrdiff_t j = 0; j < n; ++j)
                sums[j] += f64 ? ((const double*)gp)[i * n + j] : ((const float*)gp)[i * n + j];
        for (ptrdiff_t j = 0; j < n; ++j) {
            if (f64) ((double*)gb)[j] = sums[j];
            else ((float*)gb)[j] = (float)sums[j];
        }
        free(sums);
    }
    free(scratch);
    return failed;
}
