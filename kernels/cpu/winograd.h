/* Winograd convolution F(m x m, 3 x 3), m = 2, 4 or 6: 3x3 kernels, stride 1, no
 * dilation, float and double, instruction set chosen at run time.
 *
 * One call convolves a source tensor (N, G*Cg, H, W) of any strides with transformed,
 * packed filters into a contiguous (N, G*Kg, Ho, Wo) result:
 *
 *   dst[n, g*Kg + k, oh, ow] = bias[k] + sum_{c, r, s} w[g][k][c][r][s]
 *                              * src[n, g*Cg + c, oh + r - pt, ow + s - pl]
 *
 * reading zeros outside the source.  The forward pass is this with src = x; the input
 * gradient is this with src = grad_output, the filters flipped and transposed
 * (fnn_wino_filter's `transposed`) and offsets 2 - pad.
 *
 * Algorithm (Lavin & Gray 2016).  The output is cut into m x m tiles; tile t of channel c
 * reads an alpha x alpha patch d (alpha = m + 2).  With U = G w G^T (per filter, once per
 * call) and V = B^T d B (per tile and channel), the alpha^2 positions xi of the
 * transformed domain are independent GEMMs over channels,
 *
 *   M[xi][k][t] = sum_c U[xi][k][c] V[xi][c][t],
 *
 * and the output tile is A^T M A.  Work is cut into items of (group, block of `pb` tiles,
 * chunk of `kc` output channels).  A thread transforms its block's input into a buffer V
 * (alpha^2 x Cg x pb; kept for the next item when it is the same block), runs the alpha^2
 * GEMMs with a register-tiled micro-kernel (MR output channels x NR tiles, the tiles in
 * SIMD lanes) into a buffer M, and transforms M into the output.  Both buffers are per
 * thread and sized to stay in the cache (the Python plan, conv_winograd.py, picks pb
 * and kc); U is packed once per call in the micro-kernel's panel order.
 *
 * Vectorisation: the transforms run over SIMD vectors of consecutive tiles of one tile
 * row.  The input rows a tile row needs are first split into m phases
 * (rows[i][phase][t] = src[row i][t*m + phase]), so that the element (i, j) of VL
 * consecutive tiles is one contiguous vector load; outputs are interleaved back the same
 * way.
 */
#ifndef FNN_WINOGRAD_H
#define FNN_WINOGRAD_H

#include <stddef.h>
#include <string.h>

#include "conv_epilogue.h"
#include "cpu_features.h"
#include "winograd_matrices.h"
#include "workspace.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

typedef struct {
    const void* src;              /* (N, C, H, W) source of any strides (in elements) */
    ptrdiff_t sn, sc, sh, sw;
    ptrdiff_t N, C, H, W;
    ptrdiff_t K, G;               /* output channels (all groups), groups */
    ptrdiff_t Ho, Wo, pt, pl;     /* output plane; offsets of the source window */
    const void* u;                /* filters from fnn_wino_filter_*, same m and tile */
    const void* bias;             /* (K,) or NULL */
    int act;                      /* activation after the bias (conv_epilogue.h), 0: none */
    void* dst;                    /* (N, K, Ho, Wo), contiguous */
    ptrdiff_t pb;                 /* tiles per block: a multiple of the tile's NR */
    ptrdiff_t kc;                 /* output channels per chunk: a multiple of MR */
    ptrdiff_t tk, tp;             /* thread grid: chunks of channels x blocks of tiles */
} fnn_wino_args;

/* The weight gradient: gw (K, C/G, 3, 3), contiguous, overwritten) of the convolution of
 * x (any strides) producing grad_output gy (contiguous), window offsets pt, pl as above;
 * pb tiles per block, kc x cc channels per work item (winograd_wgrad.h). */
typedef struct {
    const void* x;
    ptrdiff_t sn, sc, sh, sw;
    const void* gy;
    ptrdiff_t N, C, H, W, K, G, Ho, Wo, pt, pl;
    void* gw;
    ptrdiff_t pb, kc, cc;
    int threads;
} fnn_wino_wargs;

