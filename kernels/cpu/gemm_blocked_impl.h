/* One instantiation of the cache-blocked, packed GEMM with a fused epilogue.
 *
 * Included by gemm_blocked.h (through gemm_blocked_types.h) once per (dtype, instruction
 * set); no include guard.  The includers define (and afterwards undefine):
 *   FNN_T       float or double
 *   FNN_M       f32 or f64: suffix of the activation_simd.h functions for FNN_T
 *   FNN_SFX     suffix of every function defined here, e.g. f32_avx2
 *   FNN_ATTR    function attribute selecting the instruction set (may be empty)
 *   FNN_VBYTES  bytes per SIMD vector (32 for AVX2, 64 for AVX-512)
 *   FNN_MR      rows of the micro-tile
 *   FNN_NV      vectors per micro-tile row (the tile is FNN_MR x FNN_NV * lanes)
 *   FNN_MC, FNN_KC, FNN_NC   cache blocks: an MC x KC block of A stays in L2, a KC x NR
 *                            panel of B in L1, a KC x NC block of B in L3.
 *
 * The algorithm is the classic Goto/BLIS one.  For each NC-wide block of columns and
 * KC-deep slice of K, B is copied ("packed") into KC x NR panels; for each MC-high block
 * of rows, A is packed into MR x KC panels; then the micro-kernel multiplies one A panel
 * by one B panel into an MR x NR tile held in registers.  Packing turns any strides
 * (transposed, non-contiguous, negative) into unit-stride streams and pads the edges
 * with zeros, so the micro-kernel has a single shape.
 *
 * A full tile goes from registers to out: out = alpha * tile on the first K slice,
 * out += alpha * tile on the others; on the last slice the epilogue is fused in: the bias
 * is added and f'(u) multiplied in registers, an activation runs on an aligned stack copy
 * of the tile on its way to out.  Edge tiles (and a first slice that reads C with beta)
 * take a slower general path through the stack tile (fnn_store_tile).  With a single
 * block of rows, B panels are packed just before their use instead (see fnn_gemm_part).
 */

/* Profiling aid: build with -DFNN_GEMM_NOINLINE=noinline to see each stage in perf. */
#ifdef FNN_GEMM_NOINLINE
#define FNN_STAGE __attribute__((FNN_GEMM_NOINLINE))
#else
#define FNN_STAGE
#endif

#define FNN_CAT_(a, b) a##_##b
#define FNN_CAT(a, b) FNN_CAT_(a, b)
#define FNN_FN(name) FNN_CAT(name, FNN_SFX)
#define FNN_MATH(name) FNN_CAT(name, FNN_M)

#define FNN_LANES ((ptrdiff_t)(FNN_VBYTES / sizeof(FNN_T)))
#define FNN_PANEL_GROUP 4
#define FNN_NR (FNN_NV * FNN_LANES)

typedef FNN_T FNN_FN(fnn_vec) __attribute__((vector_size(FNN_VBYTES)));

/* o[0:count] = act(o[0:count]) for the forward activations (identity: nothing). */
static FNN_ATTR inline void FNN_FN(fnn_activate_run)(int act, FNN_T* restrict o,
                                                     ptrdiff_t count) {
    switch (act) {
    case FNN_ACT_RELU:
        for (ptrdiff_t j = 0; j < count; ++j) o[j] = FNN_MATH(fnn_relu)(o[j]);
        break;
    case FNN_ACT_SIGMOID:
        for (ptrdiff_t j = 0; j < count; ++j) o[j] = FNN_MATH(fnn_sigmoid)(o[j]);
        break;
    case FNN_ACT_TANH:
        for (ptrdiff_t j = 0; j < count; ++j) o[j] = FNN_MATH(fnn_tanh)(o[j]);
        break;
    default: break;
    }
}

/* ------------------------------------------------------------------------------------
 * Epilogue on mr x nr elements of out starting at row i0, column j0 (also used alone,
 * on a whole matrix, after a BLAS call).
 * ---------------------------------------------------------------------------------- */
/* o[i * n + j] += b[j] for i < rows, j < n: rows that follow each other.  Rows narrower
 * than four vectors take the bias as one run against the bias row repeated to a whole
 * number of vectors (n = 10 at 16 lanes: 80 values), since row by row their few values
 * ran as scalar loops (1024 x 10: 7 us on the AMD EPYC, against under 1 us). */
#define FNN_BIAS_PERIOD_MAX 1024
static FNN_ATTR void FNN_FN(fnn_add_bias_rows)(FNN_T* restrict o, const FNN_T* restrict b,
                                               ptrdiff_t rows, ptrdiff_t n) {
    ptrdiff_t period = n;
    while (period % FNN_LANES) period += n; /* lcm(n, lanes): at most n * lanes */
    const ptrdiff_t total = rows * n;
    if (n < 4 * FNN_LANES && period <= FNN_BIAS_PERIOD_MAX && total >= 2 * period) {
        FNN_T pattern[FNN_BIAS_PERIOD_MAX] __attribute__((aligned(64)));
        for (ptrdiff_t t = 0; t < period; ++t) pattern[t] = b[t % n];
        ptrdiff_t at = 0;
        for (; at + period <= total; at += period)
            for (ptrdiff_t t = 0; t < period; ++t) o[at + t] += pattern[t];
        for (ptrdiff_t t = 0; at + t < total; ++t) o[at + t] += pattern[t];
        return;
    }
    for (ptrdiff_t i = 0; i < rows; ++i)
        for (ptrdiff_t j = 0; j < n; ++j) o[i * n + j] += b[j];
}
#undef FNN_BIAS_PERIOD_MAX

static FNN_ATTR void FNN_FN(fnn_epilogue_block)(
    const fnn_epilogue* e, FNN_T* out, ptrdiff_t ldo, ptrdiff_t i0, ptrdiff_t j0,
    ptrdiff_t mr, ptrdiff_t nr) {
    const int act = e->act;
    if (!e->derivative && ldo == nr && mr > 1 && (act != FNN_ACT_IDENTITY || e->bias != NULL)) {
        /* rows as wide as out follow each other: the bias and then the activation over
         * the mr * nr elements as runs (a narrow result, e.g. 10 columns, would otherwise
         * run them in rows shorter than two vectors) */
        FNN_T* restrict o = out + i0 * ldo + j0;
        if (e->bias != NULL) FNN_FN(fnn_add_bias_rows)(o, (const FNN_T*)e->bias + j0, mr, nr);
        FNN_FN(fnn_activate_run)(act, o, mr * nr);
        return;
    }
    for (ptrdiff_t i = 0; i < mr; ++i) {
        FNN_T* restrict o = out + (i0 + i) * ldo + j0;
        ptrdiff_t j;
        if (e->derivative) {
            const FNN_T* restrict u = (const FNN_T*)e->u + (i0 + i) * e->ldu + j0;
            switch (act) {
            case FNN_ACT_RELU:
                /* a multiply, not a select: 0 * NaN is NaN, as in f'(u) * (delta @ W) */
                for (j = 0; j < nr; ++j) o[j] *= u[j] > 0 ? (FNN_T)1 : (FNN_T)0;
                break;
            case FNN_ACT_SIGMOID:
                for (j = 0; j < nr; ++j)
                    o[j] *= FNN_MATH(fnn_derivative)(FNN_ACT_SIGMOID, u[j]);
                break;
            case FNN_ACT_TANH:
                for (j = 0; j < nr; ++j) o[j] *= FNN_MATH(fnn_derivative)(FNN_ACT_TANH, u[j]);
                break;
            default: break;
            }
            continue;
        }
        if (e->bias != NULL) {
            const FNN_T* restrict b = (const FNN_T*)e->bias + j0;
            for (j = 0; j < nr; ++j) o[j] += b[j];
        }
        FNN_FN(fnn_activate_run)(act, o, nr);
    }
}

/* out = act(tile) for a full MR x NR tile (constant trip counts: straight-line vector
 * code; the aligned tile is read, out only written). */
static FNN_ATTR void FNN_FN(fnn_activate_tile)(int act, const FNN_T* restrict tile,
                                               FNN_T* restrict out, ptrdiff_t ldo) {
    for (int i = 0; i < FNN_MR; ++i) {
        const FNN_T* restrict t = tile + i * FNN_NR;
        FNN_T* restrict o = out + i * ldo;
        switch (act) {
        case FNN_ACT_RELU:
#pragma omp simd
            for (ptrdiff_t j = 0; j < FNN_NR; ++j) o[j] = FNN_MATH(fnn_relu)(t[j]);
            break;
        case FNN_ACT_SIGMOID:
#pragma omp simd
            for (ptrdiff_t j = 0; j < FNN_NR; ++j) o[j] = FNN_MATH(fnn_sigmoid)(t[j]);
            break;
        default:
#pragma omp simd
            for (ptrdiff_t j = 0; j < FNN_NR; ++j) o[j] = FNN_MATH(fnn_tanh)(t[j]);
        }
    }
}

