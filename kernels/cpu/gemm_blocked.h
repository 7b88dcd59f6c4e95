/* fastnn's own GEMM: out = epilogue(alpha * op(A) @ op(B) + beta * C), cache-blocked and
 * packed, float and double, with the instruction set chosen at run time.
 *
 *   fnn_gemm_f32 / fnn_gemm_f64(args, num_threads, variant) -> 0, or -1 out of memory
 *   fnn_epilogue_f32 / _f64(...)   the epilogue alone on a finished matrix (BLAS path)
 *   fnn_gemm_mapped_f32 / _f64(args, num_threads, variant)   operands through index
 *                                  maps (gemm_mapped.h: the 1x1 convolutions)
 *
 * op(A) is m x k and op(B) k x n given as base pointers with element strides (any sign:
 * a transpose is a swap of the two strides); C (optional, read only when beta != 0) has
 * strides too, 0 for a broadcast dimension.  out is row-major with row stride ldo; with
 * `accumulate` set the product is added to what out holds (c, beta and the epilogue are
 * then unused).
 * The epilogue, applied after the last K slice while a tile is in cache, is either
 *   out = act(out + bias)           (bias per column, optional; linear's forward)
 *   out = out * act'(u)             (u the pre-activation; the backprop sensitivity)
 *
 * Variants (gemm_blocked_impl.h instantiated per dtype): generic (portable baseline,
 * 32-byte vectors lowered to whatever the CPU has), avx2 (AVX2 + FMA), avx512
 * (AVX-512F, 64-byte vectors) and wide-generic (the avx512 tile shape compiled for the
 * baseline: lets the tests check that tile shape on a machine without AVX-512).  At
 * AVX-512 there are two register tiles, 2 and 3 vectors wide (avx512-t32, avx512-t48 for
 * float): the avx512 variant takes, per product, the one that the measured speed of
 * each tile and the padding of the last column tile say is faster (fnn_gemm_pick_tile).
 *
 * Paths (gemm_blocked_impl.h, per part of the result): a short reduction (k up to the
 * measured fnn_gemm_short_k) unpacked, each output summed in registers and stored once;
 * one row or one column of result (a matrix-vector product) on the thin path, which
 * reads the matrix once in place; a few columns over a long reduction as dot products
 * (the narrow path); a few rows over B read in place; else packed tiles.
 *
 * Threads: the m x n result is cut into a tm x tn grid of rectangles, one per thread,
 * each computed independently with its own packing buffers (no barriers).  The grid is
 * the one with the smallest per-thread cost, compute plus packing (see fnn_gemm_grid).
 */
#ifndef FNN_GEMM_BLOCKED_H
#define FNN_GEMM_BLOCKED_H

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "activation_simd.h"
#include "conv_epilogue.h"
#include "gemm_mapped.h"
#include "workspace.h"

typedef struct {
    int act;            /* FNN_ACT_* */
    int derivative;     /* 0: out = act(out + bias);  1: out = out * act'(u) */
    const void* bias;   /* (n,) contiguous, one per column; NULL for none */
    const void* u;      /* derivative: (m, n) pre-activations, row stride ldu */
    ptrdiff_t ldu;
} fnn_epilogue;

typedef struct {
    ptrdiff_t m, n, k;
    const void* a;
    ptrdiff_t a_rs, a_cs; /* op(A)[i, p] = a[i * a_rs + p * a_cs] */
    const void* b;
    ptrdiff_t b_rs, b_cs; /* op(B)[p, j] = b[p * b_rs + j * b_cs] */
    const void* c;        /* NULL for none */
    ptrdiff_t c_rs, c_cs;
    double alpha, beta;
    void* out;
    ptrdiff_t ldo;
    fnn_epilogue epi;
    int accumulate;       /* 1: out += alpha * op(A) @ op(B) (c, beta and epi unused) */
} fnn_gemm_args;

enum {
    FNN_GEMM_AUTO = -1,
    FNN_GEMM_GENERIC = 0,
    FNN_GEMM_AVX2 = 1,
    FNN_GEMM_AVX512 = 2, /* the 2-vector tile, or the 3-vector one: fnn_gemm_pick_tile */
    FNN_GEMM_WIDE_GENERIC = 3,
    FNN_GEMM_AVX512_T32 = 4, /* AVX-512 with the 2-vector tile only */
    FNN_GEMM_AVX512_T48 = 5, /* AVX-512 with the 3-vector tile only */
};

