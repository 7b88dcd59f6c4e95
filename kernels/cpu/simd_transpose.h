/* A strided matrix transpose through SIMD registers, for any instantiation body:
 *
 *   TR_FN(src, lds, ni, nj, dst, ldd):   dst[j*ldd + i] = src[i*lds + j]  (i < ni, j < nj)
 *
 * VL x VL blocks are loaded as VL vectors, transposed in registers in log2(VL) stages of
 * two-source shuffles with constant masks (each stage swapping the off-diagonal blocks
 * of every 2B x 2B block), and stored as VL vectors; the last block of each axis
 * overlaps the one before it, and matrices of fewer than VL columns read whole vectors
 * on into the next row.  Only matrices of fewer than VL rows go element by element.
 * Loads and stores are unaligned.
 *
 * Included inside a body with T, VEC, VL and TARGET_ATTR defined and TR_FN naming the
 * function to define (undefined again at the end), e.g.
 *   #define TR_FN CFN(fnn_cb_transpose)
 *   #include "simd_transpose.h"
 *
 * With TR_EPI_FN defined as well (and conv_epilogue.h included), a second function
 *
 *   TR_EPI_FN(src, lds, ni, nj, dst, ldd, bias, act, stream):
 *       dst[j*ldd + i] = act(src[i*lds + j] + bias[j])    (bias may be NULL)
 *
 * adds a bias per destination row and applies a conv_epilogue.h activation to each
 * transposed vector before it is stored: a kernel's epilogue in the same pass as its
 * transpose, instead of a second pass over the rows just written.  It also prefetches,
 * for writing, each destination row TR_EPI_AHEAD bytes past the vector it stores: a
 * convolution's output is written as one stream per channel, dozens at once, more than
 * the hardware prefetchers follow (a 1 -> 32 channel 3x3 layer on 28x28 maps spent half
 * its time in these stores; the prefetch took 16-24% off the whole layer, AMD EPYC).
 * With `stream` set, a vector that is one whole aligned 64-byte line (AVX-512 passes
 * only: narrower vectors would leave lines half-written in the write-combining buffers
 * while the other channels' stores go by) is stored non-temporally instead, skipping the
 * read for ownership of a line that is about to be overwritten: for outputs far larger
 * than the last-level cache, where neither the line nor the result stays cached anyway.
 */
#ifndef TR_EPI_AHEAD
#define TR_EPI_AHEAD 256 /* four 64-byte lines */
#endif

#ifndef FNN_SIMD_TRANSPOSE_LISTS
#define FNN_SIMD_TRANSPOSE_LISTS
#include <stdint.h> /* uintptr_t */
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

/* The stage that swaps blocks of b rows (an integer constant). */
#define TR_STAGE_AT(b)                                                                     \
    do {                                                                                   \
        enum { TR_B = (b) };                                                               \
        TR_STAGE;                                                                          \
    } while (0)
/* Every stage on the VL rows r, widest blocks first: r becomes its transpose. */
#if VL > 8
#define TR_STAGES_WIDE TR_STAGE_AT(8); TR_STAGE_AT(4); TR_STAGE_AT(2)
#elif VL > 4
#define TR_STAGES_WIDE TR_STAGE_AT(4); TR_STAGE_AT(2)
#elif VL > 2
#define TR_STAGES_WIDE TR_STAGE_AT(2)
#else
#define TR_STAGES_WIDE ((void)0)
#endif
#define TR_STAGES                                                                          \
    do {                                                                                   \
        TR_STAGES_WIDE;                                                                    \
        TR_STAGE_AT(1);                                                                    \
    } while (0)

#define TR_CAT_(a, b) a##b
#define TR_CAT(a, b) TR_CAT_(a, b)
#define TR_IMPL TR_CAT(TR_FN, _impl)
#ifdef TR_EPI_FN
/* a transposed vector, or one element, through the epilogue (epi = 0: as it is) */
#define TR_EPI_VEC(v, row)                                                                 \
    do {                                                                                   \
        if (epi) {                                                                         \
            if (bias != NULL) (v) += bias[row];                                            \
            FNN_CONV_ACT_VEC(v, act);                                                      \
        }                                                                                  \
    } while (0)
#define TR_EPI_ONE(x, row)                                                                 \
    (epi ? _Generic((T)0, float: fnn_conv_act_f32, default: fnn_conv_act_f64)(             \
               act, (x) + (bias != NULL ? bias[row] : (T)0))                               \
         : (x))
#else
#define TR_EPI_VEC(v, row) ((void)0)
#define TR_EPI_ONE(x, row) (x)
#endif

#if defined(TR_EPI_FN) && defined(FNN_ISA_BYTES) && FNN_ISA_BYTES == 64
/* one whole 64-byte line at an aligned p, bypassing the caches */
#define TR_STREAM_OK(p) (stream && ((uintptr_t)(p) & 63u) == 0)
#define TR_STREAM(p, v)                                                                    \
    do {                                                                                   \
        if (sizeof(T) == 4)                                                                \
            __builtin_ia32_movntps512((float*)(p), (fnn_isa_f32_avx512)(v));               \
        else                                                                               \
            __builtin_ia32_movntpd512((double*)(p), (fnn_isa_f64_avx512)(v));              \
    } while (0)
