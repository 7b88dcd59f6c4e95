/* The pooling loops of pool_rows.h, written once for an element type T and included once
 * per (T, instruction set); POOL_FN(name) gives each copy its own names.  No include
 * guard, on purpose.
 *
 * Max pooling follows PyTorch (and the reference backend): a window starts from its first
 * real element and takes a later one, in row-major order, when it is larger or NaN.  So
 * the result is NaN if the window holds one (index: the LAST NaN), otherwise the maximum
 * (index: its FIRST occurrence).  POOL_FN(beats) states that rule for two candidates
 * with their flat indices; it gives the same winner whatever order partial results are
 * combined in, which is what lets a window be folded column by column.
 */

/* a when it is larger than b or NaN, else b: NaN on either side wins.  Two selects on
 * one comparison each, so that even scalar code compiles without branches (max, cmov). */
static inline T POOL_FN(nan_max)(T a, T b) {
    T m = a > b ? a : b;
    return a != a ? a : m;
}

/* Whether candidate (v, f) beats the current winner (b, bf) (see the top of the file).
 * Bitwise, not logical, operators: no short-circuit branches. */
static inline int POOL_FN(beats)(T v, int32_t f, T b, int32_t bf) {
    int v_nan = v != v, b_nan = b != b;
    int as_number = v_nan | (v > b) | ((v == b) & (f < bf));
    int as_nan = v_nan & (f > bf);
    return (b_nan & as_nan) | ((b_nan ^ 1) & as_number);
}

/* ====================================================================================
 * Vertical passes: the window rows of output row oh folded into one row of W values.
 * They return that row (the input row itself when the window has one real row) or NULL
 * when the window has no real row (which validated calls never produce).
 * ==================================================================================== */

/* fold_max and fold_sum: the window's real rows combined column by column with
 * COMBINE(acc, v) (v from a later row). */
#define POOL_DEFINE_FOLD(name, COMBINE)                                                   \
    static const T* POOL_FN(name)(const pool_shape* s, const T* restrict x, ptrdiff_t oh, \
                                  T* restrict buf) {                                      \
        const ptrdiff_t w = s->W, start = oh * s->sh - s->ph;                             \
        ptrdiff_t first, stop, i, iw;                                                     \
        const T* restrict r0;                                                             \
        const T* restrict r1;                                                             \
        pool_taps(start, s->kh, s->dh, s->H, &first, &stop);                              \
        if (first >= stop) return NULL;                                                   \
        r0 = x + (start + first * s->dh) * w;                                             \
        if (stop - first == 1) return r0;                                                 \
        r1 = r0 + s->dh * w;                                                              \
        for (iw = 0; iw < w; ++iw) buf[iw] = COMBINE(r0[iw], r1[iw]);                     \
        for (i = first + 2; i < stop; ++i) {                                              \
            r0 = x + (start + i * s->dh) * w;                                             \
            for (iw = 0; iw < w; ++iw) buf[iw] = COMBINE(buf[iw], r0[iw]);                \
        }                                                                                 \
        return buf;                                                                       \
    }
#define POOL_ADD(a, b) ((a) + (b))
POOL_DEFINE_FOLD(fold_max, POOL_FN(nan_max))
POOL_DEFINE_FOLD(fold_sum, POOL_ADD)
#undef POOL_ADD
#undef POOL_DEFINE_FOLD

/* Like fold_max, and fbuf[iw] = flat index (row * W + iw) of the winner of column iw. */
static const T* POOL_FN(fold_argmax)(const pool_shape* s, const T* restrict x, ptrdiff_t oh,
                                     T* restrict buf, int32_t* restrict fbuf) {
    const ptrdiff_t w = s->W, start = oh * s->sh - s->ph;
    ptrdiff_t first, stop, i, iw;
    int32_t base, k;
    const T* restrict r;
    pool_taps(start, s->kh, s->dh, s->H, &first, &stop);
    if (first >= stop) return NULL;
    base = (int32_t)((start + first * s->dh) * w);
    r = x + base;
    for (k = 0; k < (int32_t)w; ++k) fbuf[k] = base + k;
    if (stop - first == 1) return r; /* one real row: the row itself */
    memcpy(buf, r, (size_t)w * sizeof(T));
    for (i = first + 1; i < stop; ++i) {
        base = (int32_t)((start + i * s->dh) * w);
        r = x + base;
        for (iw = 0; iw < w; ++iw) {
            /* same column, later row: the sequential rule itself */
            T v = r[iw];
            int take = (v > buf[iw]) | (v != v);
            buf[iw] = take ? v : buf[iw];
            fbuf[iw] = take ? base + (int32_t)iw : fbuf[iw];
        }
    }
    return buf;
}