/* f'(u) for a full MR x NR tile of u (row stride ldu) into the aligned `tile`. */
static FNN_ATTR void FNN_FN(fnn_derivative_tile)(int act, const FNN_T* restrict u,
                                                 ptrdiff_t ldu, FNN_T* restrict tile) {
    for (int i = 0; i < FNN_MR; ++i) {
        const FNN_T* restrict ur = u + i * ldu;
        FNN_T* restrict d = tile + i * FNN_NR;
        switch (act) {
        case FNN_ACT_RELU:
#pragma omp simd
            for (ptrdiff_t j = 0; j < FNN_NR; ++j) d[j] = ur[j] > 0 ? (FNN_T)1 : (FNN_T)0;
            break;
        case FNN_ACT_SIGMOID:
#pragma omp simd
            for (ptrdiff_t j = 0; j < FNN_NR; ++j)
                d[j] = FNN_MATH(fnn_derivative)(FNN_ACT_SIGMOID, ur[j]);
            break;
        default:
#pragma omp simd
            for (ptrdiff_t j = 0; j < FNN_NR; ++j)
                d[j] = FNN_MATH(fnn_derivative)(FNN_ACT_TANH, ur[j]);
        }
    }
}

/* Memory rows of a transposed A that fnn_pack_a reads together (0: panel by panel). */
#ifndef FNN_PACK_A_ROWS
#define FNN_PACK_A_ROWS 4
#endif

/* ------------------------------------------------------------------------------------
 * Packing.  A (mc x kc, element strides rs, cs) -> MR-row panels, each kc x MR (k-major);
 * B (kc x nc, strides rs, cs) -> NR-column panels, each kc x NR.  Edges padded with 0.
 * ---------------------------------------------------------------------------------- */
static FNN_ATTR FNN_STAGE void FNN_FN(fnn_pack_a)(ptrdiff_t mc, ptrdiff_t kc, const FNN_T* a,
                                        ptrdiff_t rs, ptrdiff_t cs, FNN_T* restrict dst) {
#if FNN_PACK_A_ROWS > 0
    if (rs == 1 && mc >= FNN_MR) {
        /* op(A) transposed (A read as a.T): memory rows run along the panels' rows.  A
         * few memory rows at a time across every whole panel, so that each is read in
         * one sequential run and each panel gets a whole run of its k-major rows: panel
         * by panel, the kc memory rows, a power-of-two stride apart (a 1024-wide a),
         * fall into one L1 set and each was fetched twice from L2 (the packing took 19%
         * of 1024 x 64 x 257 TN against 7% for NN on the AMD EPYC). */
        const ptrdiff_t whole = mc / FNN_MR * FNN_MR;
        for (ptrdiff_t k0 = 0; k0 < kc; k0 += FNN_PACK_A_ROWS) {
            const ptrdiff_t kn = kc - k0 < FNN_PACK_A_ROWS ? kc - k0 : FNN_PACK_A_ROWS;
            for (ptrdiff_t ir = 0; ir < whole; ir += FNN_MR) {
                FNN_T* restrict d = dst + ir * kc + k0 * FNN_MR;
                for (ptrdiff_t k = 0; k < kn; ++k)
                    for (ptrdiff_t i = 0; i < FNN_MR; ++i)
                        d[k * FNN_MR + i] = a[(k0 + k) * cs + ir + i];
            }
        }
        if (whole == mc) return;
        a += whole;
        dst += whole * kc;
        mc -= whole;
    }
#endif
    for (ptrdiff_t ir = 0; ir < mc; ir += FNN_MR, dst += kc * FNN_MR) {
        const FNN_T* src = a + ir * rs;
        ptrdiff_t mr = mc - ir < FNN_MR ? mc - ir : FNN_MR;
        if (mr == FNN_MR && rs == 1) {
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t i = 0; i < FNN_MR; ++i) dst[k * FNN_MR + i] = src[k * cs + i];
        } else if (mr == FNN_MR && cs == 1) {
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t i = 0; i < FNN_MR; ++i) dst[k * FNN_MR + i] = src[i * rs + k];
        } else {
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t i = 0; i < FNN_MR; ++i)
                    dst[k * FNN_MR + i] = i < mr ? src[i * rs + k * cs] : (FNN_T)0;
        }
    }
}

/* dst[j * ldd + i] = src[i * lds + j] through SIMD registers (simd_transpose.h); reads
 * whole vectors along j, so nj >= a vector unless the rows go on in memory. */
#define T FNN_T
#define VEC FNN_FN(fnn_vec)
#define VL FNN_VL_NUM
#define TARGET_ATTR FNN_ATTR
#define TR_FN FNN_FN(fnn_transpose)
#include "simd_transpose.h"
#undef T
#undef VEC
#undef VL
#undef TARGET_ATTR

static FNN_ATTR FNN_STAGE void FNN_FN(fnn_pack_b)(ptrdiff_t kc, ptrdiff_t nc, const FNN_T* b,
                                        ptrdiff_t rs, ptrdiff_t cs, FNN_T* restrict dst) {
    for (ptrdiff_t jr = 0; jr < nc; jr += FNN_NR, dst += kc * FNN_NR) {
        const FNN_T* src = b + jr * cs;
        ptrdiff_t nr = nc - jr < FNN_NR ? nc - jr : FNN_NR;
        if (nr == FNN_NR && cs == 1) {
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t j = 0; j < FNN_NR; ++j) dst[k * FNN_NR + j] = src[k * rs + j];
        } else if (nr == FNN_NR && rs == 1 && kc >= FNN_LANES) {
            /* op(B) transposed (a weight matrix read as w.T): the panel's columns are rows
             * of memory, turned through registers a vector block at a time */
            FNN_FN(fnn_transpose)(src, cs, FNN_NR, kc, dst, FNN_NR);
        } else if (nr == FNN_NR && rs == 1) {
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t j = 0; j < FNN_NR; ++j) dst[k * FNN_NR + j] = src[j * cs + k];
        } else {
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t j = 0; j < FNN_NR; ++j)
                    dst[k * FNN_NR + j] = j < nr ? src[k * rs + j * cs] : (FNN_T)0;
        }
    }
}

/* ------------------------------------------------------------------------------------
 * The micro-kernel: acc (MR x NR) = A panel (kc x MR) @ B panel (kc x NR).  MR * NV
 * accumulators stay in registers; per k it loads NV vectors of B and broadcasts MR
 * scalars of A, each feeding NV fused multiply-adds.  Then, by mode:
 * (modes: gemm_blocked.h)
 *   FNN_TILE_BUFFER  dst = acc                 (edge tiles, C read with beta: see store)
 *   FNN_TILE_SET     dst = alpha * acc          (a full tile, first K slice)
 *   FNN_TILE_ADD     dst = out + alpha * acc    (a full tile, later K slices)
 * dst is out itself, or the aligned stack tile (row stride NR) when an activation is
 * still to be applied: reading rows back from out right after storing them stalls when
 * rows are a multiple of 1 KiB apart (a load whose address matches an older store's in
 * its low 12 bits waits for that store), so the activation runs on the tile instead.
 * and, when `shift` (a row of NR values: the bias) is given, it is added to every row;
 * when `scale` (an MR x NR tile) is given, the result is multiplied by it before the
 * store: the derivative epilogue f'(u), computed into `scale` before the kernel runs so
 * that no load of u follows a store to out (when u and out rows share their address
 * bits below 4 KiB, as two large arrays usually do, such a load stalls on the store).
 * out's MR rows (and the u rows given, those of the next tile) are prefetched 32 steps
 * before the end of the k loop: early enough to arrive, late enough not to be evicted by
 * the B panel streaming through the same cache sets when rows are 4 KiB apart.
 * ---------------------------------------------------------------------------------- */
typedef FNN_FN(fnn_vec) FNN_FN(fnn_vec_t);

#define FNN_KSTEP(k)                                                                      \
    do {                                                                                  \
        FNN_FN(fnn_vec_t) bv[FNN_NV];                                                     \
        _Pragma("GCC unroll 4") for (int v = 0; v < FNN_NV; ++v)                          \
            bv[v] = *(const FNN_FN(fnn_vec_t)*)(b + (k) * FNN_NR + v * FNN_LANES);        \
        _Pragma("GCC unroll 16") for (int i = 0; i < FNN_MR; ++i) {                       \
            FNN_T s = a[(k) * FNN_MR + i];                                                \
            _Pragma("GCC unroll 4") for (int v = 0; v < FNN_NV; ++v) acc[i][v] += bv[v] * s; \
        }                                                                                 \
    } while (0)