/* What the micro-kernel does with its tile (see gemm_blocked_impl.h). */
enum { FNN_TILE_BUFFER = 0, FNN_TILE_SET = 1, FNN_TILE_ADD = 2 };

/* Below this many flops per thread a second thread does not pay for its wake-up.  A
 * prior; fastnn/_backends/cpu/gemm.py sets it from a measurement of this machine's
 * fork-join cost and single-thread GEMM rate (gemm.pyx: set_flops_per_thread). */
static double fnn_gemm_flops_per_thread = (double)(1 << 21);

/* Reductions up to this long run unpacked (fnn_gemm_short): a prior of 1, which
 * gemm.py replaces with the longest k at which the unpacked path measured faster. */
static ptrdiff_t fnn_gemm_short_k = 1;

/* Time per multiply-add of AVX-512's 3-vector tile relative to its 2-vector tile on a
 * large product: a prior of 1 (the wider tile only where it pads less), which gemm.py
 * replaces with this CPU's measurement (gemm.pyx: set_t48_time). */
static double fnn_gemm_t48_time = 1.0;
/* Products whose op(A) has unit stride down its columns (A transposed) and at most this
 * many columns run column tiles (fnn_gemm_narrow_t) instead of packed tiles: a prior of
 * 24 (three tiles of 8 columns, where packed tiles of 16-48 are at most 75% full), which
 * gemm.py replaces with the widest that measured faster on this CPU (gemm_tuning.pxi:
 * set_narrow_t_n; 0 turns the path off). */
static ptrdiff_t fnn_gemm_narrow_t_n = 24;
/* The last-level cache in bytes: a prior, which gemm.py replaces with what the system
 * reports (gemm_tuning.pxi: set_llc_bytes).  A few-row product whose B is larger reads
 * it from memory, and then packs it (fnn_gemm_path). */
static double fnn_gemm_llc_bytes = 32.0 * 1024 * 1024;
/* Bytes of packed B panels that a product of several row blocks runs past each A
 * micro-panel before the next (fnn_gemm_part): a prior of 640 KiB, which gemm.py replaces
 * with half this CPU's L2 (gemm_tuning.pxi: set_b_block_bytes).  The A micro-panel stays
 * in L1 while the panels stream from L2; with every row tile run against one panel
 * instead, a panel of 256 x 48 floats fills the 48 KiB L1 by itself (old order / new
 * order, lscpu "Intel(R) Xeon(R) Processor @ 2.80GHz", one thread: 1024^3 1 / 0.86,
 * 256 x 3136 x 576 1 / 0.82, 1024 x 1024 x 64 1 / 0.74-0.79). */
static double fnn_gemm_b_block_bytes = 640.0 * 1024;
/* How many rows of B ahead a few-row product reading B in place prefetches (0: none;
 * fnn_gemm_few): a prior of 8, which gemm.py replaces with this CPU's measurement
 * (gemm_tuning.pxi: set_few_prefetch). */
static ptrdiff_t fnn_gemm_few_prefetch = 8;
/* Reductions shorter than this keep the 2-vector tile: a short reduction is bound by
 * storing tiles, and the wider tile stores more per step (1024 x 1024 x 7 ran 1.2x
 * slower on it). */
#define FNN_GEMM_T48_MIN_K 32

