/* Row kernels of max and average pooling, float and double, with run-time AVX2 dispatch.
 *
 * The loops live in pool_rows_impl.h, which this header includes four times (through
 * pool_rows_types.h): for float and double, each compiled for the portable baseline and
 * (on x86 with gcc) again for AVX2/FMA.  The entry points at the bottom pick the AVX2 build when the CPU has it.
 * Threads are the caller's business: kernels/cpu/pool_max.pyx and pool_avg.pyx hand each
 * OpenMP thread whole planes or runs of output rows.
 *
 * Geometry (pool_shape): a 1-D pooling is a 2-D one of height 1 with a 1 x k kernel.
 * Window (oh, ow) reads input rows oh*sh - ph + i*dh (i < kh) and columns
 * ow*sw - pw + j*dw (j < kw); taps outside the input are padding and are never read.
 * Kernels work on one output row of windows at a time.  Max (values only) and average
 * pooling take two passes: a vertical pass folds the window's real input rows into one
 * row (or uses the input row itself when there is only one), then a horizontal pass folds
 * each window's columns (with the winners' flat indices, for max pooling with indices).
 * Windows [ow_lo, ow_hi) lie wholly inside the row and run branch-free, vectorised loops;
 * the few at the edges scan their real taps one by one.
 *
 * Flat argmax indices are int32 inside the kernels (the wrappers check H * W < 2^31).
 */
#ifndef FNN_POOL_ROWS_H
#define FNN_POOL_ROWS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu_features.h"

typedef struct {
    ptrdiff_t H, W, Ho, Wo;    /* input and output sizes */
    ptrdiff_t kh, kw, sh, sw;  /* kernel and stride */
    ptrdiff_t ph, pw, dh, dw;  /* padding (both sides) and dilation */
    ptrdiff_t ow_lo, ow_hi;    /* windows [ow_lo, ow_hi) have every column inside */
} pool_shape;

/* The taps i in [*first, *stop) of a window starting at `start` whose positions
 * start + i * dilation fall inside [0, size); *stop <= *first when there are none. */
static inline void pool_taps(ptrdiff_t start, ptrdiff_t kernel, ptrdiff_t dilation,
                             ptrdiff_t size, ptrdiff_t* first, ptrdiff_t* stop) {
    ptrdiff_t hi;
    if (dilation == 1) { /* the common case, without divisions: it runs once per row */
        *first = start >= 0 ? 0 : -start;
        hi = size - start;
    } else {
        *first = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
        hi = start >= size ? 0 : (size - start + dilation - 1) / dilation;
    }
    *stop = hi < kernel ? hi : kernel;
}

/* Fill in ow_lo and ow_hi from the other fields. */
static inline void pool_shape_init(pool_shape* s) {
    ptrdiff_t reach = (s->kw - 1) * s->dw;
    ptrdiff_t lo = (s->pw + s->sw - 1) / s->sw; /* first window starting at column >= 0 */
    ptrdiff_t last = s->W - 1 + s->pw - reach;  /* window ow fits when ow * sw <= last */
    ptrdiff_t hi = last < 0 ? 0 : last / s->sw + 1;
    s->ow_lo = lo < s->Wo ? lo : s->Wo;
    s->ow_hi = hi < s->Wo ? hi : s->Wo;
    if (s->ow_hi < s->ow_lo) s->ow_hi = s->ow_lo;
}

/* Whether one window covers each plane exactly (global pooling): then a plane reduces
 * to one number with a plain contiguous loop. */
static inline int pool_is_global(const pool_shape* s) {
    return s->Ho == 1 && s->Wo == 1 && s->kh == s->H && s->kw == s->W && s->ph == 0 &&
           s->pw == 0 && s->dh == 1 && s->dw == 1;
}

#if defined(__GNUC__) && !defined(__clang__) && FNN_X86
#define POOL_HAVE_AVX2_BUILD 1
#else
#define POOL_HAVE_AVX2_BUILD 0
#endif
static inline int pool_detect_avx2(void) { return POOL_HAVE_AVX2_BUILD && fnn_cpu_has_avx2(); }

/* Whether the entry points run the AVX2 build: -1 until the CPU is first checked (a
 * benign race: every thread stores the same value). */
static int pool_avx2_state = -1;

static inline int pool_cpu_has_avx2(void) {
    if (pool_avx2_state < 0) pool_avx2_state = pool_detect_avx2();
    return pool_avx2_state;
}