static FNN_ATTR FNN_STAGE void FNN_FN(fnn_micro_kernel)(
    ptrdiff_t kc, const FNN_T* restrict a, const FNN_T* restrict b, int mode, FNN_T alpha,
    const FNN_T* out, ptrdiff_t ldo, FNN_T* dst, ptrdiff_t ldd, const FNN_T* restrict shift,
    const FNN_T* restrict scale, const FNN_T* u, ptrdiff_t ldu) {
    FNN_FN(fnn_vec_t) acc[FNN_MR][FNN_NV];
    ptrdiff_t k, k_prefetch = kc > 32 ? kc - 32 : 0;
#pragma GCC unroll 16
    for (int i = 0; i < FNN_MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < FNN_NV; ++v) acc[i][v] = (FNN_FN(fnn_vec_t)){0};
#pragma GCC unroll 4
    for (k = 0; k < k_prefetch; ++k) FNN_KSTEP(k);
    if (mode != FNN_TILE_BUFFER) {
#pragma GCC unroll 16
        for (int i = 0; i < FNN_MR; ++i) {
            __builtin_prefetch((const char*)(out + i * ldo), 1, 3);
            __builtin_prefetch((const char*)(out + i * ldo + FNN_NR) - 1, 1, 3);
        }
        if (u != NULL) {
#pragma GCC unroll 16
            for (int i = 0; i < FNN_MR; ++i) {
                __builtin_prefetch((const char*)(u + i * ldu), 0, 3);
                __builtin_prefetch((const char*)(u + i * ldu + FNN_NR) - 1, 0, 3);
            }
        }
    }
#pragma GCC unroll 4
    for (k = k_prefetch; k < kc; ++k) FNN_KSTEP(k);

    if (mode == FNN_TILE_BUFFER) {
#pragma GCC unroll 16
        for (int i = 0; i < FNN_MR; ++i)
#pragma GCC unroll 4
            for (int v = 0; v < FNN_NV; ++v)
                *(FNN_FN(fnn_vec_t)*)(dst + i * FNN_NR + v * FNN_LANES) = acc[i][v];
        return;
    }
#pragma GCC unroll 16
    for (int i = 0; i < FNN_MR; ++i) {
#pragma GCC unroll 4
        for (int v = 0; v < FNN_NV; ++v) {
            FNN_T* o = dst + i * ldd + v * FNN_LANES; /* any alignment: memcpy loads */
            FNN_FN(fnn_vec_t) r = acc[i][v] * alpha;
            if (mode == FNN_TILE_ADD) {
                FNN_FN(fnn_vec_t) old;
                __builtin_memcpy(&old, out + i * ldo + v * FNN_LANES, sizeof old);
                r += old;
            }
            if (shift != NULL) {
                FNN_FN(fnn_vec_t) add;
                __builtin_memcpy(&add, shift + v * FNN_LANES, sizeof add);
                r += add;
            }
            if (scale != NULL) r *= *(const FNN_FN(fnn_vec_t)*)(scale + i * FNN_NR + v * FNN_LANES);
            __builtin_memcpy(o, &r, sizeof r);
        }
    }
}

#undef FNN_KSTEP

/* Write one tile into out (rows i0.., columns j0.., mr x nr of it). */
static FNN_ATTR FNN_STAGE void FNN_FN(fnn_store_tile)(const fnn_gemm_args* g, const FNN_T* restrict tile,
                                            ptrdiff_t i0, ptrdiff_t j0, ptrdiff_t mr,
                                            ptrdiff_t nr, int first, int last) {
    const FNN_T alpha = (FNN_T)g->alpha, beta = (FNN_T)g->beta;
    FNN_T* out = (FNN_T*)g->out;
    const FNN_T* c = (const FNN_T*)g->c;
    for (ptrdiff_t i = 0; i < mr; ++i) {
        FNN_T* restrict o = out + (i0 + i) * g->ldo + j0;
        const FNN_T* restrict t = tile + i * FNN_NR;
        if (!first) {
            for (ptrdiff_t j = 0; j < nr; ++j) o[j] += alpha * t[j];
        } else if (c == NULL || beta == 0) {
            for (ptrdiff_t j = 0; j < nr; ++j) o[j] = alpha * t[j];
        } else if (g->c_cs == 1) {
            const FNN_T* restrict cr = c + (i0 + i) * g->c_rs + j0;
            for (ptrdiff_t j = 0; j < nr; ++j) o[j] = alpha * t[j] + beta * cr[j];
        } else {
            const FNN_T* cr = c + (i0 + i) * g->c_rs + j0 * g->c_cs;
            for (ptrdiff_t j = 0; j < nr; ++j) o[j] = alpha * t[j] + beta * cr[j * g->c_cs];
        }
    }
    if (last && (g->epi.act != FNN_ACT_IDENTITY || g->epi.bias != NULL))
        FNN_FN(fnn_epilogue_block)(&g->epi, out, g->ldo, i0, j0, mr, nr);
}

/* While the panels of one group are multiplied, fetch the next group of B columns from
 * memory (a quarter of its rows per panel), so that packing it does not wait on DRAM:
 * with few rows of A, streaming B in is a third of the time otherwise.  Unit-stride B
 * only (rows of B as stored are then contiguous). */
static FNN_ATTR inline void FNN_FN(fnn_prefetch_next_group)(const fnn_gemm_args* g,
                                                            const FNN_T* b_slice, ptrdiff_t kc,
                                                            ptrdiff_t nc, ptrdiff_t group_start,
                                                            ptrdiff_t panel) {
    ptrdiff_t next = group_start + FNN_NR * FNN_PANEL_GROUP;
    if (g->b_cs != 1 || next >= nc) return;
    ptrdiff_t width = nc - next < FNN_NR * FNN_PANEL_GROUP ? nc - next : FNN_NR * FNN_PANEL_GROUP;
    size_t bytes = (size_t)width * sizeof(FNN_T);
    ptrdiff_t k0 = kc * panel / FNN_PANEL_GROUP, k1 = kc * (panel + 1) / FNN_PANEL_GROUP;
    for (ptrdiff_t kk = k0; kk < k1; ++kk) {
        const char* row = (const char*)(b_slice + kk * g->b_rs + next);
        for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(row + off, 0, 2);
    }
}

/* x * y + z rounded once, as the vector loops' contracted multiply-adds round it (a
 * result must not depend on which loop computed it: the same product in another memory
 * layout takes another). */
static FNN_ATTR inline FNN_T FNN_FN(fnn_fma)(FNN_T x, FNN_T y, FNN_T z) {
    return sizeof(FNN_T) == 4 ? __builtin_fmaf((float)x, (float)y, (float)z)
                              : (FNN_T)__builtin_fma((double)x, (double)y, (double)z);
}

/* Rows of out per step of the short path (fnn_gemm_short) and vectors per row: 4 x 4
 * sums in registers, 4 broadcasts of A and 4 vectors of B feeding 16 multiply-adds. */
#define FNN_SHORT_ROWS 4
#define FNN_SHORT_NV 4

/* out[ROW0 + q, J0 + ...] for q < ROWS (<= FNN_SHORT_ROWS) and NV whole vectors of
 * columns: the k steps summed in registers, then alpha * sum (+ what out holds, with
 * accumulate) stored once.  op(B) row p, column j at bsrc[p * bld + j]. */
#define FNN_SHORT_TILE(ROW0, ROWS, NV, J0)                                                 \
    do {                                                                                  \
        V acc[ROWS][NV];                                                                  \
        _Pragma("GCC unroll 4") for (int q = 0; q < (ROWS); ++q)                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < (NV); ++v) acc[q][v] = (V){0};    \
        for (ptrdiff_t p = 0; p < k; ++p) {                                               \
            const FNN_T* brow = bsrc + p * bld + (J0);                                    \
            V bv[NV];                                                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < (NV); ++v)                        \
                __builtin_memcpy(&bv[v], brow + v * FNN_LANES, sizeof(V));                \
            _Pragma("GCC unroll 4") for (int q = 0; q < (ROWS); ++q) {                    \
                const FNN_T coef = a[((ROW0) + q) * g->a_rs + p * g->a_cs];               \
                _Pragma("GCC unroll 4") for (int v = 0; v < (NV); ++v)                    \
                    acc[q][v] += coef * bv[v];                                            \
            }                                                                             \
        }                                                                                 \
        _Pragma("GCC unroll 4") for (int q = 0; q < (ROWS); ++q) {                        \
            FNN_T* o = out + ((ROW0) + q) * g->ldo + (J0);                                \
            _Pragma("GCC unroll 4") for (int v = 0; v < (NV); ++v) {                      \
                V r = acc[q][v] * alpha;                                                  \
                if (g->accumulate) {                                                      \
                    V old;                                                                \
                    __builtin_memcpy(&old, o + v * FNN_LANES, sizeof(V));                 \
                    r += old;                                                             \
                }                                                                         \
                __builtin_memcpy(o + v * FNN_LANES, &r, sizeof(V));                       \
            }                                                                             \
        }                                                                                 \
    } while (0)

/* Rows [i0, i0 + rows) (rows <= FNN_SHORT_ROWS) x columns [n0, n1) of a short product,
 * op(B)'s row p, column j at bsrc[p * bld + j] (unit stride along j): whole tiles of
 * FNN_SHORT_NV vectors, then single vectors, then the last columns: one vector ending at
 * n1 where that overwrites (and the part is a vector wide), else one column at a time. */