#define FNN_WINO_ISA_BASE 0
#define FNN_WINO_ISA_AVX2 1
#define FNN_WINO_ISA_AVX512 2

static inline ptrdiff_t fnn_wino_ceil_div(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

/* Elements between the ALPHA^2 planes of every buffer, on top of their data: a stride that
 * is a multiple of 4 KB would put all of a tile's ALPHA^2 values in one L1 cache set. */
#define FNN_WINO_SKEW 16


/* Register tiles per instruction set: MR output channels x NV vectors of tiles. */
#define FNN_WINO_MR_BASE 4
#define FNN_WINO_NV_BASE 2
#define FNN_WINO_MR_AVX2 6
#define FNN_WINO_NV_AVX2 2
#define FNN_WINO_MR_AVX512 8
#define FNN_WINO_NV_AVX512 2

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define FNN_WINO_UNROLL _Pragma("GCC unroll 16")
#else
#define FNN_WINO_UNROLL
#endif

/* ---- instantiations ------------------------------------------------------------------ */
#define FNN_ISA_BODY "winograd_body.h"
#define WMR FNN_ISA_TUNE(FNN_WINO_MR_)
#define WNV FNN_ISA_TUNE(FNN_WINO_NV_)
#include "isa_instances.h"
#undef WMR
#undef WNV

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* ---- run-time choice ------------------------------------------------------------------ */

/* The level to run: `requested`, capped at what this CPU supports. */
static int fnn_wino_isa(int requested) {
    int best = fnn_cpu_has_avx512() ? FNN_WINO_ISA_AVX512
             : fnn_cpu_has_avx2()   ? FNN_WINO_ISA_AVX2
                                    : FNN_WINO_ISA_BASE;
    if (requested < 0) return FNN_WINO_ISA_BASE;
    return requested < best ? requested : best;
}

/* The register tile of a level: rows (output channels) and columns (tiles). */
static void fnn_wino_tile(int isa, int is_double, ptrdiff_t* mr, ptrdiff_t* nr) {
    ptrdiff_t bytes = 16;
    *mr = FNN_WINO_MR_BASE;
    ptrdiff_t nv = FNN_WINO_NV_BASE;
#if FNN_X86
    if (isa == FNN_WINO_ISA_AVX2) { bytes = 32; *mr = FNN_WINO_MR_AVX2; nv = FNN_WINO_NV_AVX2; }
    if (isa == FNN_WINO_ISA_AVX512) { bytes = 64; *mr = FNN_WINO_MR_AVX512; nv = FNN_WINO_NV_AVX512; }
#else
    (void)isa;
#endif
    *nr = nv * bytes / (is_double ? 8 : 4);
}

/* Per-thread scratch of a call, in bytes (the plan keeps it within the cache): the
 * transformed input of a block and the products of a chunk, plus the chunk's filters
 * when they are transformed just in time. */
static size_t fnn_wino_scratch_bytes(int m, int isa, int is_double, ptrdiff_t cg,
                                     ptrdiff_t kc, ptrdiff_t pb, int jit) {
    ptrdiff_t mr, nr, alpha = m + 2, vl;
    fnn_wino_tile(isa, is_double, &mr, &nr);
    vl = isa == FNN_WINO_ISA_AVX512 ? 64 : isa == FNN_WINO_ISA_AVX2 ? 32 : 16;
    vl /= is_double ? 8 : 4;
    ptrdiff_t ps = pb + vl;
    ptrdiff_t kcp = fnn_wino_ceil_div(kc, mr) * mr;
    ptrdiff_t elements = alpha * alpha * ((cg + kcp) * ps + 2 * FNN_WINO_SKEW)
                       + (jit ? alpha * alpha * (kcp * cg + FNN_WINO_SKEW) : 0);
    return (size_t)elements * (is_double ? 8 : 4);
}

/* Elements of the transformed filters of a call (fnn_wino_filter_*). */
static ptrdiff_t fnn_wino_filter_elements(int m, int isa, int is_double, ptrdiff_t groups,
                                          ptrdiff_t kg, ptrdiff_t cg) {
    ptrdiff_t mr, nr, alpha = m + 2;
    fnn_wino_tile(isa, is_double, &mr, &nr);
    return groups * alpha * alpha * (fnn_wino_ceil_div(kg, mr) * mr * cg + FNN_WINO_SKEW);
}

#if FNN_X86
#define FNN_WINO_DISPATCH(M_, fn, sfx, args)                                               \
    switch (isa) {                                                                         \
    case FNN_WINO_ISA_AVX512: return fn##_##sfx##_avx512_m##M_ args;                       \
    case FNN_WINO_ISA_AVX2: return fn##_##sfx##_avx2_m##M_ args;                           \
    default: return fn##_##sfx##_base_m##M_ args;                                          \
    }
#else
#define FNN_WINO_DISPATCH(M_, fn, sfx, args) return fn##_##sfx##_base_m##M_ args;
#endif

#define FNN_WINO_ENTRIES(T_, sfx)                                                          \
    /* Run the convolution; 0 on success, -1 when scratch could not be allocated. */       \
    /* With a->u NULL, the filters are transformed from w per thread, just in time. */   \
    static int fnn_wino_run_##sfx(const fnn_wino_args* a, const T_* w, int transposed,    \
                                  int m, int isa) {                                        \
        isa = fnn_wino_isa(isa);                                                           \
        if (m == 2) { FNN_WINO_DISPATCH(2, fnn_wino_conv, sfx, (a, w, transposed)) }      \
        if (m == 4) { FNN_WINO_DISPATCH(4, fnn_wino_conv, sfx, (a, w, transposed)) }      \
        FNN_WINO_DISPATCH(6, fnn_wino_conv, sfx, (a, w, transposed))                       \
    }

