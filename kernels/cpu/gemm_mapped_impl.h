/* One instantiation of the mapped GEMM (gemm_mapped.h): included at the end of
 * gemm_blocked_impl.h, with its macros (FNN_T, FNN_FN, FNN_MR, FNN_NR, FNN_KC, FNN_MC,
 * FNN_ATTR) still defined, so that it runs the same packed micro-kernel.
 *
 * The loops are Goto's (see gemm_blocked_impl.h): for each block of columns and each
 * slice of the reduction, B is packed into NR-column panels; for each block of rows, A
 * into MR-row panels; the micro-kernel multiplies a pair into a tile.  What differs is
 * where the operands live: a column (or a step of the reduction) is found through an
 * index map, so a panel may gather its columns from several images, and a tile whose
 * columns cross an image's end is scattered through a stack copy.  The epilogue adds a
 * bias per row (a convolution's output channel) and applies conv_epilogue.h's
 * activation.
 */

/* A's MR-row panels of rows [0, mc) (row stride rs) for the reduction steps at offsets
 * koff[0..kc), zero rows past mc. */
static FNN_ATTR FNN_STAGE void FNN_FN(fnn_mapped_pack_a)(ptrdiff_t mc, ptrdiff_t kc,
                                                         const FNN_T* a, ptrdiff_t rs,
                                                         const ptrdiff_t* restrict koff,
                                                         FNN_T* restrict dst) {
    for (ptrdiff_t ir = 0; ir < mc; ir += FNN_MR, dst += kc * FNN_MR) {
        const FNN_T* src = a + ir * rs;
        ptrdiff_t mr = mc - ir < FNN_MR ? mc - ir : FNN_MR;
        if (mr == FNN_MR && rs == 1) {
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t i = 0; i < FNN_MR; ++i) dst[k * FNN_MR + i] = src[koff[k] + i];
        } else if (mr == FNN_MR) {
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t i = 0; i < FNN_MR; ++i)
                    dst[k * FNN_MR + i] = src[i * rs + koff[k]];
        } else {
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t i = 0; i < FNN_MR; ++i)
                    dst[k * FNN_MR + i] = i < mr ? src[i * rs + koff[k]] : (FNN_T)0;
        }
    }
}

/* dst[k * NR + t] = src[koff[k] + t] for k < kc, t < len (len <= NR): whole vectors,
 * the last one shifted back to end at len (it overlaps the one before: the same values
 * written twice); scalars only for a run shorter than a vector. */
static FNN_ATTR inline void FNN_FN(fnn_mapped_copy_run)(ptrdiff_t kc, ptrdiff_t len,
                                                        const FNN_T* src,
                                                        const ptrdiff_t* restrict koff,
                                                        FNN_T* restrict dst) {
    if (len < FNN_LANES) {
        for (ptrdiff_t k = 0; k < kc; ++k)
            for (ptrdiff_t t = 0; t < len; ++t) dst[k * FNN_NR + t] = src[koff[k] + t];
        return;
    }
    const ptrdiff_t vecs = (len + FNN_LANES - 1) / FNN_LANES;
    for (ptrdiff_t k = 0; k < kc; ++k)
        for (ptrdiff_t v = 0; v < vecs; ++v) {
            ptrdiff_t at = v * FNN_LANES < len - FNN_LANES ? v * FNN_LANES : len - FNN_LANES;
            FNN_FN(fnn_vec_t) x;
            __builtin_memcpy(&x, src + koff[k] + at, sizeof x);
            __builtin_memcpy(dst + k * FNN_NR + at, &x, sizeof x);
        }
}

/* A panel of nr columns `cs` apart (cs > 2, from src) whose reduction steps lie in
 * unit-stride runs (a weight gradient's positions: the reduction runs along the rows of
 * the input): each run of at least a vector is transposed into the panel through
 * registers, shorter runs element by element. */