static FNN_ATTR void FNN_FN(fnn_short_rows)(const fnn_gemm_args* g, ptrdiff_t i0,
                                            ptrdiff_t rows, ptrdiff_t n0, ptrdiff_t n1,
                                            const FNN_T* bsrc, ptrdiff_t bld) {
    typedef FNN_FN(fnn_vec_t) V;
    const FNN_T* a = (const FNN_T*)g->a;
    FNN_T* out = (FNN_T*)g->out;
    const FNN_T alpha = (FNN_T)g->alpha;
    const ptrdiff_t k = g->k, wide = FNN_SHORT_NV * FNN_LANES;
    ptrdiff_t j0 = n0;
    if (rows == FNN_SHORT_ROWS) {
        for (; j0 + wide <= n1; j0 += wide) FNN_SHORT_TILE(i0, FNN_SHORT_ROWS, FNN_SHORT_NV, j0);
        for (; j0 + FNN_LANES <= n1; j0 += FNN_LANES) FNN_SHORT_TILE(i0, FNN_SHORT_ROWS, 1, j0);
    } else {
        for (ptrdiff_t i = i0; i < i0 + rows; ++i) {
            j0 = n0;
            for (; j0 + wide <= n1; j0 += wide) FNN_SHORT_TILE(i, 1, FNN_SHORT_NV, j0);
            for (; j0 + FNN_LANES <= n1; j0 += FNN_LANES) FNN_SHORT_TILE(i, 1, 1, j0);
        }
    }
    if (j0 < n1 && n1 - n0 >= FNN_LANES && !g->accumulate) {
        /* the last columns as one vector ending at n1: it overlaps columns already
         * stored, which it stores again with the same values */
        const ptrdiff_t last = n1 - FNN_LANES;
        if (rows == FNN_SHORT_ROWS)
            FNN_SHORT_TILE(i0, FNN_SHORT_ROWS, 1, last);
        else
            for (ptrdiff_t i = i0; i < i0 + rows; ++i) FNN_SHORT_TILE(i, 1, 1, last);
        return;
    }
    for (ptrdiff_t i = i0; i < i0 + rows; ++i) { /* columns past the last whole vector */
        FNN_T* o = out + i * g->ldo;
        for (ptrdiff_t j = j0; j < n1; ++j) {
            FNN_T sum = 0;
            for (ptrdiff_t p = 0; p < k; ++p)
                sum = FNN_FN(fnn_fma)(a[i * g->a_rs + p * g->a_cs], bsrc[p * bld + j], sum);
            o[j] = g->accumulate ? o[j] + alpha * sum : alpha * sum;
        }
    }
}
#undef FNN_SHORT_TILE

/* The rows [m0, m1) x columns [n0, n1) of a product with a short reduction (k small),
 * without packing.  With k = 1 or 2 every packed element would be used once or twice and
 * every register tile loaded and stored for a step or two, so the blocked path spends
 * its time on overhead; here each output is summed in registers and written once, at
 * memory speed (fnn_short_rows).  Then beta * C and the epilogue, row by row. */
static FNN_ATTR int FNN_FN(fnn_gemm_short)(const fnn_gemm_args* g, ptrdiff_t m0, ptrdiff_t m1,
                                           ptrdiff_t n0, ptrdiff_t n1) {
    const FNN_T* b = (const FNN_T*)g->b;
    const FNN_T* c = (const FNN_T*)g->c;
    FNN_T* out = (FNN_T*)g->out;
    const FNN_T beta = (FNN_T)g->beta;
    const int reads_c = c != NULL && g->beta != 0;
    const ptrdiff_t nc = n1 - n0;
    /* op(B)'s rows read in place (unit stride), or copied once into rows a vector plus
     * 64 bytes apart: rows in place that lie a multiple of 4 KiB apart (1024 floats)
     * share their L1 sets with each other and with out's rows, and a tile of k of them
     * runs out of ways (256 x 4096 x 10 took 1.3x the time of k = 8); the copy also
     * aligns them.  Copied where there are rows enough to use it again, and always
     * where op(B)'s rows are strided. */
    const FNN_T* bsrc = b;
    ptrdiff_t bld = g->b_rs;
    FNN_T* copy = NULL;
    if (g->k > 0 && (g->b_cs != 1 || (m1 - m0 > FNN_SHORT_ROWS && nc >= FNN_LANES))) {
        const ptrdiff_t ld = (nc + FNN_LANES - 1) / FNN_LANES * FNN_LANES + 64 / (ptrdiff_t)sizeof(FNN_T);
        copy = (FNN_T*)fnn_aligned_alloc_64((size_t)(g->k * ld) * sizeof(FNN_T));
        if (copy == NULL) return -1;
        for (ptrdiff_t p = 0; p < g->k; ++p) {
            const FNN_T* src = b + p * g->b_rs + n0 * g->b_cs;
            FNN_T* restrict dst = copy + p * ld;
            if (g->b_cs == 1)
                __builtin_memcpy(dst, src, (size_t)nc * sizeof(FNN_T));
            else
                for (ptrdiff_t j = 0; j < nc; ++j) dst[j] = src[j * g->b_cs];
        }
        bsrc = copy - n0;
        bld = ld;
    }
    for (ptrdiff_t i = m0; i < m1; i += FNN_SHORT_ROWS) {
        const ptrdiff_t rows = m1 - i < FNN_SHORT_ROWS ? m1 - i : FNN_SHORT_ROWS;
        FNN_FN(fnn_short_rows)(g, i, rows, n0, n1, bsrc, bld);
        for (ptrdiff_t q = i; q < i + rows; ++q) {
            if (reads_c) {
                FNN_T* restrict o = out + q * g->ldo + n0;
                const FNN_T* cr = c + q * g->c_rs + n0 * g->c_cs;
                for (ptrdiff_t j = 0; j < nc; ++j) o[j] += beta * cr[j * g->c_cs];
            }
            if (g->epi.derivative || g->epi.act != FNN_ACT_IDENTITY || g->epi.bias != NULL)
                FNN_FN(fnn_epilogue_block)(&g->epi, out, g->ldo, q, n0, 1, nc);
        }
    }
    fnn_aligned_free_64(copy);
    return 0;
}

/* ------------------------------------------------------------------------------------
 * Thin products: one row or one column of result (a matrix-vector product).  A register
 * tile would be 1/MR or 1/NR full and every element of the matrix would be packed to be
 * used once, so these read the matrix once, in place, at memory speed instead.
 * ---------------------------------------------------------------------------------- */

/* dst[r * ds] = alpha * dot(x_r, v) for `rows` vectors x_r = x + r * xs of length k, each
 * with unit stride, and v with unit stride: four vectors at a time, two accumulators
 * each (eight independent chains of fused multiply-adds). */
static FNN_ATTR void FNN_FN(fnn_dot_rows)(ptrdiff_t rows, ptrdiff_t k, const FNN_T* x,
                                          ptrdiff_t xs, const FNN_T* restrict v, FNN_T alpha,
                                          FNN_T* dst, ptrdiff_t ds) {
    typedef FNN_FN(fnn_vec_t) V;
    const ptrdiff_t step = 2 * FNN_LANES, kv = k / step * step;
    ptrdiff_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const FNN_T* x0 = x + r * xs;
        V acc[4][2];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) acc[q][0] = acc[q][1] = (V){0};
        for (ptrdiff_t p = 0; p < kv; p += step) {
            V v0, v1;
            __builtin_memcpy(&v0, v + p, sizeof v0);
            __builtin_memcpy(&v1, v + p + FNN_LANES, sizeof v1);
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q) {
                V x_0, x_1;
                __builtin_memcpy(&x_0, x0 + q * xs + p, sizeof x_0);
                __builtin_memcpy(&x_1, x0 + q * xs + p + FNN_LANES, sizeof x_1);
                acc[q][0] += x_0 * v0;
                acc[q][1] += x_1 * v1;
            }
        }
        for (int q = 0; q < 4; ++q) {
            V both = acc[q][0] + acc[q][1];
            FNN_T sum = 0;
            for (ptrdiff_t l = 0; l < FNN_LANES; ++l) sum += both[l];
            for (ptrdiff_t p = kv; p < k; ++p) sum += x0[q * xs + p] * v[p];
            dst[(r + q) * ds] = alpha * sum;
        }
    }
    for (; r < rows; ++r) {
        const FNN_T* xr = x + r * xs;
        V acc0 = (V){0}, acc1 = (V){0};
        for (ptrdiff_t p = 0; p < kv; p += step) {
            V v0, v1, x_0, x_1;
            __builtin_memcpy(&v0, v + p, sizeof v0);
            __builtin_memcpy(&v1, v + p + FNN_LANES, sizeof v1);
            __builtin_memcpy(&x_0, xr + p, sizeof x_0);
            __builtin_memcpy(&x_1, xr + p + FNN_LANES, sizeof x_1);
            acc0 += x_0 * v0;
            acc1 += x_1 * v1;
        }
        V both = acc0 + acc1;
        FNN_T sum = 0;
        for (ptrdiff_t l = 0; l < FNN_LANES; ++l) sum += both[l];
        for (ptrdiff_t p = kv; p < k; ++p) sum += xr[p] * v[p];
        dst[r * ds] = alpha * sum;
    }
}

/* Columns of dst summed per pass of fnn_axpy_rows: 8 KiB of it, which stays in L1 while
 * every row of y streams past. */
#define FNN_AXPY_BLOCK ((ptrdiff_t)(8192 / sizeof(FNN_T)))

/* dst[0:w] = alpha * sum_p c[p * cs] * y_p[0:w] for the k rows y_p = y + p * ys, each with
 * unit stride: four rows of y per pass over a block of dst. */