/* ---- instantiations: tile shapes and cache blocks per dtype and instruction set ---- */
/* Register tiles of 2 vectors by FNN_MR rows: 6 rows (12 accumulators) where there are
 * 16 vector registers; 8 rows (16 accumulators) at AVX-512, which has 32.  Paired A/B
 * of builds loaded side by side in one process (lscpu "Intel(R) Xeon(R) Processor @
 * 2.80GHz", 2 threads, median of 15 alternating rounds), time 8 rows / 6 rows:
 * 1024x64x64 0.85, 64x257x257 0.90, 64x784x300 0.91, 256x1024x1024 0.90, 512x392x2048
 * 0.96, 1024^3 0.97, 7x257x257 0.81, 1024x1024x7 1.06.  12 rows (24 accumulators) gained
 * up to 10% on large products but lost 10-17% to 8 rows wherever the rows are a power
 * of two (64 rows fill 6 tiles of 12: 72).  The row count was chosen on that one CPU;
 * what guards others is the per-CPU measurement of whether AVX-512 runs at all
 * (fastnn._isa, family "gemm").
 * AVX-512 also has a tile of 3 vectors by 8 rows (24 accumulators; per step of the
 * reduction 11 loads feed 24 multiply-adds instead of 10 loads 16): on the same Xeon a
 * lone micro-kernel ran 168-172 GFLOP/s with it against 149 with 2 vectors, and whole
 * products of 1024^3, 128 x 3136 x 576 and 64 x 784 x 300 took 0.88-0.94x the time; but
 * 64 columns fill two 48-wide tiles to 67% (1024 x 64 x 64: 1.28x the time).  Which of
 * the two runs is chosen per product from their speed measured on each CPU
 * (fnn_gemm_pick_tile).  k blocks of 256, m blocks of 144 floats or 72 doubles (the same
 * bytes; multiples of both row counts). */
#define FNN_MR 6
#define FNN_NV 2
#define FNN_GEMM_MR_AVX512 8
#define FNN_GEMM_NV_T48 3
#define FNN_KC 256
#define FNN_GEMM_MC_f32 144
#define FNN_GEMM_MC_f64 72
/* Per variant: the target attribute, bytes per vector and the n block. */
#define FNN_GEMM_ATTR_generic
#define FNN_GEMM_VBYTES_generic 32
#define FNN_GEMM_NC_generic 4080
#define FNN_GEMM_ATTR_wide
#define FNN_GEMM_VBYTES_wide 64
#define FNN_GEMM_NC_wide 4064
#define FNN_GEMM_ATTR_avx2 FNN_TARGET_AVX2
#define FNN_GEMM_VBYTES_avx2 32
#define FNN_GEMM_NC_avx2 4080
#define FNN_GEMM_ATTR_avx512 FNN_TARGET_AVX512
#define FNN_GEMM_VBYTES_avx512 64
#define FNN_GEMM_NC_avx512 4064
#define FNN_GEMM_ATTR_avx512t48 FNN_TARGET_AVX512
#define FNN_GEMM_VBYTES_avx512t48 64
#define FNN_GEMM_NC_avx512t48 4080

#define FNN_GEMM_LEVEL generic
#include "gemm_blocked_types.h"
#define FNN_GEMM_LEVEL wide
#include "gemm_blocked_types.h"
#if FNN_X86
#define FNN_GEMM_LEVEL avx2
#include "gemm_blocked_types.h"
#undef FNN_MR
#define FNN_MR FNN_GEMM_MR_AVX512
#define FNN_GEMM_LEVEL avx512
#include "gemm_blocked_types.h"
#undef FNN_NV
#define FNN_NV FNN_GEMM_NV_T48
#define FNN_GEMM_LEVEL avx512t48
#include "gemm_blocked_types.h"
#endif
#undef FNN_MR
#undef FNN_NV
#undef FNN_KC

/* The variant to run: the requested one if this CPU can, else the best it can.  A
 * forced AVX-512 tile comes back as the variant that runs it (avx512-t32: avx512). */
static int fnn_gemm_variant(int requested) {
    int best = fnn_cpu_has_avx512() ? FNN_GEMM_AVX512
             : fnn_cpu_has_avx2()   ? FNN_GEMM_AVX2
                                    : FNN_GEMM_GENERIC;
    if (requested == FNN_GEMM_GENERIC || requested == FNN_GEMM_WIDE_GENERIC) return requested;
    if (requested == FNN_GEMM_AVX2 && best >= FNN_GEMM_AVX2) return requested;
    if (requested == FNN_GEMM_AVX512_T48 && best == FNN_GEMM_AVX512) return requested;
    return best;
}