static FNN_ATTR void FNN_FN(fnn_mapped_pack_columns)(ptrdiff_t kc, ptrdiff_t nr,
                                                     const FNN_T* src, ptrdiff_t cs,
                                                     const ptrdiff_t* restrict koff,
                                                     FNN_T* restrict dst) {
    for (ptrdiff_t k = 0; k < kc;) {
        ptrdiff_t len = 1;
        while (k + len < kc && koff[k + len] == koff[k] + len) ++len;
        if (len >= FNN_LANES) {
            FNN_FN(fnn_transpose)(src + koff[k], cs, nr, len, dst + k * FNN_NR, FNN_NR);
        } else {
            for (ptrdiff_t t = k; t < k + len; ++t)
                for (ptrdiff_t j = 0; j < nr; ++j) dst[t * FNN_NR + j] = src[koff[t] + j * cs];
        }
        k += len;
    }
}

/* B's NR-column panels of the logical columns [j0, j0 + nc), reduction steps at offsets
 * koff[0..kc); zero columns past nc.  A panel's columns are copied row by row, run by
 * run (fnn_map_runs). */
static FNN_ATTR FNN_STAGE FNN_MAPPED_NOCALLS void FNN_FN(fnn_mapped_pack_b)(ptrdiff_t kc, ptrdiff_t nc,
                                                         ptrdiff_t j0, const FNN_T* b,
                                                         const fnn_index_map* cols,
                                                         const ptrdiff_t* restrict koff,
                                                         FNN_T* restrict dst) {
    ptrdiff_t coff[FNN_NR];
    fnn_col_runs runs;
    for (ptrdiff_t jr = 0; jr < nc; jr += FNN_NR, dst += kc * FNN_NR) {
        ptrdiff_t nr = nc - jr < FNN_NR ? nc - jr : FNN_NR;
        ptrdiff_t step = nr == FNN_NR ? fnn_map_run_stride(cols, j0 + jr, FNN_NR) : 0;
        if (step == 1 || step == 2) {
            const FNN_T* src = b + fnn_map_at(cols, j0 + jr);
            if (step == 1) {
                for (ptrdiff_t k = 0; k < kc; ++k)
                    for (ptrdiff_t j = 0; j < FNN_NR; ++j)
                        dst[k * FNN_NR + j] = src[koff[k] + j];
            } else {
                for (ptrdiff_t k = 0; k < kc; ++k)
                    for (ptrdiff_t j = 0; j < FNN_NR; ++j)
                        dst[k * FNN_NR + j] = src[koff[k] + 2 * j];
            }
            continue;
        }
        step = fnn_map_run_stride(cols, j0 + jr, nr);
        if (step > 2 && nr >= FNN_LANES) {
            FNN_FN(fnn_mapped_pack_columns)(kc, nr, b + fnn_map_at(cols, j0 + jr), step, koff,
                                            dst);
            if (nr < FNN_NR)
                for (ptrdiff_t k = 0; k < kc; ++k)
                    for (ptrdiff_t j = nr; j < FNN_NR; ++j) dst[k * FNN_NR + j] = (FNN_T)0;
            continue;
        }
        fnn_map_offsets(cols, j0 + jr, nr, coff);
        fnn_map_runs(coff, nr, &runs);
        for (ptrdiff_t r = 0; r < runs.count; ++r) {
            FNN_T* restrict d = dst + runs.start[r];
            const FNN_T* src = b + runs.off[r];
            const ptrdiff_t len = runs.len[r], st = runs.step[r];
            if (st == 1) {
                FNN_FN(fnn_mapped_copy_run)(kc, len, src, koff, d);
            } else if (st == 2) {
                for (ptrdiff_t k = 0; k < kc; ++k)
                    for (ptrdiff_t t = 0; t < len; ++t) d[k * FNN_NR + t] = src[koff[k] + 2 * t];
            } else {
                for (ptrdiff_t k = 0; k < kc; ++k)
                    for (ptrdiff_t t = 0; t < len; ++t) d[k * FNN_NR + t] = src[koff[k] + t * st];
            }
        }
        if (nr < FNN_NR)
            for (ptrdiff_t k = 0; k < kc; ++k)
                for (ptrdiff_t j = nr; j < FNN_NR; ++j) dst[k * FNN_NR + j] = (FNN_T)0;
    }
}