static FNN_ATTR void FNN_FN(fnn_axpy_rows)(ptrdiff_t k, ptrdiff_t w, const FNN_T* c,
                                           ptrdiff_t cs, const FNN_T* y, ptrdiff_t ys,
                                           FNN_T alpha, FNN_T* restrict dst) {
    for (ptrdiff_t j0 = 0; j0 < w; j0 += FNN_AXPY_BLOCK) {
        const ptrdiff_t width = w - j0 < FNN_AXPY_BLOCK ? w - j0 : FNN_AXPY_BLOCK;
        FNN_T* restrict d = dst + j0;
        for (ptrdiff_t j = 0; j < width; ++j) d[j] = 0;
        ptrdiff_t p = 0;
        for (; p + 8 <= k; p += 8) {
            FNN_T cf[8];
            const FNN_T* yr[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; ++q) {
                cf[q] = alpha * c[(p + q) * cs];
                yr[q] = y + (p + q) * ys + j0;
            }
#pragma omp simd
            for (ptrdiff_t j = 0; j < width; ++j)
                d[j] += cf[0] * yr[0][j] + cf[1] * yr[1][j] + cf[2] * yr[2][j] + cf[3] * yr[3][j] +
                        cf[4] * yr[4][j] + cf[5] * yr[5][j] + cf[6] * yr[6][j] + cf[7] * yr[7][j];
        }
        for (; p < k; ++p) {
            const FNN_T cp = alpha * c[p * cs];
            const FNN_T* restrict yp = y + p * ys + j0;
#pragma omp simd
            for (ptrdiff_t j = 0; j < width; ++j) d[j] += cp * yp[j];
        }
    }
}

/* The part [m0, m1) x [n0, n1) of a product with one column (n = 1) or one row (m = 1)
 * of result.  Each output is a dot product of a row or column of the matrix with the
 * vector when that line is contiguous (fnn_dot_rows; a strided vector is copied once),
 * else the sum of the matrix's contiguous lines scaled by the vector's elements
 * (fnn_axpy_rows), else plain loops.  Then beta * C and the epilogue, on this part.
 * Returns 0, or -1 when the vector's copy cannot be allocated. */
static FNN_ATTR int FNN_FN(fnn_gemm_thin)(const fnn_gemm_args* g, ptrdiff_t m0, ptrdiff_t m1,
                                          ptrdiff_t n0, ptrdiff_t n1) {
    const FNN_T* a = (const FNN_T*)g->a;
    const FNN_T* b = (const FNN_T*)g->b;
    FNN_T* out = (FNN_T*)g->out;
    const FNN_T alpha = (FNN_T)g->alpha;
    const ptrdiff_t k = g->k, ldo = g->ldo;
    /* one line of outputs: n = 1 runs down rows of A against b's column, m = 1 across
     * columns of op(B) against a's row */
    const int column = g->n == 1;
    const ptrdiff_t count = column ? m1 - m0 : n1 - n0;
    const FNN_T* mat = column ? a + m0 * g->a_rs : b + n0 * g->b_cs;
    const ptrdiff_t line_step = column ? g->a_rs : g->b_cs;  /* next output's line */
    const ptrdiff_t along_k = column ? g->a_cs : g->b_rs;    /* within a line */
    const FNN_T* vec = column ? b : a;
    const ptrdiff_t vec_step = column ? g->b_rs : g->a_cs;
    FNN_T* const target = out + (column ? m0 * ldo : n0);
    const ptrdiff_t target_step = column ? ldo : 1;
    FNN_T* dst = target;
    ptrdiff_t dst_step = target_step;
    FNN_T* copy = NULL;
    FNN_T* sums = NULL;
    if (g->accumulate) { /* the products into a buffer of their own, then added to out */
        sums = (FNN_T*)malloc((size_t)(count > 0 ? count : 1) * sizeof(FNN_T));
        if (sums == NULL) return -1;
        dst = sums;
        dst_step = 1;
    }
    if (along_k == 1) {
        if (vec_step != 1 && k > 0) {
            copy = (FNN_T*)malloc((size_t)k * sizeof(FNN_T));
            if (copy == NULL) {
                free(sums);
                return -1;
            }
            for (ptrdiff_t p = 0; p < k; ++p) copy[p] = vec[p * vec_step];
            vec = copy;
        }
        FNN_FN(fnn_dot_rows)(count, k, mat, line_step, vec, alpha, dst, dst_step);
    } else if (line_step == 1 && dst_step == 1) {
        FNN_FN(fnn_axpy_rows)(k, count, vec, vec_step, mat, along_k, alpha, dst);
    } else {
        for (ptrdiff_t r = 0; r < count; ++r) {
            FNN_T sum = 0;
            for (ptrdiff_t p = 0; p < k; ++p) sum += mat[r * line_step + p * along_k] * vec[p * vec_step];
            dst[r * dst_step] = alpha * sum;
        }
    }
    free(copy);
    if (sums != NULL) {
        for (ptrdiff_t r = 0; r < count; ++r) target[r * target_step] += sums[r];
        free(sums);
        return 0;
    }
    if (g->c != NULL && g->beta != 0) {
        const FNN_T beta = (FNN_T)g->beta;
        const FNN_T* c = (const FNN_T*)g->c;
        for (ptrdiff_t i = m0; i < m1; ++i)
            for (ptrdiff_t j = n0; j < n1; ++j) out[i * ldo + j] += beta * c[i * g->c_rs + j * g->c_cs];
    }
    if (g->epi.derivative || g->epi.act != FNN_ACT_IDENTITY || g->epi.bias != NULL)
        FNN_FN(fnn_epilogue_block)(&g->epi, out, ldo, m0, n0, m1 - m0, n1 - n0);
    return 0;
}

#undef FNN_AXPY_BLOCK

/* One tile of out at rows i0.., columns j0.. (mr x nr of it inside out) from the packed
 * A micro-panel ap and B panel bp, kc deep: the micro-kernel and the write-out (a full
 * tile straight from registers with the epilogue fused on the last slice; an edge tile,
 * or a first slice that reads C, through the stack tile). */
static FNN_ATTR inline void FNN_FN(fnn_gemm_tile)(const fnn_gemm_args* g, ptrdiff_t kc,
                                                  const FNN_T* ap, const FNN_T* bp,
                                                  ptrdiff_t i0, ptrdiff_t j0, ptrdiff_t mr,
                                                  ptrdiff_t nr, int first, int last,
                                                  FNN_T* tile) {
    const FNN_T alpha = (FNN_T)g->alpha;
    FNN_T* o = (FNN_T*)g->out + i0 * g->ldo + j0;
    const FNN_T* u =
        last && g->epi.derivative ? (const FNN_T*)g->epi.u + i0 * g->epi.ldu + j0 : NULL;
    if (mr < FNN_MR || nr < FNN_NR || (first && g->c != NULL && g->beta != 0)) {
        FNN_FN(fnn_micro_kernel)(kc, ap, bp, FNN_TILE_BUFFER, alpha, o, g->ldo, tile, FNN_NR,
                                 NULL, NULL, NULL, 0);
        FNN_FN(fnn_store_tile)(g, tile, i0, j0, mr, nr, first, last);
        return;
    }
    const FNN_T* scale = NULL;
    if (u != NULL && g->epi.act != FNN_ACT_IDENTITY) {
        FNN_FN(fnn_derivative_tile)(g->epi.act, u, g->epi.ldu, tile);
        scale = tile;
    }
    const FNN_T* shift =
        last && g->epi.bias != NULL && !g->epi.derivative ? (const FNN_T*)g->epi.bias + j0 : NULL;
    const int activate = last && !g->epi.derivative && g->epi.act != FNN_ACT_IDENTITY;
    FNN_FN(fnn_micro_kernel)(kc, ap, bp, first ? FNN_TILE_SET : FNN_TILE_ADD, alpha, o, g->ldo,
                             activate ? tile : o, activate ? FNN_NR : g->ldo, shift, scale,
                             u == NULL ? NULL : u + FNN_MR * g->epi.ldu, g->epi.ldu);
    if (activate) FNN_FN(fnn_activate_tile)(g->epi.act, tile, o, g->ldo);
}

/* The rows [m0, m1) x columns [n0, n1) of the product, on the calling thread, with its
 * own packing buffers.  Returns 0, or -1 when the buffers cannot be allocated. */