/* Tile shape (rows, columns) of a variant. */
static void fnn_gemm_tile(int variant, int is_double, ptrdiff_t* mr, ptrdiff_t* nr) {
    int wide = variant == FNN_GEMM_AVX512 || variant == FNN_GEMM_WIDE_GENERIC ||
               variant == FNN_GEMM_AVX512_T48;
    *mr = variant == FNN_GEMM_AVX512 || variant == FNN_GEMM_AVX512_T48 ? FNN_GEMM_MR_AVX512 : 6;
    *nr = (wide ? 64 : 32) / (is_double ? 8 : 4) *
          (variant == FNN_GEMM_AVX512_T48 ? FNN_GEMM_NV_T48 : 2);
}

/* The AVX-512 tile for a product of n columns and a reduction of k: the 3-vector one
 * where its predicted time, the columns it computes (n rounded up to its width) times its
 * measured time per multiply-add (fnn_gemm_t48_time), beats the 2-vector tile's. */
static int fnn_gemm_pick_tile(ptrdiff_t n, ptrdiff_t k, int is_double) {
    ptrdiff_t narrow = is_double ? 16 : 32, wide = narrow / 2 * FNN_GEMM_NV_T48;
    double w_narrow = (double)((n + narrow - 1) / narrow * narrow);
    double w_wide = (double)((n + wide - 1) / wide * wide);
    if (k < FNN_GEMM_T48_MIN_K) return FNN_GEMM_AVX512;
    return w_wide * fnn_gemm_t48_time < w_narrow ? FNN_GEMM_AVX512_T48 : FNN_GEMM_AVX512;
}

/* Choose the thread grid tm x tn (tm * tn <= threads) that minimises one thread's cost:
 * its rectangle's area (compute) plus its perimeter (packing A rows and B columns),
 * compute weighted by how many multiply-adds a core does per packed element. */
static void fnn_gemm_grid(ptrdiff_t m, ptrdiff_t n, ptrdiff_t mr, ptrdiff_t nr, int threads,
                          int* tm, int* tn) {
    ptrdiff_t row_tiles = (m + mr - 1) / mr, col_tiles = (n + nr - 1) / nr;
    double best = -1.0;
    *tm = *tn = 1;
    for (int r = 1; r <= threads; ++r) {
        int c = threads / r;
        if (r > row_tiles || c > col_tiles) continue;
        double rows = (double)((row_tiles + r - 1) / r * mr);
        double cols = (double)((col_tiles + c - 1) / c * nr);
        double cost = rows * cols / 16.0 + rows + cols;
        if (best < 0 || cost < best) {
            best = cost;
            *tm = r;
            *tn = c;
        }
    }
}

/* What writing one output costs the unpacked short path, in multiply-adds: that path is
 * bound by writing its result, so its work counts k + this per output when the threads
 * are sized (a prior: on an Intel Xeon @ 2.80GHz, two threads took 0.64x the time of one
 * on 257 x 257 x 1, 0.82x on 64 x 257 x 7, 1.01x on 128 x 128 x 1, 2.0x on 64 x 64 x 1). */
#define FNN_GEMM_STORE_COST 8

/* The body of a GEMM entry (g: its arguments, with m, n, k): as many threads as the
 * flops pay for (fnn_gemm_flops_per_thread), at most num_threads, on the tm x tn grid of
 * rectangles fnn_gemm_grid picks, each run by RUN(variant, g, m0, m1, n0, n1) on its own
 * thread.  BY_ROWS (an expression): the parts pack nothing and write their result at
 * memory speed (the short path), so the work counts FNN_GEMM_STORE_COST per output and
 * the grid is one column of row blocks, each thread writing one contiguous stretch of
 * out (a thread writing half of every row streams the stores at ~0.6x the rate:
 * 1024 x 1024 x 1 took 177 us on two threads against 185 on one).  Returns 0, or -1
 * when a part could not allocate its scratch. */