/* ====================================================================================
 * Horizontal passes over one folded row `src` (W values, no padding).
 * ==================================================================================== */

/* The body of max_interior and sum_interior (a statement macro, not a function, so that
 * both compile to the loops written out in each): declares n = hi - lo and out = y + lo,
 * returns when n <= 0, and sets out[i] = window lo + i of the row src folded with
 * COMBINE, for i in [0, n).  Taps 0 and 1 in one pass, then one pass per further tap. */
#define POOL_FOLD_TAPS(s, src, y, lo, hi, COMBINE)                                        \
    const ptrdiff_t kw_ = (s)->kw, dw_ = (s)->dw, n = (hi) - (lo);                        \
    const T* restrict a_ = (src) + (lo) * (s)->sw - (s)->pw;                              \
    T* restrict out = (y) + (lo);                                                         \
    ptrdiff_t i_, j_;                                                                     \
    if (n <= 0) return;                                                                   \
    POOL_BY_STRIDE((s)->sw, S, {                                                          \
        if (kw_ == 1) {                                                                   \
            for (i_ = 0; i_ < n; ++i_) out[i_] = a_[i_ * S];                              \
        } else {                                                                          \
            for (i_ = 0; i_ < n; ++i_) out[i_] = COMBINE(a_[i_ * S], a_[i_ * S + dw_]);   \
        }                                                                                 \
        for (j_ = 2; j_ < kw_; ++j_) {                                                    \
            const T* restrict b_ = a_ + j_ * dw_;                                         \
            for (i_ = 0; i_ < n; ++i_) out[i_] = COMBINE(out[i_], b_[i_ * S]);            \
        }                                                                                 \
    })
#define POOL_ADD(a, b) ((a) + (b))

/* y[ow] = max of window ow, for the windows [lo, hi) that lie inside the row. */
static void POOL_FN(max_interior)(const pool_shape* s, const T* restrict src,
                                  T* restrict y, ptrdiff_t lo, ptrdiff_t hi) {
    POOL_FOLD_TAPS(s, src, y, lo, hi, POOL_FN(nan_max));
}

/* The max of window ow, clipped to the row (for the windows at its edges). */
static T POOL_FN(max_clipped)(const pool_shape* s, const T* src, ptrdiff_t ow) {
    const ptrdiff_t c0 = ow * s->sw - s->pw;
    ptrdiff_t first, stop, j;
    T v;
    pool_taps(c0, s->kw, s->dw, s->W, &first, &stop);
    if (first >= stop) return -INFINITY;
    v = src[c0 + first * s->dw];
    for (j = first + 1; j < stop; ++j) v = POOL_FN(nan_max)(v, src[c0 + j * s->dw]);
    return v;
}

/* y[ow], bf[ow] = winner of window ow and its flat index, windows [lo, hi) inside, from
 * a row folded by fold_argmax (values val, flat indices fl). */
static void POOL_FN(argmax_columns)(const pool_shape* s, const T* restrict val,
                                     const int32_t* restrict fl, T* restrict y,
                                     int32_t* restrict bf, ptrdiff_t lo, ptrdiff_t hi) {
    const ptrdiff_t kw = s->kw, dw = s->dw, n = hi - lo;
    const T* restrict a = val + lo * s->sw - s->pw;
    const int32_t* restrict af = fl + lo * s->sw - s->pw;
    T* restrict out = y + lo;
    int32_t* restrict of = bf + lo;
    ptrdiff_t i, j;
    if (n <= 0) return;
    POOL_BY_STRIDE(s->sw, S, {
        if (kw == 1) {
            for (i = 0; i < n; ++i) {
                out[i] = a[i * S];
                of[i] = af[i * S];
            }
        } else {
            for (i = 0; i < n; ++i) {
                T v0 = a[i * S], v1 = a[i * S + dw];
                int32_t f0 = af[i * S], f1 = af[i * S + dw];
                int take = POOL_FN(beats)(v1, f1, v0, f0);
                out[i] = take ? v1 : v0;
                of[i] = take ? f1 : f0;
            }
        }
        for (j = 2; j < kw; ++j) {
            const T* restrict b = a + j * dw;
            const int32_t* restrict bfl = af + j * dw;
            for (i = 0; i < n; ++i) {
                T v = b[i * S];
                int32_t f = bfl[i * S];
                int take = POOL_FN(beats)(v, f, out[i], of[i]);
                out[i] = take ? v : out[i];
                of[i] = take ? f : of[i];
            }
        }
    });
}

