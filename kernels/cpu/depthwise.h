/* Depthwise convolution (groups == input channels, any channel multiplier), forward and
 * both gradients, float and double, instruction set chosen at run time.
 *
 * Each input plane is zero-padded and split into its stride phases:
 *
 *     P[a][b][h'][j'] = x_pad[sh * h' + a][sw * j' + b],   a < sh, b < sw,
 *
 * each phase an Hq x Wq plane stored flat.  Output (oh, ow), tap (r, s) reads
 * x_pad[sh*oh + r*dh][sw*ow + s*dw] = P[(r*dh) % sh][(s*dw) % sw][oh + (r*dh)/sh][ow +
 * (s*dw)/sw], which for the flat "wide" output index i = oh * Wq + ow is phase (a, b) at
 * i + shift(r, s): every tap is one contiguous shifted vector stream, whatever the
 * stride and dilation.  Columns ow >= Wo of the wide output are junk and never stored.
 *
 *   forward      y_wide[i] = bias + sum_taps w[r][s] P_ab[i + shift]
 *   grad_input   G_ab[q] = sum over the taps of phase (a, b) of w[r][s] gy_wide[q - shift]
 *                (gy_wide: grad_output in the wide layout, zero in the junk columns), then
 *                gx[h][w] = G[(h+pt) % sh][(w+pl) % sw][(h+pt)/sh][(w+pl)/sw]; stride-1
 *                layers instead run the forward pass over gy with the flipped kernel
 *                (fnn_dw_grad_input_is_forward)
 *   grad_weight  gw[r][s] += sum_i gy_wide[i] P_ab[i + shift], and with it, where asked,
 *                the bias's gb += sum_i gy_wide[i] (a tap of ones: gy_wide is zero
 *                outside the outputs)
 *
 * Work items are planes (image, input channel) with all their channel-multiplier outputs;
 * the weight gradient takes them channel by channel (a vector of partial sums per output
 * channel and tap over the channel's images in the thread's range, added across lanes in
 * double into the thread's own row of sums, the rows added by the caller), so that a
 * layer of one input channel (a dense layer's first: conv.py's direct:planes) still
 * splits between threads.  Each thread keeps its phase planes in a workspace
 * (workspace.h).
 */
#ifndef FNN_DEPTHWISE_H
#define FNN_DEPTHWISE_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conv_epilogue.h"
#include "cpu_features.h"
#include "workspace.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

typedef struct {
    const void* x;                /* (N, C, H, W), any strides (elements) */
    ptrdiff_t sn, sc, sh_, sw_;
    ptrdiff_t N, C, H, W;
    ptrdiff_t KM;                 /* channel multiplier: K = C * KM output channels */
    ptrdiff_t R, S, Ho, Wo, sh, sw, dh, dw, pt, pl;
    const void* w;                /* (C * KM, 1, R, S), contiguous */
    const void* bias;             /* (C * KM,) or NULL (forward) */
    int act;                      /* forward: activation after the bias (conv_epilogue.h) */
    const void* gy;               /* (N, C * KM, Ho, Wo), contiguous (gradients) */
    void* out;                    /* y (N, K, Ho, Wo) | gx (N, C, H, W) | gw (K * R * S) double */
    int threads;
    int gw_bias;                  /* weight gradient, plane by plane: the bias's too (K more
                                   * sums after each thread's K * R * S) */
} fnn_dw_args;

/* The phase layout of one call. */
typedef struct {
    ptrdiff_t hq, wq;   /* phase plane rows and columns */
    ptrdiff_t ps;       /* elements per phase plane, with slack for vector over-reads */
    ptrdiff_t wide;     /* Ho * wq: wide output positions */
    ptrdiff_t margin;   /* largest tap shift: zeros before gy_wide */
} fnn_dw_layout;

/* Where the input data lies in one phase plane (the rest is padding). */
typedef struct {
    ptrdiff_t lo, hi;        /* data columns */
    ptrdiff_t hp_lo, hp_hi;  /* data rows */
    ptrdiff_t src;           /* offset in the input plane of (hp_lo, lo) */
} fnn_dw_phase;

static inline fnn_dw_layout fnn_dw_layout_of(const fnn_dw_args* a, ptrdiff_t vl) {
    fnn_dw_layout l;
    l.hq = a->Ho + ((a->R - 1) * a->dh) / a->sh + 1;
    l.wq = a->Wo + ((a->S - 1) * a->dw) / a->sw + 1;
    l.wide = a->Ho * l.wq;
    l.margin = (((a->R - 1) * a->dh) / a->sh) * l.wq + ((a->S - 1) * a->dw) / a->sw;
    l.ps = (l.hq * l.wq + 6 * vl + l.margin + vl - 1) / vl * vl + 16;
    return l;
}

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define FNN_ISA_BODY "depthwise_body.h"
#include "isa_instances.h"

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* The level that runs for `requested` (capped at what the CPU supports). */
static int fnn_dw_isa(int requested) {
    int best = fnn_cpu_best_isa();
    if (requested < 0) return FNN_ISA_BASE;
    return requested < best ? requested : best;
}