/* Rows [i0, i0 + mr) of the tile into out at the columns `runs` describes, added to
 * what out holds unless `first`; on the last slice the row's bias is added and the
 * activation applied. */
static FNN_ATTR FNN_STAGE FNN_MAPPED_NOCALLS void FNN_FN(fnn_mapped_store)(const fnn_gemm_mapped_args* g,
                                                        const FNN_T* restrict tile,
                                                        ptrdiff_t i0, ptrdiff_t mr,
                                                        const fnn_col_runs* runs, int first,
                                                        int last) {
    FNN_T* out = (FNN_T*)g->out;
    const FNN_T* bias = (const FNN_T*)g->bias;
    const int act = last ? g->act : FNN_CONV_ACT_NONE;
    for (ptrdiff_t i = 0; i < mr; ++i) {
        FNN_T* o = out + (i0 + i) * g->ldo;
        const FNN_T shift = last && bias != NULL ? bias[i0 + i] : (FNN_T)0;
        for (ptrdiff_t r = 0; r < runs->count; ++r) {
            const FNN_T* restrict t = tile + i * FNN_NR + runs->start[r];
            FNN_T* restrict d = o + runs->off[r];
            const ptrdiff_t len = runs->len[r], st = runs->step[r];
            if (st == 1 && len >= FNN_LANES) {
                /* whole vectors, the last shifted back to end at len: every load before
                 * any store, so the overlap is computed from the old values twice */
                FNN_FN(fnn_vec_t) x[FNN_NV + 1];
                const ptrdiff_t vecs = (len + FNN_LANES - 1) / FNN_LANES;
                for (ptrdiff_t v = 0; v < vecs; ++v) {
                    ptrdiff_t at = v * FNN_LANES < len - FNN_LANES ? v * FNN_LANES
                                                                   : len - FNN_LANES;
                    FNN_FN(fnn_vec_t) old = {0};
                    __builtin_memcpy(&x[v], t + at, sizeof x[v]);
                    if (!first) __builtin_memcpy(&old, d + at, sizeof old);
                    x[v] += old + shift;
                    FNN_CONV_ACT_VEC(x[v], act);
                }
                for (ptrdiff_t v = 0; v < vecs; ++v) {
                    ptrdiff_t at = v * FNN_LANES < len - FNN_LANES ? v * FNN_LANES
                                                                   : len - FNN_LANES;
                    __builtin_memcpy(d + at, &x[v], sizeof x[v]);
                }
            } else if (st == 1) {
                for (ptrdiff_t j = 0; j < len; ++j) {
                    FNN_T v = t[j] + shift + (first ? (FNN_T)0 : d[j]);
                    d[j] = FNN_MATH(fnn_conv_act)(act, v);
                }
            } else {
                for (ptrdiff_t j = 0; j < len; ++j) {
                    FNN_T v = t[j] + shift + (first ? (FNN_T)0 : d[j * st]);
                    d[j * st] = FNN_MATH(fnn_conv_act)(act, v);
                }
            }
        }
    }
}

/* The slices of the reduction (equal, at most FNN_KC * 5/4 deep, as in fnn_gemm_part)
 * and the block of packed B columns (half the L2 cache: the A block and the panels in
 * flight take the rest; at least one panel, at most `span` columns) of a product. */
static FNN_ATTR void FNN_FN(fnn_mapped_blocking)(const fnn_gemm_mapped_args* g, ptrdiff_t span,
                                                 ptrdiff_t* k_slices, ptrdiff_t* kc_max,
                                                 ptrdiff_t* nc_max) {
    const ptrdiff_t k = g->k;
    *k_slices = k <= FNN_KC + FNN_KC / 4 ? 1 : (k + FNN_KC - 1) / FNN_KC;
    *kc_max = k > 0 ? (k + *k_slices - 1) / *k_slices : 1;
    ptrdiff_t nc = (ptrdiff_t)(g->l2_bytes / 2 / ((size_t)*kc_max * sizeof(FNN_T)));
    nc = nc / FNN_NR * FNN_NR;
    if (nc < FNN_NR) nc = FNN_NR;
    span = (span + FNN_NR - 1) / FNN_NR * FNN_NR;
    *nc_max = nc < span ? nc : span;
}