/* One window ow clipped to the input (at the edges of a row), real rows [first, stop),
 * scanned tap by tap in row-major order: its winner into *y, *f (-inf and -1 for a window
 * without real elements). */
static void POOL_FN(argmax_clipped)(const pool_shape* s, const T* x, ptrdiff_t oh,
                                    ptrdiff_t first, ptrdiff_t stop, ptrdiff_t ow, T* y,
                                    int32_t* f) {
    const ptrdiff_t c0 = ow * s->sw - s->pw, start = oh * s->sh - s->ph;
    ptrdiff_t jf, js, ii, j;
    T best = -INFINITY;
    int32_t best_f = -1;
    pool_taps(c0, s->kw, s->dw, s->W, &jf, &js);
    for (ii = first; ii < stop; ++ii) {
        const ptrdiff_t row = (start + ii * s->dh) * s->W;
        for (j = jf; j < js; ++j) {
            const ptrdiff_t at = row + c0 + j * s->dw;
            const T v = x[at];
            if (best_f < 0 || v > best || v != v) {
                best = v;
                best_f = (int32_t)at;
            }
        }
    }
    *y = best;
    *f = best_f;
}

/* y[ow] = sum of window ow / (dh * div_w[ow]), windows [lo, hi) inside the row. */
static void POOL_FN(sum_interior)(const pool_shape* s, const T* restrict src,
                                  T* restrict y, T dh, const T* restrict div_w,
                                  ptrdiff_t lo, ptrdiff_t hi) {
    const T* restrict d = div_w + lo;
    ptrdiff_t i;
    POOL_FOLD_TAPS(s, src, y, lo, hi, POOL_ADD);
    for (i = 0; i < n; ++i) out[i] /= dh * d[i];
}
#undef POOL_ADD
#undef POOL_FOLD_TAPS

/* The sum of window ow clipped to the row (padding adds nothing). */
static T POOL_FN(sum_clipped)(const pool_shape* s, const T* src, ptrdiff_t ow) {
    const ptrdiff_t c0 = ow * s->sw - s->pw;
    ptrdiff_t first, stop, j;
    T v = 0;
    pool_taps(c0, s->kw, s->dw, s->W, &first, &stop);
    for (j = first; j < stop; ++j) v += src[c0 + j * s->dw];
    return v;
}

/* ====================================================================================
 * 2 x 2 windows with stride 2 (the most common pooling) over two real rows r0, r1: one
 * pass, no folded row in between.  Windows [lo, hi) lie inside the rows.
 * ==================================================================================== */

static void POOL_FN(max_2x2)(const pool_shape* s, const T* restrict r0, const T* restrict r1,
                             T* restrict y, ptrdiff_t lo, ptrdiff_t hi) {
    const T* restrict a = r0 + 2 * lo - s->pw;
    const T* restrict b = r1 + 2 * lo - s->pw;
    T* restrict out = y + lo;
    ptrdiff_t i;
    for (i = 0; i < hi - lo; ++i)
        out[i] = POOL_FN(nan_max)(POOL_FN(nan_max)(a[2 * i], a[2 * i + 1]),
                                  POOL_FN(nan_max)(b[2 * i], b[2 * i + 1]));
}

static void POOL_FN(sum_2x2)(const pool_shape* s, const T* restrict r0, const T* restrict r1,
                             T* restrict y, T dh, const T* restrict div_w, ptrdiff_t lo,
                             ptrdiff_t hi) {
    const T* restrict a = r0 + 2 * lo - s->pw;
    const T* restrict b = r1 + 2 * lo - s->pw;
    const T* restrict d = div_w + lo;
    T* restrict out = y + lo;
    ptrdiff_t i;
    for (i = 0; i < hi - lo; ++i)
        out[i] = ((a[2 * i] + a[2 * i + 1]) + (b[2 * i] + b[2 * i + 1])) / (dh * d[i]);
}

/* max_2x2 with the flat index of each winner (int64, straight into the output): the four
 * candidates of a window in row-major order, each taken when larger or NaN, so the
 * sequential rule (see the top of the file) in one pass.  f0, f1: flat index of r0[0],
 * r1[0]. */