#define FNN_GEMM_ON_GRID(RUN, IS_DOUBLE, BY_ROWS)                                         \
    ptrdiff_t mr, nr;                                                                     \
    int tm, tn, threads, failed = 0;                                                      \
    int pick_tile = variant == FNN_GEMM_AUTO || variant == FNN_GEMM_AVX512;               \
    double flops = 2.0 * (double)g->m * (double)g->n *                                    \
                   ((double)(g->k > 0 ? g->k : 1) + ((BY_ROWS) ? FNN_GEMM_STORE_COST : 0)); \
    if (g->m <= 0 || g->n <= 0) return 0;                                                 \
    variant = fnn_gemm_variant(variant);                                                  \
    if (pick_tile && variant == FNN_GEMM_AVX512)                                          \
        variant = fnn_gemm_pick_tile(g->n, g->k, IS_DOUBLE);                              \
    fnn_gemm_tile(variant, IS_DOUBLE, &mr, &nr);                                          \
    threads = (int)(flops / fnn_gemm_flops_per_thread);                                   \
    threads = threads < 1 ? 1 : (threads > num_threads ? num_threads : threads);          \
    fnn_gemm_grid(g->m, g->n, mr, nr, threads, &tm, &tn);                                 \
    if ((BY_ROWS) && (g->m + mr - 1) / mr >= threads) {                                   \
        tm = threads;                                                                     \
        tn = 1;                                                                           \
    }                                                                                     \
    if (tm * tn == 1) return RUN(variant, g, 0, g->m, 0, g->n);                           \
    _Pragma("omp parallel for schedule(static) num_threads(tm * tn) reduction(|: failed)") \
    for (int part = 0; part < tm * tn; ++part) {                                          \
        int r = part / tn, c = part % tn;                                                 \
        ptrdiff_t row_tiles = (g->m + mr - 1) / mr, col_tiles = (g->n + nr - 1) / nr;     \
        ptrdiff_t m0 = row_tiles * r / tm * mr, m1 = row_tiles * (r + 1) / tm * mr;       \
        ptrdiff_t n0 = col_tiles * c / tn * nr, n1 = col_tiles * (c + 1) / tn * nr;       \
        m1 = m1 < g->m ? m1 : g->m;                                                       \
        n1 = n1 < g->n ? n1 : g->n;                                                       \
        if (m0 < m1 && n0 < n1) failed |= RUN(variant, g, m0, m1, n0, n1) != 0;          \
    }                                                                                     \
    return failed ? -1 : 0;

#if FNN_X86
#define FNN_GEMM_X86_CASES(M)                                                             \
    case FNN_GEMM_AVX2: return fnn_gemm_path_##M##_avx2(g, m0, m1, n0, n1);               \
    case FNN_GEMM_AVX512: return fnn_gemm_path_##M##_avx512(g, m0, m1, n0, n1);           \
    case FNN_GEMM_AVX512_T48: return fnn_gemm_path_##M##_avx512t48(g, m0, m1, n0, n1);
#define FNN_EPI_X86_CASES(M)                                                              \
    case FNN_GEMM_AVX2: fnn_epilogue_block_##M##_avx2(e, out, ldo, i0, 0, rows, n); return; \
    case FNN_GEMM_AVX512: fnn_epilogue_block_##M##_avx512(e, out, ldo, i0, 0, rows, n); return;
#else
#define FNN_GEMM_X86_CASES(M)
#define FNN_EPI_X86_CASES(M)
#endif

#ifndef FNN_GEMM_SPLIT_K
#define FNN_GEMM_SPLIT_K 1
#endif
/* A one-row product (m = 1: a row vector times B, B's rows contiguous) splits its
 * reduction between threads, each summing whole rows of B into a row of its own, when
 * splitting its columns would leave each thread less than a page of every row: each
 * thread then streams one contiguous stretch of B instead of part-page runs 4 KiB apart,
 * which the prefetchers follow less well (1 x 1024 x 1024 NN, two threads, AMD EPYC: see
 * the commit).  Rows of sums per thread cost n elements each, added up at the end. */
#define FNN_GEMM_SPLIT_K_BYTES 4096

static int fnn_gemm_split_k_threads(const fnn_gemm_args* g, int num_threads, size_t size) {
    if (!FNN_GEMM_SPLIT_K || g->m != 1 || g->n < 2 || g->b_cs != 1 || g->k <= fnn_gemm_short_k)
        return 1;
    int threads = (int)(2.0 * (double)g->n * (double)g->k / fnn_gemm_flops_per_thread);
    threads = threads < 1 ? 1 : (threads > num_threads ? num_threads : threads);
    if (threads < 2 || g->k < 8 * (ptrdiff_t)threads ||
        g->n * (ptrdiff_t)size >= FNN_GEMM_SPLIT_K_BYTES * (ptrdiff_t)threads)
        return 1;
    return threads;
}

