/* The mapped GEMM: fastnn's blocked GEMM (gemm_blocked.h) on operands that are not
 * matrices with two strides, but whose columns and reduction steps are found through
 * index maps.  It is what a 1x1 convolution is over a whole batch:
 *
 *   out[i, j] = act(bias[i] + sum_p op(A)[i, p] * op(B)[p, j])   (+ out[i, j] if accumulate)
 *   op(A)[i, p] = a[i * a_rs + a_k(p)]
 *   op(B)[p, j] = b[b_k(p) + b_n(j)]
 *   out[i, j]  at out[i * ldo + o_n(j)]
 *
 * where each map is  off(j) = (j / n1) * s1 + ((j % n1) / n2) * s2 + (j % n2) * s3
 * (n2 divides n1): for a convolution, j = (image, output row, output column), so one
 * GEMM spans every image (a batch of 7x7 maps is 392 columns, not 8 products of 49),
 * reads a strided layer's input in place, and writes straight into NCHW.  The forward
 * pass, the input gradient and the weight gradient of a 1x1 convolution are each one
 * such product (fastnn/_backends/cpu/_conv_pointwise.py).
 *
 * Instantiated per dtype and instruction set next to the plain GEMM (gemm_mapped_impl.h,
 * included by gemm_blocked_impl.h), with its register tile and micro-kernel; the threads
 * split the result into the same grid of rectangles (fnn_gemm_grid).
 */
#ifndef FNN_GEMM_MAPPED_H
#define FNN_GEMM_MAPPED_H

#include <stddef.h>
#include <stdint.h>

/* off(j) = (j / n1) * s1 + ((j % n1) / n2) * s2 + (j % n2) * s3, with n2 dividing n1. */
typedef struct {
    ptrdiff_t n1, n2, s1, s2, s3;
} fnn_index_map;

typedef struct {
    ptrdiff_t m, n, k;
    const void* a;
    ptrdiff_t a_rs;
    fnn_index_map a_k;
    const void* b;
    fnn_index_map b_k, b_n;
    void* out;
    ptrdiff_t ldo;
    fnn_index_map o_n;
    const void* bias;  /* (m,) one per row, or NULL */
    int act;           /* conv_epilogue.h's code, after the bias (0: none) */
    int accumulate;    /* 1: out += product (bias and act still apply to the sum) */
    size_t l2_bytes;   /* the L2 cache per core: sizes the block of packed columns */
} fnn_gemm_mapped_args;

/* Runs here are short (a 7x7 map's 49 columns): gcc must not turn their copy loops into
 * memcpy calls, whose fixed cost exceeds the work. */
#if defined(__GNUC__) && !defined(__clang__)
#define FNN_MAPPED_NOCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define FNN_MAPPED_NOCALLS
#endif

/* The workspace slot (workspace.h) of the packing buffers. */
#define FNN_GEMM_MAPPED_SLOT 6

/* The map j -> j * stride. */
static inline fnn_index_map fnn_map_affine(ptrdiff_t stride) {
    fnn_index_map m = {PTRDIFF_MAX, PTRDIFF_MAX, 0, 0, stride};
    return m;
}

/* The map (n1, n2, s1, s2, s3), with runs that continue each other (s2 = n2 * s3: an
 * image's rows back to back) merged into one run per n1, so that a panel or tile
 * crossing a row end still counts as one unit-stride run. */
static inline fnn_index_map fnn_map_make(ptrdiff_t n1, ptrdiff_t n2, ptrdiff_t s1,
                                         ptrdiff_t s2, ptrdiff_t s3) {
    fnn_index_map m = {n1, n2, s1, s2, s3};
    if (n2 == n1 || s2 == n2 * s3) {
        m.n2 = n1;
        m.s2 = 0;
    }
    return m;
}

static inline ptrdiff_t fnn_map_at(const fnn_index_map* m, ptrdiff_t j) {
    ptrdiff_t r = j % m->n1;
    return j / m->n1 * m->s1 + r / m->n2 * m->s2 + r % m->n2 * m->s3;
}

/* s3 when j .. j + count - 1 lie in one run of n2 (offsets s3 apart), else 0. */
static inline ptrdiff_t fnn_map_run_stride(const fnn_index_map* m, ptrdiff_t j, ptrdiff_t count) {
    return j % m->n2 + count <= m->n2 ? m->s3 : 0;
}

/* off[0..count) = the offsets of j0 .. j0 + count - 1. */
static inline void fnn_map_offsets(const fnn_index_map* m, ptrdiff_t j0, ptrdiff_t count,
                                   ptrdiff_t* off) {
    ptrdiff_t q1 = j0 / m->n1, r1 = j0 % m->n1, q2 = r1 / m->n2, r2 = r1 % m->n2;
    const ptrdiff_t runs = m->n1 / m->n2;
    ptrdiff_t base = q1 * m->s1 + q2 * m->s2;
    for (ptrdiff_t t = 0; t < count; ++t) {
        off[t] = base + r2 * m->s3;
        if (++r2 == m->n2) {
            r2 = 0;
            if (++q2 == runs) {
                q2 = 0;
                base = ++q1 * m->s1;
            } else {
                base += m->s2;
            }
        }
    }
}

/* Runs of columns whose offsets step evenly: column start[r] + t (t < len[r]) is at
 * off[r] + t * step[r].  A panel or tile of columns crossing the end of an image (or of
 * a strided layer's output row) is a few runs, copied run by run instead of element by
 * element. */
typedef struct {
    ptrdiff_t count;
    ptrdiff_t start[64], len[64], off[64], step[64];
} fnn_col_runs;

/* The runs of the offsets off[0..count), count <= 64. */
static inline void fnn_map_runs(const ptrdiff_t* off, ptrdiff_t count, fnn_col_runs* r) {
    r->count = 0;
    for (ptrdiff_t j = 0; j < count;) {
        ptrdiff_t step = j + 1 < count ? off[j + 1] - off[j] : 1, len = 1;
        if (step <= 0) step = 1; /* a lone column */
        else
            while (j + len < count && off[j + len] - off[j + len - 1] == step) ++len;
        r->start[r->count] = j;
        r->len[r->count] = len;
        r->off[r->count] = off[j];
        r->step[r->count] = len == 1 ? 1 : step;
        ++r->count;
        j += len;
    }
}

#endif /* FNN_GEMM_MAPPED_H */