static FNN_ATTR int FNN_FN(fnn_gemm_part)(const fnn_gemm_args* g, ptrdiff_t m0, ptrdiff_t m1,
                                          ptrdiff_t n0, ptrdiff_t n1) {
    const FNN_T* a = (const FNN_T*)g->a;
    const FNN_T* b = (const FNN_T*)g->b;
    const ptrdiff_t k = g->k;
    /* K in equal slices of at most FNN_KC * 5/4 (257 is one slice, 784 four of 196):
     * a short tail slice (784 = 3 x 256 + 16) would repack A and B, and load and store
     * every tile of out once more, for a few steps of k. */
    const ptrdiff_t k_slices = k <= FNN_KC + FNN_KC / 4 ? 1 : (k + FNN_KC - 1) / FNN_KC;
    ptrdiff_t kc_max = k > 0 ? (k + k_slices - 1) / k_slices : 1;
    ptrdiff_t mc_max = m1 - m0 < FNN_MC ? m1 - m0 : FNN_MC;
    ptrdiff_t nc_max = n1 - n0 < FNN_NC ? n1 - n0 : FNN_NC;
    mc_max = (mc_max + FNN_MR - 1) / FNN_MR * FNN_MR;
    nc_max = (nc_max + FNN_NR - 1) / FNN_NR * FNN_NR;
    if (m1 - m0 <= FNN_MC && nc_max > FNN_NR * FNN_PANEL_GROUP) /* one_row_block, below */
        nc_max = FNN_NR * FNN_PANEL_GROUP;
    size_t a_bytes = (size_t)(mc_max * kc_max) * sizeof(FNN_T);
    size_t b_bytes = (size_t)(kc_max * nc_max) * sizeof(FNN_T);
    a_bytes = (a_bytes + 63) & ~(size_t)63;
    char* buffer = (char*)fnn_aligned_alloc_64(a_bytes + b_bytes);
    if (buffer == NULL) return -1;
    FNN_T* ap = (FNN_T*)buffer;
    FNN_T* bp = (FNN_T*)(buffer + a_bytes);
    FNN_T tile[FNN_MR * FNN_NR] __attribute__((aligned(64)));
    /* With a single block of rows, each B panel is used by that block only: pack panels
     * right before their use, FNN_PANEL_GROUP at a time (so that each row of B read from
     * memory is FNN_PANEL_GROUP * NR elements long), while they are hot in cache, instead
     * of packing the whole KC x NC slice into a buffer that spills out of L2. */
    const int one_row_block = m1 - m0 <= FNN_MC;

    for (ptrdiff_t jc = n0; jc < n1; jc += FNN_NC) {
        ptrdiff_t nc = n1 - jc < FNN_NC ? n1 - jc : FNN_NC;
        for (ptrdiff_t slice = 0; slice < k_slices; ++slice) {
            ptrdiff_t pc = k * slice / k_slices, kc = k * (slice + 1) / k_slices - pc;
            int first = slice == 0 && !g->accumulate, last = slice == k_slices - 1;
            const FNN_T* b_slice = b + pc * g->b_rs + jc * g->b_cs;
            if (!one_row_block) FNN_FN(fnn_pack_b)(kc, nc, b_slice, g->b_rs, g->b_cs, bp);
            for (ptrdiff_t ic = m0; ic < m1; ic += FNN_MC) {
                ptrdiff_t mc = m1 - ic < FNN_MC ? m1 - ic : FNN_MC;
                FNN_FN(fnn_pack_a)(mc, kc, a + ic * g->a_rs + pc * g->a_cs, g->a_rs, g->a_cs,
                                   ap);
                if (one_row_block) {
                    /* pack a few panels only, just before their use; each is used by
                     * every row tile while it is in L1 */
                    for (ptrdiff_t jr = 0; jr < nc; jr += FNN_NR) {
                        ptrdiff_t nr = nc - jr < FNN_NR ? nc - jr : FNN_NR;
                        ptrdiff_t in_group = jr % (FNN_NR * FNN_PANEL_GROUP);
                        if (in_group == 0) {
                            ptrdiff_t width = nc - jr < FNN_NR * FNN_PANEL_GROUP
                                                  ? nc - jr
                                                  : FNN_NR * FNN_PANEL_GROUP;
                            FNN_FN(fnn_pack_b)(kc, width, b_slice + jr * g->b_cs, g->b_rs,
                                               g->b_cs, bp);
                        }
                        FNN_FN(fnn_prefetch_next_group)(g, b_slice, kc, nc, jr - in_group,
                                                        in_group / FNN_NR);
                        for (ptrdiff_t ir = 0; ir < mc; ir += FNN_MR) {
                            ptrdiff_t mr = mc - ir < FNN_MR ? mc - ir : FNN_MR;
                            FNN_FN(fnn_gemm_tile)(g, kc, ap + ir * kc, bp + in_group * kc,
                                                  ic + ir, jc + jr, mr, nr, first, last,
                                                  tile);
                        }
                    }
                    continue;
                }
                /* B packed whole: blocks of its panels that fit L2 (fnn_gemm_b_block_bytes);
                 * each A micro-panel stays in L1 while a block's panels stream past it */
                ptrdiff_t per = (ptrdiff_t)(fnn_gemm_b_block_bytes /
                                            (double)(kc * FNN_NR * (ptrdiff_t)sizeof(FNN_T)));
                ptrdiff_t cols = (per > 1 ? per : 1) * FNN_NR;
                for (ptrdiff_t jb = 0; jb < nc; jb += cols) {
                    ptrdiff_t jb_end = nc - jb < cols ? nc : jb + cols;
                    for (ptrdiff_t ir = 0; ir < mc; ir += FNN_MR) {
                        ptrdiff_t mr = mc - ir < FNN_MR ? mc - ir : FNN_MR;
                        for (ptrdiff_t jr = jb; jr < jb_end; jr += FNN_NR) {
                            ptrdiff_t nr = nc - jr < FNN_NR ? nc - jr : FNN_NR;
                            FNN_FN(fnn_gemm_tile)(g, kc, ap + ir * kc, bp + jr * kc, ic + ir,
                                                  jc + jr, mr, nr, first, last, tile);
                        }
                    }
                }
            }
        }
    }
    fnn_aligned_free_64(buffer);
    return 0;
}

/* The rows [m0, m1) (at most FNN_FEW_TILES * MR of them) x columns [n0, n1) of a
 * product whose B rows are contiguous (b_cs == 1), without packing: per strip of NR
 * columns and chunk of KC steps of the reduction, each row tile reduces with B read in
 * place, a row at a time (the chunk stays in L1 for the next row tile), and A's values
 * broadcast from where they are.  With a tile or two of rows every packed element of B would be used
 * once or twice, so packing it costs a copy of B for nothing (7 x 1024 @ 1024 x 257: B
 * is read once here, and written and read once more by the packed path).  Rows past m1
 * read the last row again (their sums are not stored); columns past the last whole
 * strip go to the packed path. */
#define FNN_FEW_TILES 2
static FNN_ATTR int FNN_FN(fnn_gemm_few)(const fnn_gemm_args* g, ptrdiff_t m0, ptrdiff_t m1,
                                         ptrdiff_t n0, ptrdiff_t n1) {
    const FNN_T* b = (const FNN_T*)g->b;
    const ptrdiff_t k = g->k, a_cs = g->a_cs, b_rs = g->b_rs;
    /* B's rows lie a row stride apart, often 4 KiB or more (a page each), where the
     * hardware prefetchers do not follow: the first row tile fetches the strip's lines
     * fnn_gemm_few_prefetch rows ahead (measured per CPU; a prefetch past B's end is a
     * hint, never a fault) */
    const ptrdiff_t ahead = fnn_gemm_few_prefetch * b_rs;
    /* the sums of each row tile, kept between the KC-deep chunks of the reduction (so
     * that the chunk of the strip a tile reads is still in L1 for the next tile) */
    FNN_T tile[FNN_FEW_TILES][FNN_MR * FNN_NR] __attribute__((aligned(64)));
    ptrdiff_t j0 = n0;
    for (; j0 + FNN_NR <= n1; j0 += FNN_NR) {
        for (ptrdiff_t p0 = 0; p0 < k; p0 += FNN_KC) {
            const ptrdiff_t p1 = k - p0 < FNN_KC ? k : p0 + FNN_KC;
            for (ptrdiff_t i0 = m0, t = 0; i0 < m1; i0 += FNN_MR, ++t) {
                const ptrdiff_t mr = m1 - i0 < FNN_MR ? m1 - i0 : FNN_MR;
                const FNN_T* arow[FNN_MR];
                for (int i = 0; i < FNN_MR; ++i)
                    arow[i] = (const FNN_T*)g->a + (i0 + (i < mr ? i : mr - 1)) * g->a_rs;
                FNN_FN(fnn_vec_t) acc[FNN_MR][FNN_NV];
#pragma GCC unroll 16
                for (int i = 0; i < FNN_MR; ++i)
#pragma GCC unroll 4
                    for (int v = 0; v < FNN_NV; ++v)
                        acc[i][v] = p0 == 0 ? (FNN_FN(fnn_vec_t)){0}
                                            : *(FNN_FN(fnn_vec_t)*)(tile[t] + i * FNN_NR +
                                                                    v * FNN_LANES);
                const FNN_T* bp = b + p0 * b_rs + j0;
                for (ptrdiff_t p = p0; p < p1; ++p, bp += b_rs) {
                    if (ahead != 0 && t == 0) /* the first tile's (the others hit L1) */
                        for (int line = 0; line < FNN_NR * (int)sizeof(FNN_T); line += 64)
                            __builtin_prefetch((const char*)(bp + ahead) + line, 0, 3);
                    FNN_FN(fnn_vec_t) bv[FNN_NV];
#pragma GCC unroll 4
                    for (int v = 0; v < FNN_NV; ++v)
                        __builtin_memcpy(&bv[v], bp + v * FNN_LANES, sizeof bv[v]);
#pragma GCC unroll 16
                    for (int i = 0; i < FNN_MR; ++i) {
                        const FNN_T s = arow[i][p * a_cs];
#pragma GCC unroll 4
                        for (int v = 0; v < FNN_NV; ++v) acc[i][v] += bv[v] * s;
                    }
                }
#pragma GCC unroll 16
                for (int i = 0; i < FNN_MR; ++i)
#pragma GCC unroll 4
                    for (int v = 0; v < FNN_NV; ++v)
                        *(FNN_FN(fnn_vec_t)*)(tile[t] + i * FNN_NR + v * FNN_LANES) = acc[i][v];
            }
        }
        for (ptrdiff_t i0 = m0, t = 0; i0 < m1; i0 += FNN_MR, ++t)
            FNN_FN(fnn_store_tile)(g, tile[t], i0, j0, m1 - i0 < FNN_MR ? m1 - i0 : FNN_MR,
                                   FNN_NR, !g->accumulate, 1);
    }
    return j0 < n1 ? FNN_FN(fnn_gemm_part)(g, m0, m1, j0, n1) : 0;
}