/* Rows [m0, m1) x the columns [jc, jc + nc) of one slice [pc, pc + kc) of the
 * reduction (`slice0`: the first, `last`: the last), from the packed B block bp: A packed
 * block by block into ap (a_koff: the slice's offsets into A), then every tile into out.
 * A tile that out cannot take whole (its columns cross an image's end, or a strided
 * output) is run by run on its way to out; with several slices it waits in `stage` (row
 * stride lds, row 0 = row m0, column 0 = column jc) until the last, so that the run by
 * run store happens once, not once per slice (NULL: no stage). */
static FNN_ATTR void FNN_FN(fnn_mapped_block)(const fnn_gemm_mapped_args* g, ptrdiff_t m0,
                                              ptrdiff_t m1, ptrdiff_t jc, ptrdiff_t nc,
                                              ptrdiff_t kc, int slice0, int last,
                                              const FNN_T* bp, FNN_T* ap,
                                              const ptrdiff_t* a_koff, FNN_T* stage,
                                              ptrdiff_t lds) {
    const FNN_T* a = (const FNN_T*)g->a;
    const int first = slice0 && !g->accumulate; /* out's old values not added */
    FNN_T* out = (FNN_T*)g->out;
    const int epilogue = g->bias != NULL || g->act != FNN_CONV_ACT_NONE;
    FNN_T tile[FNN_MR * FNN_NR] __attribute__((aligned(64)));
    ptrdiff_t coff[FNN_NR];
    fnn_col_runs runs;
    for (ptrdiff_t ic = m0; ic < m1; ic += FNN_MC) {
        ptrdiff_t mc = m1 - ic < FNN_MC ? m1 - ic : FNN_MC;
        FNN_FN(fnn_mapped_pack_a)(mc, kc, a + ic * g->a_rs, g->a_rs, a_koff, ap);
        for (ptrdiff_t jr = 0; jr < nc; jr += FNN_NR) {
            ptrdiff_t nr = nc - jr < FNN_NR ? nc - jr : FNN_NR;
            ptrdiff_t j0 = jc + jr;
            const FNN_T* b_panel = bp + jr * kc;
            /* a full run of unit-stride columns: the tile goes straight to out */
            int direct = nr == FNN_NR && fnn_map_run_stride(&g->o_n, j0, FNN_NR) == 1;
            fnn_map_offsets(&g->o_n, j0, nr, coff);
            fnn_map_runs(coff, nr, &runs);
            for (ptrdiff_t ir = 0; ir < mc; ir += FNN_MR) {
                ptrdiff_t mr = mc - ir < FNN_MR ? mc - ir : FNN_MR;
                ptrdiff_t i0 = ic + ir;
                FNN_T* o = out + i0 * g->ldo + coff[0];
                if (direct && mr == FNN_MR && !(last && epilogue)) {
                    FNN_FN(fnn_micro_kernel)(kc, ap + ir * kc, b_panel,
                                             first ? FNN_TILE_SET : FNN_TILE_ADD, (FNN_T)1, o,
                                             g->ldo, o, g->ldo, NULL, NULL, NULL, 0);
                    continue;
                }
                FNN_T* st = stage == NULL || (direct && mr == FNN_MR)
                                ? NULL
                                : stage + (i0 - m0) * lds + jr;
                if (st != NULL && !last) { /* the partial sums wait in the stage */
                    FNN_FN(fnn_micro_kernel)(kc, ap + ir * kc, b_panel,
                                             slice0 ? FNN_TILE_SET : FNN_TILE_ADD, (FNN_T)1,
                                             st, lds, st, lds, NULL, NULL, NULL, 0);
                    continue;
                }
                FNN_FN(fnn_micro_kernel)(kc, ap + ir * kc, b_panel, FNN_TILE_BUFFER, (FNN_T)1,
                                         o, g->ldo, tile, FNN_NR, NULL, NULL, NULL, 0);
                if (st != NULL) { /* the last slice: the staged sums join the tile */
#pragma GCC unroll 16
                    for (int i = 0; i < FNN_MR; ++i)
#pragma GCC unroll 4
                        for (int v = 0; v < FNN_NV; ++v) {
                            FNN_FN(fnn_vec_t) x;
                            __builtin_memcpy(&x, st + i * lds + v * FNN_LANES, sizeof x);
                            *(FNN_FN(fnn_vec_t)*)(tile + i * FNN_NR + v * FNN_LANES) += x;
                        }
                }
                FNN_FN(fnn_mapped_store)(g, tile, i0, mr, &runs, st != NULL ? !g->accumulate
                                                                             : first, last);
            }
        }
    }
}

