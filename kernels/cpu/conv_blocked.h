/* Channel-blocked direct convolution: any kernel size, stride, dilation, padding and
 * groups, float and double, instruction set chosen at run time.  No im2col buffer.
 *
 *   dst(n, g*Kg + k, oh, ow) = bias[g*Kg + k] + sum_{c < Cg, r < R, s < S}
 *       w[g][k][c][r][s] * src[n, g*Cg + c, oh*str_h - pt + r*dil_h, ow*str_w - pl + s*dil_w]
 *
 * reading zeros outside the source; dst is addressed through its own strides, so a
 * caller can write every other row and column (the input gradient's stride phases).
 *
 * Layout.  Output channels go in SIMD lanes, as in oneDNN's blocked kernels: the weights
 * are packed once per call into blocks of OB = NV x VL output channels,
 * wp[g][kb][c][r][s][OB] (fnn_cb_pack_*), and the micro-kernel keeps a register tile of
 * NW output positions of one output row x OB channels (14 x 32 floats on AVX-512: 28
 * accumulators).  Each step of the reduction over (c, r, s) loads NV weight vectors and
 * broadcasts NW input values, whatever the stride: the input is never gathered into
 * vectors, so strided, dilated and 1x1 layers all run the same FMA stream.
 *
 * Blocking.  With weights packed once per call, a work item is (image, group, block of
 * `rows` output rows, `kbs` channel blocks).  Layers whose weights outweigh their maps
 * instead pack each chunk of weights just in time, in items of (group, channel blocks)
 * over every image (fnn_cb_conv_jit).  Its reduction runs in chunks of `kc` input channels; a chunk's input rows are
 * copied once, zero-padded, into a per-thread buffer (skipped when the layer has no
 * padding and the source rows are contiguous: then the micro-kernel reads the source in
 * place), and the chunk's weights stay in the cache while every tile of the item uses
 * them.  Partial sums live in a per-thread buffer t[kb][row][ow][OB] between chunks; at
 * the end the buffer is transposed into the output (VL x VL blocks in registers), the
 * bias and activation applied to each transposed vector before its store, a work item's
 * rows as one run per channel when the output rows follow one another, and with
 * streaming stores for outputs that outgrow the last-level cache (the caller's `stream`).
 */
#ifndef FNN_CONV_BLOCKED_H
#define FNN_CONV_BLOCKED_H

#include <stddef.h>
#include <string.h>

#include "conv_epilogue.h"
#include "cpu_features.h"
#include "workspace.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

/* The convolution's geometry, shared by both passes' arguments: images, input plane,
 * groups and channels per group, kernel, stride, dilation, window offsets, output plane. */
typedef struct {
    ptrdiff_t N, H, W, G, Cg, Kg;
    ptrdiff_t R, S, str_h, str_w, dil_h, dil_w, pt, pl;
    ptrdiff_t Ho, Wo;
} fnn_cb_geom;

typedef struct {
    const void* src; /* (N, G*Cg, H, W), any strides (elements) */
    ptrdiff_t sn, sc, sh, sw;
    fnn_cb_geom geo;
    const void* wp;   /* packed weights from fnn_cb_pack_* at the same level, or NULL: */
    const void* w;    /* then the weights w(k, c, r, s) = w[k*wk + c*wc + r*wr + s*ws], */
    ptrdiff_t wk, wc, wr, ws; /* packed just in time (k < G*Kg) */
    const void* bias; /* (G*Kg,) contiguous, or NULL */
    int act;          /* activation after the bias: conv_epilogue.h's codes (0: none) */
    int stream;       /* write dst with streaming stores where they are whole aligned lines
                       * (the caller's choice: an output that outgrows the LLC) */
    void* dst;        /* element (n, k, oh, ow) at dst + n*dn + k*dk + oh*dh + ow*dw */
    ptrdiff_t dn, dk, dh, dw;
    int in_place;    /* read src directly: no padding, sw == 1 */
    ptrdiff_t rows;  /* output rows per work item */
    ptrdiff_t kbs;   /* channel blocks per work item */
    ptrdiff_t kc;    /* input channels per reduction chunk */
    int threads;
} fnn_cb_args;