/* ------------------------------------------------------------------------------------
 * Narrow products: a few columns of result (n <= FNN_NARROW_N, a classifier's 10 outputs)
 * over a long reduction.  A register tile would be n / NR full (7 of 32 lanes), so each
 * output is a dot product instead: A's rows read in place along k against the columns
 * of op(B), which are read in place too when they are contiguous (a transposed weight)
 * and otherwise copied once.
 * ---------------------------------------------------------------------------------- */
#define FNN_NARROW_N 16
/* What one dot product costs beyond its k / LANES vector steps (summing its lanes, the
 * scalar tail of k, the store), in vector steps: a prior.  The packed path computes n
 * rounded up to its tile width (NR) per k step, so dot products pay where
 * k / LANES * (padded - n) >= FNN_NARROW_COST * n.  Paired A/B on an Intel Xeon @
 * 2.80GHz (two threads, time dot products / packed): 1024 x 7 x 1024 0.52, 64 x 10 x 300
 * 0.44, 1024 x 10 x 128 0.87, 1024 x 16 x 256 0.84; 1024 x 16 x 128 1.52, 1024 x 10 x 100
 * 1.35, 4096 x 16 x 64 1.83 (the rule sends the last three to the packed path). */
#define FNN_NARROW_COST 16
/* Rows and columns of result per tile of dot products: 4 x 4 sums, 8 vector loads per
 * 16 multiply-adds. */
#define FNN_NARROW_ROWS 4
#define FNN_NARROW_COLS 4

/* beta * C and the epilogue on the part [m0, m1) x [n0, n1) of out, after a path that
 * wrote the bare product there (nothing when it adds a slice of the reduction). */
static FNN_ATTR void FNN_FN(fnn_gemm_part_finish)(const fnn_gemm_args* g, FNN_T* out,
                                                  ptrdiff_t m0, ptrdiff_t m1, ptrdiff_t n0,
                                                  ptrdiff_t n1) {
    if (g->accumulate) return;
    if (g->c != NULL && g->beta != 0) {
        const FNN_T beta = (FNN_T)g->beta;
        const FNN_T* c = (const FNN_T*)g->c;
        for (ptrdiff_t i = m0; i < m1; ++i)
            for (ptrdiff_t j = n0; j < n1; ++j) out[i * g->ldo + j] += beta * c[i * g->c_rs + j * g->c_cs];
    }
    if (g->epi.derivative || g->epi.act != FNN_ACT_IDENTITY || g->epi.bias != NULL)
        FNN_FN(fnn_epilogue_block)(&g->epi, out, g->ldo, m0, n0, m1 - m0, n1 - n0);
}

/* The sum of v's lanes: halves added down to 16 bytes, then those lanes in order. */
static FNN_ATTR inline FNN_T FNN_FN(fnn_lane_sum)(FNN_FN(fnn_vec_t) v) {
    typedef FNN_T half32 __attribute__((vector_size(32)));
    typedef FNN_T half16 __attribute__((vector_size(16)));
    half32 s32;
#if FNN_VBYTES == 64
    half32 lo, hi;
    __builtin_memcpy(&lo, &v, 32);
    __builtin_memcpy(&hi, (const char*)&v + 32, 32);
    s32 = lo + hi;
#else
    __builtin_memcpy(&s32, &v, 32);
#endif
    half16 a, b;
    __builtin_memcpy(&a, &s32, 16);
    __builtin_memcpy(&b, (const char*)&s32 + 16, 16);
    a += b;
    FNN_T sum = 0;
    for (size_t l = 0; l < 16 / sizeof(FNN_T); ++l) sum += a[l];
    return sum;
}

/* out[ROW0 + q, COL0 + c] (+)= alpha * dot(A row, column of op(B)) for q < ROWS,
 * c < COLS: vectors along k in registers, then each summed across its lanes. */
#define FNN_NARROW_TILE(ROWS, COLS)                                                        \
    do {                                                                                  \
        V acc[ROWS][COLS];                                                                \
        _Pragma("GCC unroll 4") for (int q = 0; q < (ROWS); ++q)                          \
            _Pragma("GCC unroll 4") for (int c = 0; c < (COLS); ++c) acc[q][c] = (V){0};  \
        for (ptrdiff_t p = 0; p < kv; p += FNN_LANES) {                                   \
            V av[ROWS], bv[COLS];                                                         \
            _Pragma("GCC unroll 4") for (int q = 0; q < (ROWS); ++q)                      \
                __builtin_memcpy(&av[q], arow + q * g->a_rs + p, sizeof(V));              \
            _Pragma("GCC unroll 4") for (int c = 0; c < (COLS); ++c)                      \
                __builtin_memcpy(&bv[c], bcol + c * bts + p, sizeof(V));                  \
            _Pragma("GCC unroll 4") for (int q = 0; q < (ROWS); ++q)                      \
                _Pragma("GCC unroll 4") for (int c = 0; c < (COLS); ++c)                  \
                    acc[q][c] += av[q] * bv[c];                                           \
        }                                                                                 \
        for (int q = 0; q < (ROWS); ++q) {                                                \
            for (int c = 0; c < (COLS); ++c) {                                            \
                FNN_T sum = FNN_FN(fnn_lane_sum)(acc[q][c]);                              \
                for (ptrdiff_t p = kv; p < k; ++p)                                        \
                    sum += arow[q * g->a_rs + p] * bcol[c * bts + p];                     \
                FNN_T* o = out + (i + q) * g->ldo + n0 + j + c;                           \
                *o = g->accumulate ? *o + alpha * sum : alpha * sum;                      \
            }                                                                             \
        }                                                                                 \
    } while (0)

/* Columns [j, j + cols) (cols <= FNN_NARROW_COLS) of the narrow tile at rows [i, i +
 * rows) (rows is FNN_NARROW_ROWS or 1), with the tile's shape fixed at compile time. */
#define FNN_NARROW_COLS_CASES(ROWS)                                                        \
    switch (cols) {                                                                       \
    case 1: FNN_NARROW_TILE(ROWS, 1); break;                                              \
    case 2: FNN_NARROW_TILE(ROWS, 2); break;                                              \
    case 3: FNN_NARROW_TILE(ROWS, 3); break;                                              \
    default: FNN_NARROW_TILE(ROWS, 4); break;                                             \
    }

/* The part [m0, m1) x [n0, n1) of a narrow product (n1 - n0 <= FNN_NARROW_N) whose A
 * rows have unit stride along k.  Then beta * C and the epilogue on the part.  Returns
 * 0, or -1 when the copy of op(B)'s columns cannot be allocated. */
static FNN_ATTR int FNN_FN(fnn_gemm_narrow)(const fnn_gemm_args* g, ptrdiff_t m0,
                                            ptrdiff_t m1, ptrdiff_t n0, ptrdiff_t n1) {
    typedef FNN_FN(fnn_vec_t) V;
    const FNN_T* a = (const FNN_T*)g->a;
    const FNN_T* b = (const FNN_T*)g->b;
    FNN_T* out = (FNN_T*)g->out;
    const FNN_T alpha = (FNN_T)g->alpha;
    const ptrdiff_t k = g->k, nc = n1 - n0, kv = k / FNN_LANES * FNN_LANES;
    /* column j of op(B), j < nc: bt + j * bts, unit stride along k */
    const FNN_T* bt = b + n0 * g->b_cs;
    ptrdiff_t bts = g->b_cs;
    FNN_T* copy = NULL;
    if (g->b_rs != 1) {
        copy = (FNN_T*)malloc((size_t)(nc * k) * sizeof(FNN_T));
        if (copy == NULL) return -1;
        for (ptrdiff_t p = 0; p < k; ++p)
            for (ptrdiff_t j = 0; j < nc; ++j) copy[j * k + p] = b[p * g->b_rs + (n0 + j) * g->b_cs];
        bt = copy;
        bts = k;
    }
    for (ptrdiff_t i = m0; i < m1;) {
        const ptrdiff_t rows = m1 - i >= FNN_NARROW_ROWS ? FNN_NARROW_ROWS : 1;
        const FNN_T* arow = a + i * g->a_rs;
        for (ptrdiff_t j = 0; j < nc; j += FNN_NARROW_COLS) {
            const ptrdiff_t cols = nc - j < FNN_NARROW_COLS ? nc - j : FNN_NARROW_COLS;
            const FNN_T* bcol = bt + j * bts;
            if (rows == FNN_NARROW_ROWS) {
                FNN_NARROW_COLS_CASES(FNN_NARROW_ROWS)
            } else {
                FNN_NARROW_COLS_CASES(1)
            }
        }
        i += rows;
    }
    free(copy);
    FNN_FN(fnn_gemm_part_finish)(g, out, m0, m1, n0, n1);
    return 0;
}
#undef FNN_NARROW_TILE
#undef FNN_NARROW_COLS_CASES
#undef FNN_NARROW_ROWS
#undef FNN_NARROW_COLS