static void POOL_FN(argmax_2x2)(const pool_shape* s, const T* restrict r0,
                                const T* restrict r1, int64_t f0, int64_t f1,
                                T* restrict y, int64_t* restrict index, ptrdiff_t lo,
                                ptrdiff_t hi) {
    const ptrdiff_t shift = 2 * lo - s->pw;
    const T* restrict a = r0 + shift;
    const T* restrict b = r1 + shift;
    const int64_t fa = f0 + shift, fb = f1 + shift;
    T* restrict out = y;
    int64_t* restrict idx = index;
    ptrdiff_t i;
    for (i = 0; i < hi - lo; ++i) {
        T v = a[2 * i], c;
        int64_t f = fa + 2 * i;
        int take;
        c = a[2 * i + 1];
        take = (c > v) | (c != c);
        v = take ? c : v;
        f = take ? fa + 2 * i + 1 : f;
        c = b[2 * i];
        take = (c > v) | (c != c);
        v = take ? c : v;
        f = take ? fb + 2 * i : f;
        c = b[2 * i + 1];
        take = (c > v) | (c != c);
        v = take ? c : v;
        f = take ? fb + 2 * i + 1 : f;
        out[i] = v;
        idx[i] = f;
    }
}

/* Whether output row oh has 2 x 2 windows with stride 2 over exactly two real rows; if
 * so, *r0 and *r1 point at them. */
static inline int POOL_FN(two_rows_2x2)(const pool_shape* s, const T* x, ptrdiff_t oh,
                                        const T** r0, const T** r1) {
    ptrdiff_t first, stop, start = oh * s->sh - s->ph;
    if (s->kw != 2 || s->sw != 2 || s->dw != 1) return 0;
    pool_taps(start, s->kh, s->dh, s->H, &first, &stop);
    if (stop - first != 2) return 0;
    *r0 = x + (start + first * s->dh) * s->W;
    *r1 = *r0 + s->dh * s->W;
    return 1;
}

/* ====================================================================================
 * Whole-plane reductions (global pooling): the maximum in vector lanes, the sum in
 * eight partial sums so that the loop vectorises without reassociating one long sum.
 * ==================================================================================== */

/* 32 bytes of T: the lanes of reduce_max (one AVX2 register; two SSE ones in the
 * portable build). */
typedef T POOL_FN(plane_vec) __attribute__((vector_size(32)));
#ifndef POOL_PLANE_LANES
#define POOL_PLANE_LANES ((ptrdiff_t)(sizeof(POOL_FN(plane_vec)) / sizeof(T)))
#endif

/* The maximum of x[0..n) (n >= 1), NaN if there is one: in vector lanes whose compares
 * give lane masks that select bits (the loop over an array of eight partial maxima it
 * replaces compiled to scalar compares, ~1 ns an element). */
static T POOL_FN(reduce_max)(const T* restrict x, ptrdiff_t n) {
    ptrdiff_t i, whole = 1;
    T m = x[0];
    if (n >= 2 * POOL_PLANE_LANES) {
        POOL_FN(plane_vec) acc, v;
        T lane[sizeof(POOL_FN(plane_vec)) / sizeof(T)];
        whole = n / POOL_PLANE_LANES * POOL_PLANE_LANES;
        __builtin_memcpy(&acc, x, sizeof acc);
        for (i = POOL_PLANE_LANES; i < whole; i += POOL_PLANE_LANES) {
            __builtin_memcpy(&v, x + i, sizeof v);
            const __typeof__(v > acc) take = (v > acc) | (v != v);
            acc = (POOL_FN(plane_vec))(((__typeof__(take))v & take) |
                                       ((__typeof__(take))acc & ~take));
        }
        __builtin_memcpy(lane, &acc, sizeof acc);
        m = lane[0];
        for (i = 1; i < POOL_PLANE_LANES; ++i) m = POOL_FN(nan_max)(lane[i], m);
    }
    for (i = whole; i < n; ++i) m = POOL_FN(nan_max)(x[i], m);
    return m;
}

static T POOL_FN(reduce_sum)(const T* restrict x, ptrdiff_t n) {
    T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t i, k, blocks = n / 8 * 8;
    T total = 0;
    for (i = 0; i < blocks; i += 8)
        for (k = 0; k < 8; ++k) acc[k] += x[i + k];
    for (k = 0; k < 8; ++k) total += acc[k];
    for (i = blocks; i < n; ++i) total += x[i];
    return total;
}

/* ====================================================================================
 * Entry points (one plane each; y, index, gy, gx point at the plane's first element).
 * ==================================================================================== */