/* The weight gradient out (G*Kg, Cg, R, S), contiguous, overwritten, of the convolution
 * above, from x and grad_output gy (both any strides).  Output channels go in lanes
 * again; a work item is (group, kbs channel blocks, cc input channels) and reduces over
 * every image and position, so items never share an output: per block of `rows` output
 * rows of `imgs` images, the item's input rows are packed channels-last (p[row][col][c])
 * and its grad_output rows positions-first (g[pos][OB]), and a register tile of NW input
 * channels x OB output channels, one (r, s) at a time, runs the reduction over the
 * positions of all those images in one call (small maps would otherwise load and store
 * the tile's sums every few dozen positions). */
typedef struct {
    const void* x;
    ptrdiff_t sn, sc, sh, sw;
    const void* gy;
    ptrdiff_t gn, gk, gh, gw_;
    fnn_cb_geom geo;
    void* out;
    ptrdiff_t rows, kbs, cc;
    ptrdiff_t imgs; /* images per position block (more than one only when rows = Ho) */
    int threads;
} fnn_cb_wargs;

/* Register tiles per level: NV vectors of output channels x NW output positions. */
#define FNN_CB_NV_BASE 2
#define FNN_CB_NW_BASE 6
#define FNN_CB_NV_AVX2 2
#define FNN_CB_NW_AVX2 6
#define FNN_CB_NV_AVX512 2
#define FNN_CB_NW_AVX512 14
/* The narrow AVX-512 pass (FNN_CB_NARROW): one vector of channels (16 floats, 8 doubles)
 * x 28 positions, for layers with no more channels per group than that, whose blocks
 * would be half empty in the 2-vector tile. */
#define FNN_CB_NV_AVX512N 1
#define FNN_CB_NW_AVX512N 28
/* The level code of the narrow pass (beyond the FNN_ISA_* levels; needs AVX-512). */
#define FNN_CB_NARROW 3

/* Extra zeroed elements after a packed input chunk (none are read; a safety margin). */
#define FNN_CB_SLACK 64