/* The rows [m0, m1) x logical columns [n0, n1) of the mapped product, on the calling
 * thread with its own packing buffers.  Returns 0, or -1 when its scratch cannot be
 * allocated. */
static FNN_ATTR int FNN_FN(fnn_gemm_mapped_part)(const fnn_gemm_mapped_args* g, ptrdiff_t m0,
                                                 ptrdiff_t m1, ptrdiff_t n0, ptrdiff_t n1) {
    ptrdiff_t k_slices, kc_max, nc_max;
    FNN_FN(fnn_mapped_blocking)(g, n1 - n0, &k_slices, &kc_max, &nc_max);
    size_t a_bytes = ((size_t)(FNN_MC * kc_max) * sizeof(FNN_T) + 63) & ~(size_t)63;
    size_t b_bytes = ((size_t)(kc_max * nc_max) * sizeof(FNN_T) + 63) & ~(size_t)63;
    /* the stage: every row of the part (whole tiles) x one block of columns, rows a
     * cache line longer than the block (rows 4 KiB apart would share L1 sets).  With two
     * slices it saves nothing (a write and a read of the stage for one read of out run
     * by run: the input gradient of 2048 -> 512 at 7x7 measured 1-3% slower with it), so
     * from three on. */
    ptrdiff_t stage_rows = (m1 - m0 + FNN_MR - 1) / FNN_MR * FNN_MR;
    ptrdiff_t lds = nc_max + 64 / (ptrdiff_t)sizeof(FNN_T);
    size_t s_bytes = k_slices > 2 ? (size_t)(stage_rows * lds) * sizeof(FNN_T) : 0;
    size_t k_bytes = (size_t)(2 * kc_max) * sizeof(ptrdiff_t);
    char* buffer =
        (char*)fnn_workspace(FNN_GEMM_MAPPED_SLOT, a_bytes + b_bytes + s_bytes + k_bytes);
    if (buffer == NULL) return -1;
    FNN_T* ap = (FNN_T*)buffer;
    FNN_T* bp = (FNN_T*)(buffer + a_bytes);
    FNN_T* stage = s_bytes > 0 ? (FNN_T*)(buffer + a_bytes + b_bytes) : NULL;
    ptrdiff_t* a_koff = (ptrdiff_t*)(buffer + a_bytes + b_bytes + s_bytes);
    ptrdiff_t* b_koff = a_koff + kc_max;
    for (ptrdiff_t jc = n0; jc < n1; jc += nc_max) {
        ptrdiff_t nc = n1 - jc < nc_max ? n1 - jc : nc_max;
        for (ptrdiff_t slice = 0; slice < k_slices; ++slice) {
            ptrdiff_t pc = g->k * slice / k_slices, kc = g->k * (slice + 1) / k_slices - pc;
            fnn_map_offsets(&g->a_k, pc, kc, a_koff);
            fnn_map_offsets(&g->b_k, pc, kc, b_koff);
            FNN_FN(fnn_mapped_pack_b)(kc, nc, jc, (const FNN_T*)g->b, &g->b_n, b_koff, bp);
            FNN_FN(fnn_mapped_block)(g, m0, m1, jc, nc, kc, slice == 0,
                                     slice == k_slices - 1, bp, ap, a_koff, stage, lds);
        }
    }
    return 0;
}