/* Max pooling, output rows [oh0, oh1) of one plane.  buf: W scratch values. */
static void POOL_FN(pool_max_rows)(const pool_shape* s, const T* x, T* y, ptrdiff_t oh0,
                                   ptrdiff_t oh1, T* buf) {
    const ptrdiff_t wo = s->Wo;
    ptrdiff_t oh, ow;
    if (pool_is_global(s)) {
        y[0] = POOL_FN(reduce_max)(x, s->H * s->W);
        return;
    }
    for (oh = oh0; oh < oh1; ++oh) {
        T* yrow = y + oh * wo;
        const T *r0, *r1, *src;
        if (POOL_FN(two_rows_2x2)(s, x, oh, &r0, &r1)) {
            for (ow = 0; ow < wo; ++ow) {
                if (ow == s->ow_lo) { /* the windows inside the rows, then the edges */
                    POOL_FN(max_2x2)(s, r0, r1, yrow, s->ow_lo, s->ow_hi);
                    ow = s->ow_hi;
                    if (ow >= wo) break;
                }
                yrow[ow] = POOL_FN(nan_max)(POOL_FN(max_clipped)(s, r0, ow),
                                            POOL_FN(max_clipped)(s, r1, ow));
            }
            continue;
        }
        src = POOL_FN(fold_max)(s, x, oh, buf);
        if (src == NULL) {
            for (ow = 0; ow < wo; ++ow) yrow[ow] = -INFINITY;
            continue;
        }
        for (ow = 0; ow < s->ow_lo; ++ow) yrow[ow] = POOL_FN(max_clipped)(s, src, ow);
        POOL_FN(max_interior)(s, src, yrow, s->ow_lo, s->ow_hi);
        for (ow = s->ow_hi; ow < wo; ++ow) yrow[ow] = POOL_FN(max_clipped)(s, src, ow);
    }
}

/* The winners of output row oh into vrow (values) and frow (flat indices, -1 for a
 * window without real elements).  buf, fbuf: W scratch. */
static void POOL_FN(argmax_row)(const pool_shape* s, const T* x, ptrdiff_t oh, T* vrow,
                                int32_t* frow, T* buf, int32_t* fbuf) {
    const ptrdiff_t wo = s->Wo;
    ptrdiff_t ow, first, stop;
    pool_taps(oh * s->sh - s->ph, s->kh, s->dh, s->H, &first, &stop);
    for (ow = 0; ow < s->ow_lo; ++ow)
        POOL_FN(argmax_clipped)(s, x, oh, first, stop, ow, vrow + ow, frow + ow);
    if (first < stop) {
        const T* val = POOL_FN(fold_argmax)(s, x, oh, buf, fbuf);
        POOL_FN(argmax_columns)(s, val, fbuf, vrow, frow, s->ow_lo, s->ow_hi);
    } else { /* a window of padding rows only */
        for (ow = s->ow_lo; ow < s->ow_hi; ++ow) {
            vrow[ow] = -INFINITY;
            frow[ow] = -1;
        }
    }
    for (ow = s->ow_hi; ow < wo; ++ow)
        POOL_FN(argmax_clipped)(s, x, oh, first, stop, ow, vrow + ow, frow + ow);
}

/* The winner of the whole plane x[0..n) (a global max pooling's one window) and its
 * position, by the rule at the top of the file: the maximum (reduce_max), then the first
 * element equal to it, found a vector at a time, or the last NaN.  The value is read back
 * from there, so that a plane whose maximum is zero gives the sign of the zero found
 * first, as the sequential rule does.  It replaces a vertical fold of short rows and a
 * horizontal pass over one window: 2 x 512 x 7 x 7, one thread, 200 -> 52 us (Intel Xeon
 * @ 2.80GHz). */
static void POOL_FN(argmax_plane)(const T* restrict x, ptrdiff_t n, T* value, int32_t* flat) {
    const T m = POOL_FN(reduce_max)(x, n);
    ptrdiff_t i;
    if (m != m) {
        for (i = n - 1; x[i] == x[i]; --i) {
        }
    } else {
        /* whole vectors while none of their lanes equals m, then element by element */
        const POOL_FN(plane_vec) target = (POOL_FN(plane_vec)){0} + m;
        for (i = 0; i + POOL_PLANE_LANES <= n; i += POOL_PLANE_LANES) {
            POOL_FN(plane_vec) v;
            __builtin_memcpy(&v, x + i, sizeof v);
            const uint64_t __attribute__((vector_size(32))) hit =
                (__typeof__(hit))(v == target);
            if (hit[0] | hit[1] | hit[2] | hit[3]) break;
        }
        for (; !(x[i] == m); ++i) {
        }
    }
    *value = x[i];
    *flat = (int32_t)i;
}