/* Whether the input gradient can run as a forward pass: stride 1, one output channel per
 * input channel, and padding no wider than the dilated kernel.  Then
 *     gx[h][w] = sum_{r,s} w[R-1-r][S-1-s] gy_pad[h + r*dh][w + s*dw],
 * gy zero-padded by (R-1)*dh - pt on top and (S-1)*dw - pl on the left: a depthwise
 * forward pass over gy with the flipped kernel, which reads each tap as a vector and
 * sums in registers, where the phase form of the input gradient pays for a wide copy of
 * gy and a scatter of its phase planes per plane (MobileNetV2's 384x14x14: 0.64 ms
 * against the forward's 0.42 on one thread, AMD EPYC). */
static int fnn_dw_grad_input_is_forward(const fnn_dw_args* a) {
    return a->sh == 1 && a->sw == 1 && a->KM == 1 && a->pt <= (a->R - 1) * a->dh &&
           a->pl <= (a->S - 1) * a->dw;
}

/* The forward pass's arguments computing a's input gradient (see above), with `flipped`
 * (C * R * S elements) filled with the flipped kernel. */
#define FNN_DW_AS_FORWARD(T, sfx)                                                          \
    static fnn_dw_args fnn_dw_grad_input_forward_##sfx(const fnn_dw_args* a, T* flipped) { \
        const ptrdiff_t taps = a->R * a->S;                                                \
        const T* w = (const T*)a->w;                                                       \
        for (ptrdiff_t c = 0; c < a->C; ++c)                                               \
            for (ptrdiff_t t = 0; t < taps; ++t)                                           \
                flipped[c * taps + t] = w[c * taps + taps - 1 - t];                        \
        fnn_dw_args f = *a;                                                                \
        f.x = a->gy;                                                                       \
        f.H = a->Ho;                                                                       \
        f.W = a->Wo;                                                                       \
        f.sn = a->C * a->Ho * a->Wo;                                                       \
        f.sc = a->Ho * a->Wo;                                                              \
        f.sh_ = a->Wo;                                                                     \
        f.sw_ = 1;                                                                         \
        f.Ho = a->H;                                                                       \
        f.Wo = a->W;                                                                       \
        f.pt = (a->R - 1) * a->dh - a->pt;                                                 \
        f.pl = (a->S - 1) * a->dw - a->pl;                                                 \
        f.w = flipped;                                                                     \
        f.bias = NULL;                                                                     \
        f.act = 0;                                                                         \
        f.gy = NULL;                                                                       \
        return f;                                                                          \
    }
FNN_DW_AS_FORWARD(float, f32)
FNN_DW_AS_FORWARD(double, f64)

/* pass: 0 forward, 1 input gradient, 2 weight gradient; lanes: the channels-in-lanes
 * variant (depthwise_lanes_body.h) instead of plane by plane.  0, or -1 without memory. */
#define FNN_DW_ENTRY(T, sfx)                                                               \
    static int fnn_dw_pass_##sfx(const fnn_dw_args* a, int pass, int isa, int lanes) {    \
        if (lanes) { FNN_ISA_DISPATCH(fnn_dw_isa(isa), fnn_dwl_run, sfx, (a, pass)) }      \
        FNN_ISA_DISPATCH(fnn_dw_isa(isa), fnn_dw_run, sfx, (a, pass))                      \
    }                                                                                      \
    static int fnn_dw_run_##sfx(const fnn_dw_args* a, int pass, int isa, int lanes) {     \
        if (pass != 1 || !fnn_dw_grad_input_is_forward(a))                                 \
            return fnn_dw_pass_##sfx(a, pass, isa, lanes);                                 \
        T* flipped = (T*)malloc((size_t)(a->C * a->R * a->S) * sizeof(T));                \
        if (flipped == NULL) return -1;                                                    \
        fnn_dw_args f = fnn_dw_grad_input_forward_##sfx(a, flipped);                       \
        int status = fnn_dw_pass_##sfx(&f, 0, isa, lanes);                                 \
        free(flipped);                                                                     \
        return status;                                                                     \
    }
FNN_DW_ENTRY(float, f32)
FNN_DW_ENTRY(double, f64)

#endif /* FNN_DEPTHWISE_H */