/* fnn_gemm_<M>(args, num_threads, variant) and fnn_epilogue_<M>(...) for one dtype. */
#define FNN_DEFINE_GEMM(T, M, IS_DOUBLE)                                                  \
    static int fnn_gemm_run_##M(int variant, const fnn_gemm_args* g, ptrdiff_t m0,        \
                                ptrdiff_t m1, ptrdiff_t n0, ptrdiff_t n1) {               \
        switch (variant) {                                                                \
        FNN_GEMM_X86_CASES(M)                                                             \
        case FNN_GEMM_WIDE_GENERIC: return fnn_gemm_path_##M##_wide(g, m0, m1, n0, n1);   \
        default: return fnn_gemm_path_##M##_generic(g, m0, m1, n0, n1);                   \
        }                                                                                 \
    }                                                                                     \
                                                                                          \
    static void fnn_epilogue_rows_##M(int variant, const fnn_epilogue* e, T* out,         \
                                      ptrdiff_t ldo, ptrdiff_t i0, ptrdiff_t rows,        \
                                      ptrdiff_t n) {                                      \
        switch (variant) {                                                                \
        FNN_EPI_X86_CASES(M)                                                              \
        default: fnn_epilogue_block_##M##_generic(e, out, ldo, i0, 0, rows, n);           \
        }                                                                                 \
    }                                                                                     \
                                                                                          \
    /* The one-row product on `threads` threads, each summing a stretch of the reduction \
     * into its own row of sums (fnn_gemm_split_k_threads), then the rows added in order, \
     * beta * C and the epilogue (or, accumulating, the sum added to out). */           \
    static int fnn_gemm_split_k_##M(int variant, const fnn_gemm_args* g, int threads) {   \
        const ptrdiff_t n = g->n, k = g->k;                                               \
        const T* a = (const T*)g->a;                                                      \
        const T* b = (const T*)g->b;                                                      \
        T* out = (T*)g->out;                                                              \
        T* rows = (T*)malloc((size_t)threads * (size_t)n * sizeof(T));                    \
        int failed = 0;                                                                   \
        if (rows == NULL) return -1;                                                      \
        _Pragma("omp parallel for schedule(static) num_threads(threads) reduction(|: failed)") \
        for (int part = 0; part < threads; ++part) {                                      \
            const ptrdiff_t p0 = k * part / threads, p1 = k * (part + 1) / threads;       \
            fnn_gemm_args sub = *g;                                                       \
            sub.k = p1 - p0;                                                              \
            sub.a = a + p0 * g->a_cs;                                                     \
            sub.b = b + p0 * g->b_rs;                                                     \
            sub.c = NULL;                                                                 \
            sub.beta = 0;                                                                 \
            sub.out = rows + part * n;                                                    \
            sub.ldo = n;                                                                  \
            sub.accumulate = 0;                                                           \
            memset(&sub.epi, 0, sizeof(sub.epi));                                         \
            sub.epi.act = FNN_ACT_IDENTITY;                                               \
            failed |= fnn_gemm_run_##M(variant, &sub, 0, 1, 0, n) != 0;                   \
        }                                                                                 \
        if (!failed) {                                                                    \
            for (ptrdiff_t j = 0; j < n; ++j) {                                           \
                T sum = rows[j];                                                          \
                for (int part = 1; part < threads; ++part) sum += rows[part * n + j];     \
                out[j] = g->accumulate ? out[j] + sum : sum;                              \
            }                                                                             \
        }                                                                                 \
        free(rows);                                                                       \
        if (failed) return -1;                                                            \
        if (g->accumulate) return 0;                                                      \
        if (g->c != NULL && g->beta != 0) {                                               \
            const T beta = (T)g->beta;                                                    \
            const T* c = (const T*)g->c;                                                  \
            for (ptrdiff_t j = 0; j < n; ++j) out[j] += beta * c[j * g->c_cs];            \
        }                                                                                 \
        if (g->epi.derivative || g->epi.act != FNN_ACT_IDENTITY || g->epi.bias != NULL)   \
            fnn_epilogue_rows_##M(variant, &g->epi, out, g->ldo, 0, 1, n);                \
        return 0;                                                                         \
    }                                                                                     \
                                                                                          \
    static int fnn_gemm_##M(const fnn_gemm_args* g, int num_threads, int variant) {      \
        int split = fnn_gemm_split_k_threads(g, num_threads, sizeof(T));                  \
        if (split > 1) return fnn_gemm_split_k_##M(fnn_gemm_variant(variant), g, split);  \
        FNN_GEMM_ON_GRID(fnn_gemm_run_##M, IS_DOUBLE, g->k <= fnn_gemm_short_k)            \
    }                                                                                     \
                                                                                          \
    static void fnn_epilogue_##M(const fnn_epilogue* e, T* out, ptrdiff_t m, ptrdiff_t n, \
                                 ptrdiff_t ldo, int num_threads) {                        \
        int variant = fnn_gemm_variant(FNN_GEMM_AUTO);                                    \
        ptrdiff_t per_thread = (1 << 15) / (n > 0 ? n : 1) + 1;                           \
        int threads = (int)(m / per_thread);                                              \
        threads = threads < 1 ? 1 : (threads > num_threads ? num_threads : threads);      \
        if (m <= 0 || n <= 0) return;                                                     \
        if (threads == 1) {                                                               \
            fnn_epilogue_rows_##M(variant, e, out, ldo, 0, m, n);                         \
            return;                                                                       \
        }                                                                                 \
        _Pragma("omp parallel for schedule(static) num_threads(threads)")                 \
        for (int part = 0; part < threads; ++part) {                                      \
            ptrdiff_t r0 = m * part / threads, r1 = m * (part + 1) / threads;             \
            fnn_epilogue_rows_##M(variant, e, out, ldo, r0, r1 - r0, n);                  \
        }                                                                                 \
    }