/* Max pooling with indices, output rows [oh0, oh1) of one plane.  buf, fbuf: W scratch;
 * frow: Wo scratch. */
static void POOL_FN(pool_argmax_rows)(const pool_shape* s, const T* x, T* y, int64_t* index,
                                      ptrdiff_t oh0, ptrdiff_t oh1, T* buf, int32_t* fbuf,
                                      int32_t* frow) {
    const ptrdiff_t wo = s->Wo;
    ptrdiff_t oh, ow;
    if (pool_is_global(s)) {
        if (oh0 < oh1) {
            int32_t f;
            POOL_FN(argmax_plane)(x, s->H * s->W, y, &f); /* Ho = Wo = 1 */
            index[0] = f;
        }
        return;
    }
    for (oh = oh0; oh < oh1; ++oh) {
        int64_t* irow = index + oh * wo;
        T* yrow = y + oh * wo;
        const T *r0, *r1;
        if (POOL_FN(two_rows_2x2)(s, x, oh, &r0, &r1)) { /* one pass, no scratch rows */
            ptrdiff_t first, stop;
            pool_taps(oh * s->sh - s->ph, s->kh, s->dh, s->H, &first, &stop);
            for (ow = 0; ow < s->ow_lo; ++ow) {
                int32_t f;
                POOL_FN(argmax_clipped)(s, x, oh, first, stop, ow, yrow + ow, &f);
                irow[ow] = f;
            }
            POOL_FN(argmax_2x2)(s, r0, r1, r0 - x, r1 - x, yrow + s->ow_lo, irow + s->ow_lo,
                                s->ow_lo, s->ow_hi);
            for (ow = s->ow_hi; ow < wo; ++ow) {
                int32_t f;
                POOL_FN(argmax_clipped)(s, x, oh, first, stop, ow, yrow + ow, &f);
                irow[ow] = f;
            }
            continue;
        }
        POOL_FN(argmax_row)(s, x, oh, yrow, frow, buf, fbuf);
        for (ow = 0; ow < wo; ++ow) irow[ow] = frow[ow];
    }
}

/* The gradient of max pooling from indices for `planes` planes in a row: gx = 0, then
 * gx[index[o]] += gy[o] for every output o of each plane.  Planes are zeroed and scattered
 * a group at a time, a group as many whole planes as fit POOL_ZERO_GROUP_BYTES (at least
 * one): it stays in cache meanwhile, and small planes (a global pooling's 7 x 7) cost one
 * memset per group instead of one each (2 x 512 x 7 x 7, 7 x 7 windows: 11.9 -> 4.8 us,
 * Intel Xeon @ 2.80GHz).  Indices outside [0, H * W) are skipped (fastnn.ops rejects them
 * before a kernel runs). */
#ifndef POOL_ZERO_GROUP_BYTES
#define POOL_ZERO_GROUP_BYTES 16384
#endif
static void POOL_FN(pool_max_backward_indices)(const pool_shape* s, const T* restrict gy,
                                               const int64_t* restrict index,
                                               T* restrict gx, ptrdiff_t planes) {
    const ptrdiff_t outs = s->Ho * s->Wo, size = s->H * s->W;
    const ptrdiff_t fit = POOL_ZERO_GROUP_BYTES / (size * (ptrdiff_t)sizeof(T) + 1);
    const ptrdiff_t group = fit > 1 ? fit : 1;
    ptrdiff_t p0, p, o;
    for (p0 = 0; p0 < planes; p0 += group) {
        const ptrdiff_t p1 = planes - p0 < group ? planes : p0 + group;
        memset(gx + p0 * size, 0, (size_t)((p1 - p0) * size) * sizeof(T));
        for (p = p0; p < p1; ++p) {
            const T* restrict g = gy + p * outs;
            const int64_t* restrict f = index + p * outs;
            T* restrict dst = gx + p * size;
            for (o = 0; o < outs; ++o)
                if ((uint64_t)f[o] < (uint64_t)size) dst[f[o]] += g[o];
        }
    }
}

/* The gradient of max pooling for one plane, finding each window's argmax again.
 * buf, fbuf: W scratch; vrow, frow: Wo scratch. */
/* Windows per block of the recomputing 2 x 2 backward (its index and value rows live on
 * the stack). */
#define POOL_BACKWARD_BLOCK 256

/* The gradient of 2 x 2 stride-2 windows [lo, hi) over the rows r0, r1, added into gx:
 * each block's maxima found again by argmax_2x2 (the forward's own pass, so the same
 * element wins), then the gradient scattered through the flat indices as from saved ones.
 * (A loop picking one of four by comparisons compiled to branches and ran 2-3x slower.) */