FNN_WINO_ENTRIES(float, f32)
FNN_WINO_ENTRIES(double, f64)

#define FNN_WINO_WGRAD_ENTRY(sfx)                                                          \
    static int fnn_wino_wgrad_run_##sfx(const fnn_wino_wargs* a, int m, int isa) {        \
        isa = fnn_wino_isa(isa);                                                           \
        if (m == 2) { FNN_WINO_DISPATCH(2, fnn_wino_wgrad, sfx, (a)) }                    \
        if (m == 4) { FNN_WINO_DISPATCH(4, fnn_wino_wgrad, sfx, (a)) }                    \
        FNN_WINO_DISPATCH(6, fnn_wino_wgrad, sfx, (a))                                     \
    }

FNN_WINO_WGRAD_ENTRY(f32)
FNN_WINO_WGRAD_ENTRY(f64)

/* ---- filter transform ------------------------------------------------------------------ */

/* U = G w G^T for every filter, packed for the micro-kernel of level `isa` (0, or -1
 * without memory).  Filters w[g][k][c] (k < kg output, c < cg input channels of the
 * convolution U runs) are 3x3 at
 *   w + ((g * kg + k) * cg + c) * 9                                  (forward), or
 *   w + ((g * cg + c) * kg + k) * 9, flipped (r, s -> 2 - r, 2 - s)   (transposed: the
 * input gradient, where the forward weight's output and input channels swap roles). */
#define FNN_WINO_FILTER_ENTRY(T_, sfx)                                                     \
    static int fnn_wino_filter_##sfx(const T_* w, int transposed, ptrdiff_t groups,        \
                                     ptrdiff_t kg, ptrdiff_t cg, int m, int isa, T_* u,    \
                                     int threads) {                                        \
        isa = fnn_wino_isa(isa);                                                           \
        if (m == 2) { FNN_WINO_DISPATCH(2, fnn_wino_filters, sfx, (w, transposed, groups, kg, cg, u, threads)) } \
        if (m == 4) { FNN_WINO_DISPATCH(4, fnn_wino_filters, sfx, (w, transposed, groups, kg, cg, u, threads)) } \
        FNN_WINO_DISPATCH(6, fnn_wino_filters, sfx, (w, transposed, groups, kg, cg, u, threads)) \
    }

FNN_WINO_FILTER_ENTRY(float, f32)
FNN_WINO_FILTER_ENTRY(double, f64)

#endif /* FNN_WINOGRAD_H */