/* For tests: 0 selects the portable build, 1 the AVX2 build where the CPU has AVX2.
 * Returns whether the AVX2 build is selected now.  Not for use while kernels run. */
static inline int pool_set_avx2(int enabled) {
    pool_avx2_state = enabled && pool_detect_avx2();
    return pool_avx2_state;
}

/* Run the block (last argument) with S a compile-time constant equal to `stride` for
 * strides 1 to 4 (so that strided loads vectorise), and a run-time one otherwise. */
#define POOL_BY_STRIDE(stride, S, ...)                                                    \
    switch (stride) {                                                                     \
    case 1: { const ptrdiff_t S = 1; __VA_ARGS__ break; }                                 \
    case 2: { const ptrdiff_t S = 2; __VA_ARGS__ break; }                                 \
    case 3: { const ptrdiff_t S = 3; __VA_ARGS__ break; }                                 \
    case 4: { const ptrdiff_t S = 4; __VA_ARGS__ break; }                                 \
    default: { const ptrdiff_t S = (stride); __VA_ARGS__ break; }                         \
    }

#define POOL_CAT3_(a, b, c) a##_##b##_##c
#define POOL_CAT3(a, b, c) POOL_CAT3_(a, b, c)
#define POOL_FN(name) POOL_CAT3(name, POOL_SFX, POOL_ISA)

/* ---- the portable builds ---------------------------------------------------------- */
#define POOL_ISA generic
#include "pool_rows_types.h"

/* ---- the AVX2/FMA builds ---------------------------------------------------------- */
#if POOL_HAVE_AVX2_BUILD
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define POOL_ISA avx2
#include "pool_rows_types.h"
#pragma GCC pop_options
#endif

/* ---- entry points: pick the build once per call ------------------------------------ */
#if POOL_HAVE_AVX2_BUILD
#define POOL_PICK(name, sfx, args)                                                        \
    do {                                                                                  \
        if (pool_cpu_has_avx2()) name##_##sfx##_avx2 args;                                \
        else name##_##sfx##_generic args;                                                 \
    } while (0)
#else
#define POOL_PICK(name, sfx, args) name##_##sfx##_generic args
#endif

#define POOL_ENTRY_POINTS(T, sfx)                                                         \
    static void pool_max_rows_##sfx(const pool_shape* s, const T* x, T* y, ptrdiff_t oh0, \
                                    ptrdiff_t oh1, T* buf) {                              \
        POOL_PICK(pool_max_rows, sfx, (s, x, y, oh0, oh1, buf));                          \
    }                                                                                     \
    static void pool_argmax_rows_##sfx(const pool_shape* s, const T* x, T* y,             \
                                       int64_t* index, ptrdiff_t oh0, ptrdiff_t oh1,      \
                                       T* buf, int32_t* fbuf, int32_t* frow) {            \
        POOL_PICK(pool_argmax_rows, sfx, (s, x, y, index, oh0, oh1, buf, fbuf, frow));    \
    }                                                                                     \
    static void pool_max_backward_indices_##sfx(const pool_shape* s, const T* gy,         \
                                                const int64_t* index, T* gx,              \
                                                ptrdiff_t planes) {                       \
        POOL_PICK(pool_max_backward_indices, sfx, (s, gy, index, gx, planes));            \
    }                                                                                     \
    static void pool_max_backward_recompute_##sfx(const pool_shape* s, const T* gy,       \
                                                  const T* x, T* gx, T* buf,              \
                                                  int32_t* fbuf, T* vrow,                 \
                                                  int32_t* frow) {                        \
        POOL_PICK(pool_max_backward_recompute, sfx, (s, gy, x, gx, buf, fbuf, vrow, frow)); \
    }                                                                                     \
    static void pool_avg_rows_##sfx(const pool_shape* s, const T* x, T* y, ptrdiff_t oh0, \
                                    ptrdiff_t oh1, const T* div_h, const T* div_w,        \
                                    T* buf) {                                             \
        POOL_PICK(pool_avg_rows, sfx, (s, x, y, oh0, oh1, div_h, div_w, buf));            \
    }                                                                                     \
    static void pool_avg_backward_##sfx(const pool_shape* s, const T* gy, T* gx,          \
                                        const T* div_h, const T* div_w, T* buf,           \
                                        T* share) {                                       \
        POOL_PICK(pool_avg_backward, sfx, (s, gy, gx, div_h, div_w, buf, share));         \
    }

POOL_ENTRY_POINTS(float, f32)
POOL_ENTRY_POINTS(double, f64)

#endif /* FNN_POOL_ROWS_H */