static void POOL_FN(max_backward_2x2)(const pool_shape* s, const T* x, const T* r0,
                                      const T* r1, T* gx, const T* grow, ptrdiff_t lo,
                                      ptrdiff_t hi) {
    T value[POOL_BACKWARD_BLOCK];
    int64_t flat[POOL_BACKWARD_BLOCK];
    ptrdiff_t b0, i;
    for (b0 = lo; b0 < hi; b0 += POOL_BACKWARD_BLOCK) {
        const ptrdiff_t b1 = hi - b0 < POOL_BACKWARD_BLOCK ? hi : b0 + POOL_BACKWARD_BLOCK;
        POOL_FN(argmax_2x2)(s, r0, r1, r0 - x, r1 - x, value, flat, b0, b1);
        for (i = 0; i < b1 - b0; ++i) gx[flat[i]] += grow[b0 + i];
    }
}

/* The gradient of max pooling for one plane, each window's maximum found again in x:
 * 2 x 2 stride-2 rows in one pass (max_backward_2x2), other windows through argmax_row's
 * flat indices. */
static void POOL_FN(pool_max_backward_recompute)(const pool_shape* s, const T* gy,
                                                 const T* x, T* gx, T* buf, int32_t* fbuf,
                                                 T* vrow, int32_t* frow) {
    const ptrdiff_t wo = s->Wo;
    ptrdiff_t oh, ow;
    memset(gx, 0, (size_t)(s->H * s->W) * sizeof(T));
    for (oh = 0; oh < s->Ho; ++oh) {
        const T* grow = gy + oh * wo;
        const T *r0, *r1;
        if (POOL_FN(two_rows_2x2)(s, x, oh, &r0, &r1)) {
            ptrdiff_t first, stop;
            pool_taps(oh * s->sh - s->ph, s->kh, s->dh, s->H, &first, &stop);
            for (ow = 0; ow < wo; ++ow) {
                int32_t f;
                if (ow == s->ow_lo) {
                    POOL_FN(max_backward_2x2)(s, x, r0, r1, gx, grow, s->ow_lo, s->ow_hi);
                    ow = s->ow_hi;
                    if (ow >= wo) break;
                }
                POOL_FN(argmax_clipped)(s, x, oh, first, stop, ow, vrow + ow, &f);
                if (f >= 0) gx[f] += grow[ow];
            }
            continue;
        }
        POOL_FN(argmax_row)(s, x, oh, vrow, frow, buf, fbuf);
        for (ow = 0; ow < wo; ++ow)
            if (frow[ow] >= 0) gx[frow[ow]] += grow[ow];
    }
}

/* Average pooling, output rows [oh0, oh1) of one plane: window (oh, ow) is divided by
 * div_h[oh] * div_w[ow].  buf: W scratch. */
static void POOL_FN(pool_avg_rows)(const pool_shape* s, const T* x, T* y, ptrdiff_t oh0,
                                   ptrdiff_t oh1, const T* div_h, const T* div_w, T* buf) {
    const ptrdiff_t wo = s->Wo;
    ptrdiff_t oh, ow;
    if (pool_is_global(s)) {
        y[0] = POOL_FN(reduce_sum)(x, s->H * s->W) / (div_h[0] * div_w[0]);
        return;
    }
    for (oh = oh0; oh < oh1; ++oh) {
        T* yrow = y + oh * wo;
        const T dh = div_h[oh];
        const T *r0, *r1, *src;
        if (POOL_FN(two_rows_2x2)(s, x, oh, &r0, &r1)) {
            for (ow = 0; ow < wo; ++ow) {
                if (ow == s->ow_lo) { /* the windows inside the rows, then the edges */
                    POOL_FN(sum_2x2)(s, r0, r1, yrow, dh, div_w, s->ow_lo, s->ow_hi);
                    ow = s->ow_hi;
                    if (ow >= wo) break;
                }
                yrow[ow] = (POOL_FN(sum_clipped)(s, r0, ow) + POOL_FN(sum_clipped)(s, r1, ow)) /
                           (dh * div_w[ow]);
            }
            continue;
        }
        src = POOL_FN(fold_sum)(s, x, oh, buf);
        if (src == NULL) {
            for (ow = 0; ow < wo; ++ow) yrow[ow] = 0;
            continue;
        }
        for (ow = 0; ow < s->ow_lo; ++ow)
            yrow[ow] = POOL_FN(sum_clipped)(s, src, ow) / (dh * div_w[ow]);
        POOL_FN(sum_interior)(s, src, yrow, dh, div_w, s->ow_lo, s->ow_hi);
        for (ow = s->ow_hi; ow < wo; ++ow)
            yrow[ow] = POOL_FN(sum_clipped)(s, src, ow) / (dh * div_w[ow]);
    }
}

