/* One (element type, instruction set) instantiation of the Winograd convolution.
 *
 * Included by winograd.h through isa_instances.h, which defines (and afterwards
 * undefines) these macros; WMR and WNV come from winograd.h:
 *   T            float or double
 *   VEC          a GCC vector of VL elements of T
 *   VL           lanes per vector
 *   SFX          name suffix, e.g. f32_avx2
 *   TARGET_ATTR  the target attribute of the instruction set (may be empty)
 *   WMR, WNV     register tile: WMR output channels x WNV vectors of tiles
 * It defines the GEMM micro-kernel, then includes winograd_tile.h once per tile size.
 */

#define WCAT_(a, b) a##_##b
#define WCAT(a, b) WCAT_(a, b)
#define WFN(name) WCAT(name, SFX)
#define WNR (WNV * VL)

#include "vec_io.h" /* FNN_VLOAD, FNN_VSTORE */

/* The register tile of both GEMMs below: acc[i][v*VL ...] (zero, or what out holds when
 * add) += sum_{t < n} a[t * at + i * ai] * b[t * ldb + v*VL ...], for WMR x WNR outputs
 * (b's rows aligned), then stored to out.  Accumulators stay in registers for the whole
 * reduction.  Always inlined with constant add (and strides where constant), so each
 * caller compiles to its own loop with no branch in it. */
static inline __attribute__((always_inline)) TARGET_ATTR void WFN(fnn_wino_tile)(
    const T* restrict a, ptrdiff_t at, ptrdiff_t ai, const T* restrict b, ptrdiff_t ldb,
    ptrdiff_t n, T* restrict out, ptrdiff_t ldo, int add) {
    VEC acc[WMR][WNV];
    FNN_WINO_UNROLL
    for (int i = 0; i < WMR; ++i) {
        FNN_WINO_UNROLL
        for (int v = 0; v < WNV; ++v) {
            if (add)
                acc[i][v] = *(const VEC*)(out + i * ldo + v * VL);
            else
                acc[i][v] = (VEC){0};
        }
    }
    for (ptrdiff_t t = 0; t < n; ++t) {
        VEC bv[WNV];
        FNN_WINO_UNROLL
        for (int v = 0; v < WNV; ++v) bv[v] = *(const VEC*)(b + t * ldb + v * VL);
        const T* at_t = a + t * at;
        FNN_WINO_UNROLL
        for (int i = 0; i < WMR; ++i) {
            const T ai_t = at_t[i * ai];
            FNN_WINO_UNROLL
            for (int v = 0; v < WNV; ++v) acc[i][v] += bv[v] * ai_t;
        }
    }
    FNN_WINO_UNROLL
    for (int i = 0; i < WMR; ++i) {
        FNN_WINO_UNROLL
        for (int v = 0; v < WNV; ++v) *(VEC*)(out + i * ldo + v * VL) = acc[i][v];
    }
}

/* out[i][v*VL ...] = sum_c a[c*WMR + i] * b[c*ldb + v*VL ...] for a WMR x WNR tile: the
 * transformed filters of WMR output channels (packed, contiguous over c) times WNR tiles
 * of the transformed input (rows ldb apart, aligned). */
static TARGET_ATTR void WFN(fnn_wino_gemm_tile)(const T* restrict a, const T* restrict b,
                                                ptrdiff_t cg, ptrdiff_t ldb,
                                                T* restrict out, ptrdiff_t ldo) {
    WFN(fnn_wino_tile)(a, WMR, 1, b, ldb, cg, out, ldo, 0);
}

/* out[i][v*VL ...] += sum_{t < n} a[i * lda + t] * b[t * ldb + v*VL ...]: the same
 * register tile with the broadcast operand read from WMR rows (the weight gradient's
 * transformed grad_output, tiles contiguous) and the result added to what out holds. */
static TARGET_ATTR void WFN(fnn_wino_gemm_rows)(const T* restrict a, ptrdiff_t lda,
                                                const T* restrict b, ptrdiff_t ldb,
                                                ptrdiff_t n, T* restrict out, ptrdiff_t ldo) {
    WFN(fnn_wino_tile)(a, 1, lda, b, ldb, n, out, ldo, 1);
}

/* dst[j * ldd + i] = src[i * lds + j] for a VL x VL block, in registers
 * (simd_transpose.h). */
#define TR_FN WFN(fnn_wino_transpose_block)
#include "simd_transpose.h"

static inline __attribute__((always_inline)) TARGET_ATTR void WFN(fnn_wino_transpose)(
    const T* restrict src, ptrdiff_t lds, T* restrict dst, ptrdiff_t ldd) {
    WFN(fnn_wino_transpose_block)(src, lds, VL, VL, dst, ldd);
}

#define WM 2
#include "winograd_tile.h"
#define WM 4
#include "winograd_tile.h"
#define WM 6
#include "winograd_tile.h"

#undef WNR
#undef WFN
#undef WCAT
#undef WCAT_