FNN_DEFINE_GEMM(float, f32, 0)
FNN_DEFINE_GEMM(double, f64, 1)

#if FNN_X86
#define FNN_GEMM_MAPPED_X86_CASES(M)                                                      \
    case FNN_GEMM_AVX2: return fnn_gemm_mapped_part_##M##_avx2(g, m0, m1, n0, n1);        \
    case FNN_GEMM_AVX512: return fnn_gemm_mapped_part_##M##_avx512(g, m0, m1, n0, n1);   \
    case FNN_GEMM_AVX512_T48:                                                             \
        return fnn_gemm_mapped_part_##M##_avx512t48(g, m0, m1, n0, n1);
#else
#define FNN_GEMM_MAPPED_X86_CASES(M)
#endif

/* fnn_gemm_mapped_<M>(args, num_threads, variant): the mapped GEMM (gemm_mapped.h) on the
 * same thread grid as fnn_gemm_<M>; 0, or -1 when scratch could not be allocated. */
#define FNN_DEFINE_GEMM_MAPPED(M, IS_DOUBLE)                                              \
    static int fnn_gemm_mapped_run_##M(int variant, const fnn_gemm_mapped_args* g,        \
                                       ptrdiff_t m0, ptrdiff_t m1, ptrdiff_t n0,          \
                                       ptrdiff_t n1) {                                    \
        switch (variant) {                                                                \
        FNN_GEMM_MAPPED_X86_CASES(M)                                                      \
        case FNN_GEMM_WIDE_GENERIC: return fnn_gemm_mapped_part_##M##_wide(g, m0, m1, n0, n1); \
        default: return fnn_gemm_mapped_part_##M##_generic(g, m0, m1, n0, n1);           \
        }                                                                                 \
    }                                                                                     \
                                                                                          \
    static int fnn_gemm_mapped_##M(const fnn_gemm_mapped_args* g, int num_threads,       \
                                   int variant) {                                         \
        FNN_GEMM_ON_GRID(fnn_gemm_mapped_run_##M, IS_DOUBLE, 0)                           \
    }

FNN_DEFINE_GEMM_MAPPED(f32, 0)
FNN_DEFINE_GEMM_MAPPED(f64, 1)

#endif /* FNN_GEMM_BLOCKED_H */