/* row[c] = the sum of the shares of the windows of one output row that cover column c
 * (the transpose of the horizontal average pass, divisors already applied). */
static void POOL_FN(spread_columns)(const pool_shape* s, const T* restrict share,
                                    T* restrict row) {
    const ptrdiff_t sw = s->sw, kw = s->kw, dw = s->dw, w = s->W, wo = s->Wo;
    const ptrdiff_t lo = s->ow_lo, hi = s->ow_hi;
    ptrdiff_t ow, j, i, c, first, stop, c0, end;
    if (sw == kw && dw == 1 && s->pw == 0) { /* windows side by side from column 0 */
        if (kw == 2) {
            for (i = 0; i < hi; ++i) row[2 * i] = row[2 * i + 1] = share[i];
        } else {
            for (j = 0; j < kw; ++j)
                for (i = 0; i < hi; ++i) row[i * kw + j] = share[i];
        }
        end = hi * kw;
        for (ow = hi; ow < wo; ++ow) { /* a ceil_mode window hanging over the edge */
            end = (ow + 1) * kw < w ? (ow + 1) * kw : w;
            for (c = ow * kw; c < end; ++c) row[c] = share[ow];
        }
        for (c = end; c < w; ++c) row[c] = 0; /* columns no window reaches */
        return;
    }
    memset(row, 0, (size_t)w * sizeof(T));
    for (j = 0; j < kw && hi > lo; ++j) {
        T* restrict b = row + lo * sw - s->pw + j * dw;
        const T* restrict sh = share + lo;
        POOL_BY_STRIDE(sw, S, {
            for (i = 0; i < hi - lo; ++i) b[i * S] += sh[i];
        });
    }
    for (ow = 0; ow < wo; ++ow) { /* the clipped windows at both edges */
        if (ow == lo) ow = hi;
        if (ow >= wo) break;
        c0 = ow * sw - s->pw;
        pool_taps(c0, kw, dw, w, &first, &stop);
        for (j = first; j < stop; ++j) row[c0 + j * dw] += share[ow];
    }
}

/* The gradient of average pooling for one plane.  buf: W scratch; share: Wo scratch.
 * When windows do not overlap vertically every input row is written once (no zeroing
 * pass); otherwise gx is zeroed and the rows are accumulated. */
static void POOL_FN(pool_avg_backward)(const pool_shape* s, const T* gy, T* gx,
                                       const T* div_h, const T* div_w, T* buf, T* share) {
    const ptrdiff_t w = s->W, wo = s->Wo;
    const int overlap = s->sh < (s->kh - 1) * s->dh + 1;
    ptrdiff_t oh, ow, i, iw, first, stop, start, next = 0;
    if (pool_is_global(s)) { /* every input element gets the one share */
        const T v = gy[0] / (div_h[0] * div_w[0]);
        for (iw = 0; iw < s->H * w; ++iw) gx[iw] = v;
        return;
    }
    if (overlap) memset(gx, 0, (size_t)(s->H * w) * sizeof(T));
    for (oh = 0; oh < s->Ho; ++oh) {
        const T* restrict grow = gy + oh * wo;
        const T dh = div_h[oh];
        for (ow = 0; ow < wo; ++ow) share[ow] = grow[ow] / (dh * div_w[ow]);
        POOL_FN(spread_columns)(s, share, buf);
        start = oh * s->sh - s->ph;
        pool_taps(start, s->kh, s->dh, s->H, &first, &stop);
        for (i = first; i < stop; ++i) {
            ptrdiff_t ih = start + i * s->dh;
            T* restrict r = gx + ih * w;
            if (overlap) {
                for (iw = 0; iw < w; ++iw) r[iw] += buf[iw];
            } else { /* rows arrive in increasing order: zero the ones skipped */
                if (ih > next) memset(gx + next * w, 0, (size_t)((ih - next) * w) * sizeof(T));
                memcpy(r, buf, (size_t)w * sizeof(T));
                next = ih + 1;
            }
        }
    }
    if (!overlap && next < s->H) memset(gx + next * w, 0, (size_t)((s->H - next) * w) * sizeof(T));
}