static inline ptrdiff_t fnn_cb_ceil_div(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

/* Threads for `items` work items: the request, at least one, at most one per item. */
static inline int fnn_cb_threads(int requested, ptrdiff_t items) {
    int nt = requested < 1 ? 1 : requested;
    return items > 0 && nt > items ? (int)items : nt;
}

/* The calling thread's contiguous share [start, end) of `items`, inside a parallel
 * region (all of them outside one). */
static inline void fnn_cb_share(ptrdiff_t items, ptrdiff_t* start, ptrdiff_t* end) {
#if defined(_OPENMP)
    const ptrdiff_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
#else
    const ptrdiff_t tid = 0, nth = 1;
#endif
    *start = items * tid / nth;
    *end = items * (tid + 1) / nth;
}

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define FNN_CB_UNROLL _Pragma("GCC unroll 32")
#else
#define FNN_CB_UNROLL
#endif

/* ---- instantiations ------------------------------------------------------------------ */
#define FNN_ISA_BODY "conv_blocked_body.h"
#define CB_NV FNN_ISA_TUNE(FNN_CB_NV_)
#define CB_NW FNN_ISA_TUNE(FNN_CB_NW_)
#include "isa_instances.h"
#if FNN_X86 /* the narrow AVX-512 pass: its own vector names, the same body */
FNN_ISA_VECTORS(avx512n, 64)
#define FNN_ISA_BODY "conv_blocked_body.h"
#define FNN_ISA_LEVEL avx512n
#define FNN_ISA_LEVEL_UC AVX512N
#define FNN_ISA_BYTES 64
#define TARGET_ATTR FNN_TARGET_AVX512
#include "isa_pass.h"
#undef FNN_ISA_BODY
#endif
#undef CB_NV
#undef CB_NW

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* ---- run-time choice ------------------------------------------------------------------ */

/* The level to run: `requested`, capped at what this CPU supports (FNN_CB_NARROW: the
 * narrow AVX-512 pass, or the best level below it). */
static inline int fnn_cb_isa(int requested) {
    int best = fnn_cpu_best_isa();
    if (requested < 0) return FNN_ISA_BASE;
    if (requested == FNN_CB_NARROW) return best >= FNN_ISA_AVX512 ? FNN_CB_NARROW : best;
    return requested < best ? requested : best;
}

/* FNN_ISA_DISPATCH with the narrow pass: `return fn_<sfx>_<level> args;`. */
#if FNN_X86
#define FNN_CB_DISPATCH(level, fn, sfx, args)                                              \
    if ((level) == FNN_CB_NARROW) return fn##_##sfx##_avx512n args;                        \
    FNN_ISA_DISPATCH(level, fn, sfx, args)
#else
#define FNN_CB_DISPATCH(level, fn, sfx, args) FNN_ISA_DISPATCH(level, fn, sfx, args)
#endif

/* The register tile of a level: output channels per block (OB) and positions (NW). */
static inline void fnn_cb_tile(int isa, int is_double, ptrdiff_t* ob, ptrdiff_t* nw) {
    ptrdiff_t bytes = 16, nv = FNN_CB_NV_BASE;
    *nw = FNN_CB_NW_BASE;
#if FNN_X86
    if (isa == FNN_ISA_AVX2) { bytes = 32; nv = FNN_CB_NV_AVX2; *nw = FNN_CB_NW_AVX2; }
    if (isa == FNN_ISA_AVX512) { bytes = 64; nv = FNN_CB_NV_AVX512; *nw = FNN_CB_NW_AVX512; }
    if (isa == FNN_CB_NARROW) { bytes = 64; nv = FNN_CB_NV_AVX512N; *nw = FNN_CB_NW_AVX512N; }
#else
    (void)isa;
#endif
    *ob = nv * bytes / (is_double ? 8 : 4);
}

/* Elements of the packed weights of a call. */
static inline ptrdiff_t fnn_cb_packed_elements(int isa, int is_double, ptrdiff_t G,
                                               ptrdiff_t Kg, ptrdiff_t Cg, ptrdiff_t R,
                                               ptrdiff_t S) {
    ptrdiff_t ob, nw;
    fnn_cb_tile(isa, is_double, &ob, &nw);
    return G * fnn_cb_ceil_div(Kg, ob) * ob * Cg * R * S;
}

#define FNN_CB_ENTRIES(T_, sfx)                                                            \
    /* The convolution; 0 on success, -1 when scratch could not be allocated. */          \
    static int fnn_cb_run_##sfx(const fnn_cb_args* a, int isa) {                           \
        isa = fnn_cb_isa(isa);                                                             \
        FNN_CB_DISPATCH(isa, fnn_cb_conv, sfx, (a))                                       \
    }                                                                                      \
    /* The weight gradient; 0 on success, -1 when scratch could not be allocated. */     \
    static int fnn_cb_wgrad_run_##sfx(const fnn_cb_wargs* a, int isa) {                    \
        isa = fnn_cb_isa(isa);                                                             \
        FNN_CB_DISPATCH(isa, fnn_cb_wgrad, sfx, (a))                                      \
    }                                                                                      \
    /* Pack w(k, c, r, s) = w[k*wk + c*wc + r*wr + s*ws] (any strides, k < G*Kg) for the \
     * kernels of level isa. */                                                            \
    static void fnn_cb_pack_##sfx(const T_* w, ptrdiff_t wk, ptrdiff_t wc, ptrdiff_t wr,   \
                                  ptrdiff_t ws, ptrdiff_t G, ptrdiff_t Kg, ptrdiff_t Cg,   \
                                  ptrdiff_t R, ptrdiff_t S, T_* wp, int isa, int threads) {\
        isa = fnn_cb_isa(isa);                                                             \
        FNN_CB_DISPATCH(isa, fnn_cb_pack, sfx, (w, wk, wc, wr, ws, G, Kg, Cg, R, S, wp, threads)) \
    }                                                                                      \
    /* dst[j*ldd + i] = src[i*lds + j] (i < ni, j < nj): simd_transpose.h at level isa; \
     * epi: the output stores' variant, dst[j*ldd + i] = act(src[i*lds + j] + bias[j]). */ \
    static void fnn_cb_transpose_run_##sfx(const T_* src, ptrdiff_t lds, ptrdiff_t ni,     \
                                           ptrdiff_t nj, T_* dst, ptrdiff_t ldd, int isa,  \
                                           int epi, const T_* bias, int act, int stream) { \
        isa = fnn_cb_isa(isa);                                                             \
        if (epi) {                                                                         \
            FNN_CB_DISPATCH(isa, fnn_cb_transpose_epi, sfx,                               \
                             (src, lds, ni, nj, dst, ldd, bias, act, stream))              \
        } else {                                                                           \
            FNN_CB_DISPATCH(isa, fnn_cb_transpose, sfx, (src, lds, ni, nj, dst, ldd))     \
        }                                                                                  \
    }

FNN_CB_ENTRIES(float, f32)
FNN_CB_ENTRIES(double, f64)

#endif /* FNN_CONV_BLOCKED_H */