/* ------------------------------------------------------------------------------------
 * Narrow products whose op(A) is transposed (A read as a.T: unit stride down op(A)'s
 * columns), the layout of a weight gradient x.T @ gy with few outputs.  Dot products
 * would read op(A)'s rows a stride apart; so the vectors run down the columns instead:
 * each step p of the reduction loads NVEC vectors of rows of op(A) (one memory row of
 * a) and multiplies them by COLS broadcast values of op(B)'s row p, the sums staying in
 * registers over the whole reduction, then going out through a small transpose.  No
 * lane is wasted whatever n is, where the packed tiles (16-48 columns wide) fill 7 of 32
 * (1024 x 7 x 1024 TN: packed 525 us, SciPy's BLAS 482, numpy's 324, on the AMD EPYC).
 * How wide a product runs so is measured per CPU (fnn_gemm_narrow_t_n, gemm_blocked.h).
 * ---------------------------------------------------------------------------------- */
/* Columns per tile, and vectors of rows: 24 sums with AVX-512's 32 registers, 8 with
 * the 16 of AVX2. */
#define FNN_NARROW_T_COLS 8
#if FNN_VBYTES == 64
#define FNN_NARROW_T_NVEC 3
#else
#define FNN_NARROW_T_NVEC 1
#endif

/* out[i + r, n0 + j + c] (+)= alpha * sum_p op(A)[i + r, p] * op(B)[p, n0 + j + c] for
 * first <= r < NVEC * FNN_LANES, c < COLS. */
#define FNN_NARROW_T_TILE(COLS, NVEC)                                                      \
    do {                                                                                  \
        V acc[COLS][NVEC];                                                                \
        _Pragma("GCC unroll 8") for (int c = 0; c < (COLS); ++c)                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < (NVEC); ++v) acc[c][v] = (V){0};  \
        const FNN_T* ap = a + i;                                                          \
        const FNN_T* bp = b + (n0 + j) * g->b_cs;                                         \
        for (ptrdiff_t p = 0; p < k; ++p, ap += g->a_cs, bp += g->b_rs) {                 \
            V av[NVEC];                                                                   \
            _Pragma("GCC unroll 4") for (int v = 0; v < (NVEC); ++v)                      \
                __builtin_memcpy(&av[v], ap + v * FNN_LANES, sizeof(V));                  \
            _Pragma("GCC unroll 8") for (int c = 0; c < (COLS); ++c) {                    \
                const FNN_T bs = bp[c * g->b_cs];                                         \
                _Pragma("GCC unroll 4") for (int v = 0; v < (NVEC); ++v)                  \
                    acc[c][v] += av[v] * bs;                                              \
            }                                                                             \
        }                                                                                 \
        FNN_T tmp[COLS][(NVEC) * FNN_LANES];                                              \
        _Pragma("GCC unroll 8") for (int c = 0; c < (COLS); ++c)                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < (NVEC); ++v)                      \
                __builtin_memcpy(&tmp[c][v * FNN_LANES], &acc[c][v], sizeof(V));          \
        for (ptrdiff_t r = first; r < (NVEC) * FNN_LANES; ++r) {                          \
            FNN_T* o = out + (i + r) * g->ldo + n0 + j;                                   \
            for (int c = 0; c < (COLS); ++c)                                              \
                o[c] = g->accumulate ? o[c] + alpha * tmp[c][r] : alpha * tmp[c][r];      \
        }                                                                                 \
    } while (0)

#define FNN_NARROW_T_CASES(NVEC)                                                           \
    switch (cols) {                                                                       \
    case 1: FNN_NARROW_T_TILE(1, NVEC); break;                                            \
    case 2: FNN_NARROW_T_TILE(2, NVEC); break;                                            \
    case 3: FNN_NARROW_T_TILE(3, NVEC); break;                                            \
    case 4: FNN_NARROW_T_TILE(4, NVEC); break;                                            \
    case 5: FNN_NARROW_T_TILE(5, NVEC); break;                                            \
    case 6: FNN_NARROW_T_TILE(6, NVEC); break;                                            \
    case 7: FNN_NARROW_T_TILE(7, NVEC); break;                                            \
    default: FNN_NARROW_T_TILE(8, NVEC); break;                                           \
    }

/* The part [m0, m1) x [n0, n1) (m1 - m0 >= FNN_LANES) of a narrow product whose op(A)
 * has unit stride down its columns; then beta * C and the epilogue on the part. */
static FNN_ATTR int FNN_FN(fnn_gemm_narrow_t)(const fnn_gemm_args* g, ptrdiff_t m0,
                                              ptrdiff_t m1, ptrdiff_t n0, ptrdiff_t n1) {
    typedef FNN_FN(fnn_vec_t) V;
    const FNN_T* a = (const FNN_T*)g->a;
    const FNN_T* b = (const FNN_T*)g->b;
    FNN_T* out = (FNN_T*)g->out;
    const FNN_T alpha = (FNN_T)g->alpha;
    const ptrdiff_t k = g->k, nc = n1 - n0;
    const ptrdiff_t wide = FNN_NARROW_T_NVEC * FNN_LANES;
    ptrdiff_t i = m0, first = 0;
    while (i < m1) {
        const int full = i + wide <= m1;
        if (!full && i + FNN_LANES > m1) { /* the last rows, fewer than a vector: the */
            first = i - (m1 - FNN_LANES);  /* vector ending at m1, those rows stored */
            i = m1 - FNN_LANES;
        }
        for (ptrdiff_t j = 0; j < nc; j += FNN_NARROW_T_COLS) {
            const ptrdiff_t cols = nc - j < FNN_NARROW_T_COLS ? nc - j : FNN_NARROW_T_COLS;
            if (full) {
                FNN_NARROW_T_CASES(FNN_NARROW_T_NVEC)
            } else {
                FNN_NARROW_T_CASES(1)
            }
        }
        i += full ? wide : FNN_LANES;
    }
    FNN_FN(fnn_gemm_part_finish)(g, out, m0, m1, n0, n1);
    return 0;
}
#undef FNN_NARROW_T_CASES
#undef FNN_NARROW_T_TILE
#undef FNN_NARROW_T_NVEC
#undef FNN_NARROW_T_COLS

/* The part [m0, m1) x [n0, n1) on the path for its shape: unpacked for a short
 * reduction, the thin path for one row or column of result, dot products for a few
 * columns (or column tiles where op(A) is transposed), B in place for a few rows over
 * contiguous B rows, else packed tiles. */
static FNN_ATTR int FNN_FN(fnn_gemm_path)(const fnn_gemm_args* g, ptrdiff_t m0, ptrdiff_t m1,
                                          ptrdiff_t n0, ptrdiff_t n1) {
    if (g->k <= fnn_gemm_short_k) return FNN_FN(fnn_gemm_short)(g, m0, m1, n0, n1);
    if (g->m == 1 || g->n == 1) return FNN_FN(fnn_gemm_thin)(g, m0, m1, n0, n1);
    if (g->n <= FNN_NARROW_N && g->a_cs == 1 &&
        g->k / FNN_LANES * ((g->n + FNN_NR - 1) / FNN_NR * FNN_NR - g->n) >= FNN_NARROW_COST * g->n)
        return FNN_FN(fnn_gemm_narrow)(g, m0, m1, n0, n1);
    if (g->n <= fnn_gemm_narrow_t_n && g->a_rs == 1 && g->a_cs != 1 &&
        m1 - m0 >= FNN_LANES)
        return FNN_FN(fnn_gemm_narrow_t)(g, m0, m1, n0, n1);
    /* One or two row tiles read B in place while it fits the last-level cache (or its
     * rows share pages).  A larger B comes from memory, where the strips' short runs of
     * each row defeat the prefetchers, and packing reads it a panel group at a time (two
     * threads, Intel Xeon @ 2.80GHz, 48 MiB L3, time packed / in place: 8 x 25088 x 4096
     * 0.81, 8 x 4096 x 4096 0.79; B of 4-8 MiB 1.26-1.44).  Within the cache, rows a page
     * or more apart cost the second tile a TLB hit per row of the strip it re-reads from
     * L2, which the prefetch ahead has made cheaper than packing (same Xeon, time in place
     * / packed: 10 x 4096 x 256 TN 0.92, 12 x 4096 x 256 0.83, 14 x 1024 x 1024 TN 0.85,
     * 16 x 1536 x 768 0.84; 16 x 4096 x 256, 16 x 512 x 2048 1.00) */
    const int b_cached = (double)g->k * (double)g->n * (double)sizeof(FNN_T) <= fnn_gemm_llc_bytes;
    const int short_rows = g->b_rs * (ptrdiff_t)sizeof(FNN_T) < 4096;
    if (g->b_cs == 1 && n1 - n0 >= FNN_NR && m1 - m0 <= FNN_FEW_TILES * FNN_MR &&
        (b_cached || short_rows))
        return FNN_FN(fnn_gemm_few)(g, m0, m1, n0, n1);
    return FNN_FN(fnn_gemm_part)(g, m0, m1, n0, n1);
}

#include "gemm_mapped_impl.h"

#undef FNN_FEW_TILES
#undef FNN_NARROW_N
#undef FNN_NARROW_COST
#undef FNN_SHORT_ROWS
#undef FNN_SHORT_NV
#undef FNN_FN
#undef FNN_STAGE
#undef FNN_MATH
#undef FNN_LANES
#undef FNN_PANEL_GROUP
#undef FNN_NR
