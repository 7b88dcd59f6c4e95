/* A strided matrix transpose through SIMD registers, for any instantiation body:
 *
 *   TR_FN(src, lds, ni, nj, dst, ldd):   dst[j*ldd + i] = src[i*lds + j]  (i < ni, j < nj)
 *
 * VL x VL blocks are loaded as VL vectors, transposed in registers in log2(VL) stages of
 * two-source shuffles with constant masks (each stage swapping the off-diagonal blocks
 * of every 2B x 2B block), and stored as VL vectors; the edges go element by element.
 * Loads and stores are unaligned.
 *
 * Included inside a body with T, VEC, VL and TARGET_ATTR defined and TR_FN naming the
 * function to define (undefined again at the end), e.g.
 *   #define TR_FN CFN(fnn_cb_transpose)
 *   #include "simd_transpose.h"
 */

#ifndef FNN_SIMD_TRANSPOSE_LISTS
#define FNN_SIMD_TRANSPOSE_LISTS
/* Mask lists of 2..16 lanes, and the lanes of stage B: "lo" takes the rows' low halves of
 * every 2B block, "hi" their high halves (constant masks: one shuffle instruction each). */
#define FNN_TR_L2(f) f(0), f(1)
#define FNN_TR_L4(f) FNN_TR_L2(f), f(2), f(3)
#define FNN_TR_L8(f) FNN_TR_L4(f), f(4), f(5), f(6), f(7)
#define FNN_TR_L16(f) FNN_TR_L8(f), f(8), f(9), f(10), f(11), f(12), f(13), f(14), f(15)
#define FNN_TR_LO(q) (((q) & TR_B) ? TR_VL + (q) - TR_B : (q))
#define FNN_TR_HI(q) (((q) & TR_B) ? TR_VL + (q) : (q) + TR_B)
#endif

#if VL == 16
#define TR_LIST FNN_TR_L16
#elif VL == 8
#define TR_LIST FNN_TR_L8
#elif VL == 4
#define TR_LIST FNN_TR_L4
#else
#define TR_LIST FNN_TR_L2
#endif
#define TR_VL VL

/* One stage: swap the off-diagonal B x B blocks of every 2B x 2B block of r. */
#define TR_STAGE                                                                           \
    do {                                                                                   \
        const TR_IDX lo = {TR_LIST(FNN_TR_LO)}, hi = {TR_LIST(FNN_TR_HI)};                 \
        _Pragma("GCC unroll 16") for (int i = 0; i < VL; ++i) {                            \
            if (i & TR_B) continue;                                                        \
            VEC top = r[i], bottom = r[i + TR_B];                                          \
            r[i] = __builtin_shuffle(top, bottom, lo);                                     \
            r[i + TR_B] = __builtin_shuffle(top, bottom, hi);                              \
        }                                                                                  \
    } while (0)

static TARGET_ATTR void TR_FN(const T* restrict src, ptrdiff_t lds, ptrdiff_t ni, ptrdiff_t nj,
                              T* restrict dst, ptrdiff_t ldd) {
    /* the mask type: integers as wide as T, as many as VEC has lanes */
    typedef __typeof__(_Generic((T)0, float: (int)0, default: (long long)0)) TR_ELEM;
    typedef TR_ELEM TR_IDX __attribute__((vector_size(sizeof(VEC))));
    ptrdiff_t i0 = 0;
    for (; i0 + VL <= ni; i0 += VL) {
        ptrdiff_t j0 = 0;
        for (; j0 + VL <= nj; j0 += VL) {
            VEC r[VL];
            _Pragma("GCC unroll 16")
            for (int i = 0; i < VL; ++i) __builtin_memcpy(&r[i], src + (i0 + i) * lds + j0, sizeof(VEC));
#if VL > 8
#define TR_B 8
            TR_STAGE;
#undef TR_B
#endif
#if VL > 4
#define TR_B 4
            TR_STAGE;
#undef TR_B
#endif
#if VL > 2
#define TR_B 2
            TR_STAGE;
#undef TR_B
#endif
#define TR_B 1
            TR_STAGE;
#undef TR_B
            _Pragma("GCC unroll 16")
            for (int j = 0; j < VL; ++j) __builtin_memcpy(dst + (j0 + j) * ldd + i0, &r[j], sizeof(VEC));
        }
        for (ptrdiff_t i = i0; i < i0 + VL; ++i)
            for (ptrdiff_t j = j0; j < nj; ++j) dst[j * ldd + i] = src[i * lds + j];
    }
    for (ptrdiff_t i = i0; i < ni; ++i)
        for (ptrdiff_t j = 0; j < nj; ++j) dst[j * ldd + i] = src[i * lds + j];
}

#undef TR_STAGE
#undef TR_LIST
#undef TR_VL
#undef TR_FN