#else
#define TR_STREAM_OK(p) 0
#define TR_STREAM(p, v) ((void)0)
#endif

static inline __attribute__((always_inline)) TARGET_ATTR void TR_IMPL(
    const T* restrict src, ptrdiff_t lds, ptrdiff_t ni, ptrdiff_t nj, T* restrict dst,
    ptrdiff_t ldd, const T* restrict bias, int act, const int epi, int stream) {
    (void)bias;
    (void)act;
    (void)epi;
    (void)stream;
    /* the mask type: integers as wide as T, as many as VEC has lanes */
    typedef __typeof__(_Generic((T)0, float: (int)0, default: (long long)0)) TR_ELEM;
    typedef TR_ELEM TR_IDX __attribute__((vector_size(sizeof(VEC))));
    if (ni < VL) {
        for (ptrdiff_t i = 0; i < ni; ++i)
            for (ptrdiff_t j = 0; j < nj; ++j) dst[j * ldd + i] = TR_EPI_ONE(src[i * lds + j], j);
        return;
    }
    /* blocks of VL rows; when VL does not divide ni, the last block ends at row ni and
     * overlaps the one before (those rows are transposed twice, into the same places),
     * and the same along the columns when nj >= VL */
    for (ptrdiff_t ib = 0; ib < ni; ib += VL) {
        const ptrdiff_t i0 = ib + VL <= ni ? ib : ni - VL;
        if (nj >= VL) {
            for (ptrdiff_t jb = 0; jb < nj; jb += VL) {
                const ptrdiff_t j0 = jb + VL <= nj ? jb : nj - VL;
                VEC r[VL];
                _Pragma("GCC unroll 16")
                for (int i = 0; i < VL; ++i) __builtin_memcpy(&r[i], src + (i0 + i) * lds + j0, sizeof(VEC));
                TR_STAGES;
                _Pragma("GCC unroll 16")
                for (int j = 0; j < VL; ++j) {
                    T* const to = dst + (j0 + j) * ldd + i0;
                    TR_EPI_VEC(r[j], j0 + j);
                    if (epi && TR_STREAM_OK(to)) {
                        TR_STREAM(to, r[j]);
                        continue;
                    }
                    if (epi) /* the row's line TR_EPI_AHEAD bytes on, before it is needed */
                        __builtin_prefetch(to + TR_EPI_AHEAD / sizeof(T), 1, 3);
                    __builtin_memcpy(to, &r[j], sizeof(VEC));
                }
            }
        } else if (VL - nj <= lds) {
            /* fewer than VL columns, through registers too: each row's vector reads on
             * into the next row, which lies within the same array (VL - nj <= lds),
             * except the matrix's last row, gathered element by element; only the nj
             * rows of the transpose that hold columns j < nj are stored */
            VEC r[VL];
            _Pragma("GCC unroll 16")
            for (int i = 0; i < VL; ++i) {
                const T* row = src + (i0 + i) * lds;
                if (i0 + i + 1 < ni) {
                    __builtin_memcpy(&r[i], row, sizeof(VEC));
                } else {
                    T last[VL] = {0};
                    for (ptrdiff_t j = 0; j < nj; ++j) last[j] = row[j];
                    __builtin_memcpy(&r[i], last, sizeof(VEC));
                }
            }
            TR_STAGES;
            for (ptrdiff_t j = 0; j < nj; ++j) {
                TR_EPI_VEC(r[j], j);
                __builtin_memcpy(dst + j * ldd + i0, &r[j], sizeof(VEC));
            }
        } else {
            for (ptrdiff_t i = i0; i < i0 + VL; ++i)
                for (ptrdiff_t j = 0; j < nj; ++j) dst[j * ldd + i] = TR_EPI_ONE(src[i * lds + j], j);
        }
    }
}

static TARGET_ATTR void TR_FN(const T* restrict src, ptrdiff_t lds, ptrdiff_t ni, ptrdiff_t nj,
                              T* restrict dst, ptrdiff_t ldd) {
    TR_IMPL(src, lds, ni, nj, dst, ldd, NULL, 0, 0, 0);
}

#ifdef TR_EPI_FN
static TARGET_ATTR void TR_EPI_FN(const T* restrict src, ptrdiff_t lds, ptrdiff_t ni,
                                  ptrdiff_t nj, T* restrict dst, ptrdiff_t ldd,
                                  const T* restrict bias, int act, int stream) {
    TR_IMPL(src, lds, ni, nj, dst, ldd, bias, act, 1, stream);
#if FNN_X86
    if (stream) __builtin_ia32_sfence(); /* the streamed lines before anything after */
#endif
}
#endif

#undef TR_STAGE
#undef TR_STAGES
#undef TR_STAGE_AT
#undef TR_STAGES_WIDE
#undef TR_LIST
#undef TR_VL
#undef TR_FN
#undef TR_EPI_FN
#undef TR_IMPL
#undef TR_EPI_VEC
#undef TR_EPI_ONE
#undef TR_STREAM
#undef TR_STREAM_OK
