/*
 * Direct-convolution micro-kernels for float and double, compiled for several instruction
 * sets from one template (conv_direct_body.h) and chosen at run time.
 *
 * The build is portable (no -march=native): the "base" instantiation uses 16-byte
 * vectors (SSE2 on x86-64, NEON on ARM), and on x86 an AVX2+FMA and an AVX-512
 * instantiation are compiled with GCC target attributes.  fastnn_conv_set_isa() picks
 * one, capped at what the CPU supports (conv_direct.pyx chooses AVX2 by default, AVX-512
 * on request; tests force each supported level in turn).
 *
 * Entry points (T = float: _f32, T = double: _f64):
 *   fastnn_conv_fwd_*   forward block: up to FASTNN_FWD_KB output channels of one row
 *   fastnn_conv_gw_*    weight-gradient block: FASTNN_GW_KB x FASTNN_GW_QB weights, summed
 *                       over rows of one or several images
 *   fastnn_conv_gx_*    input-gradient block: FASTNN_GX_QB (c, r, s) columns of one row
 * See conv_direct_body.h for what each computes.
 */
#ifndef FASTNN_CONV_DIRECT_H
#define FASTNN_CONV_DIRECT_H

#include <stddef.h>
#include <string.h>

#include "conv_epilogue.h"
#include "cpu_features.h"

#define FASTNN_FWD_KB 6 /* output channels per forward call */
#define FASTNN_GW_KB 4  /* output channels per weight-gradient call */
#define FASTNN_GW_QB 2  /* weight columns (c, r, s) per weight-gradient call */
#define FASTNN_GX_QB 6  /* weight columns per input-gradient call */

/* ISA levels: FNN_ISA_BASE, FNN_ISA_AVX2, FNN_ISA_AVX512 (cpu_features.h) */

#if defined(__GNUC__)
#define FASTNN_VECTOR_EXT 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized" /* accumulators used up to KB only */
/* unroll the short loops over accumulator rows/vectors so the arrays become registers */
#define UNROLL _Pragma("GCC unroll 16")
#else /* MSVC: plain scalar code */
#define FASTNN_VECTOR_EXT 0
#define __attribute__(x)
#define __builtin_memcpy memcpy
#define restrict __restrict
#define UNROLL
#endif

/* The forward kernel's activation on one accumulator (a vector, or a scalar without
 * GCC's vector extension). */
#if FASTNN_VECTOR_EXT
#define FASTNN_ACT_ACC(v, act) FNN_CONV_ACT_VEC(v, act)
#else
#define FASTNN_ACT_ACC(v, act)                                                             \
    ((v) = (act) == FNN_CONV_ACT_RELU ? ((v) < 0 ? 0 : (v))                                \
           : (act) == FNN_CONV_ACT_RELU6 ? ((v) < 0 ? 0 : ((v) > 6 ? 6 : (v)))             \
                                         : (v))
#endif

/* ---- instantiations: float and double at each level (isa_instances.h) ------------- */
#define FASTNN_CAT_(a, b) a##b
#define FASTNN_CAT(a, b) FASTNN_CAT_(a, b)
#define FN(name) FASTNN_CAT(fastnn_conv_##name##_, SFX)
#if FASTNN_VECTOR_EXT
#define FNN_ISA_BODY "conv_direct_body.h"
#define FNN_ISA_TARGET_AVX512 __attribute__((target("avx512f")))
#include "isa_instances.h"
#else /* scalar code (VEC is T), base level only */
#define VEC T
#define VL 1
#define TARGET_ATTR
#define T float
#define SFX f32_base
#include "conv_direct_body.h"
#undef T
#undef SFX
#define T double
#define SFX f64_base
#include "conv_direct_body.h"
#undef T
#undef SFX
#undef VEC
#undef VL
#undef TARGET_ATTR
#endif
#undef FN

#if FASTNN_VECTOR_EXT
#pragma GCC diagnostic pop
#endif

/* ---- run-time choice of the instruction set ----------------------------------------- */

/* The level in use; set once at module import (fastnn_conv_set_isa), read afterwards. */
static int fastnn_conv_isa = FNN_ISA_BASE;

/* Use `level`, or the best supported level if `level` is higher; returns the level set. */
static int fastnn_conv_set_isa(int level)
{
    int best = fnn_cpu_best_isa();
    fastnn_conv_isa = level < best ? (level < 0 ? FNN_ISA_BASE : level) : best;
    return fastnn_conv_isa;
}

#if FNN_X86
#define FASTNN_CONV_DISPATCH(name, sfx, args)                                              \
    do {                                                                                   \
        if (fastnn_conv_isa == FNN_ISA_AVX512)                                             \
            fastnn_conv_##name##_##sfx##_avx512 args;                                      \
        else if (fastnn_conv_isa == FNN_ISA_AVX2)                                          \
            fastnn_conv_##name##_##sfx##_avx2 args;                                        \
        else                                                                               \
            fastnn_conv_##name##_##sfx##_base args;                                        \
    } while (0)
#else
#define FASTNN_CONV_DISPATCH(name, sfx, args) fastnn_conv_##name##_##sfx##_base args
#endif

#define FASTNN_DEFINE_ENTRIES(T_, sfx)                                                     \
    static void fastnn_conv_fwd_##sfx(int kb, const T_ *xrow, const ptrdiff_t *qoff,       \
                                      ptrdiff_t Q, const T_ *wpk, const T_ *bias, T_ *y,   \
                                      ptrdiff_t ykstride, ptrdiff_t nw, int act)           \
    {                                                                                      \
        FASTNN_CONV_DISPATCH(fwd, sfx,                                                     \
                             (kb, xrow, qoff, Q, wpk, bias, y, ykstride, nw, act));        \
    }                                                                                      \
    static void fastnn_conv_gw_##sfx(int kb, int qb, const T_ *gy, ptrdiff_t gyk,          \
                                     ptrdiff_t gyr, const T_ *x, ptrdiff_t xr,             \
                                     const ptrdiff_t *qoff, ptrdiff_t nrows, ptrdiff_t nw, \
                                     ptrdiff_t nimg, ptrdiff_t gyi, ptrdiff_t xi,          \
                                     double *gw, ptrdiff_t gwk)                            \
    {                                                                                      \
        FASTNN_CONV_DISPATCH(gw, sfx, (kb, qb, gy, gyk, gyr, x, xr, qoff, nrows, nw, nimg, \
                                       gyi, xi, gw, gwk));                                 \
    }                                                                                      \
    static void fastnn_conv_gx_##sfx(int qb, const T_ *gy, ptrdiff_t gyk, ptrdiff_t K,     \
                                     const T_ *wt, ptrdiff_t ldw, T_ *gx,                  \
                                     const ptrdiff_t *qoff, ptrdiff_t nw)                  \
    {                                                                                      \
        FASTNN_CONV_DISPATCH(gx, sfx, (qb, gy, gyk, K, wt, ldw, gx, qoff, nw));            \
    }

FASTNN_DEFINE_ENTRIES(float, f32)
FASTNN_DEFINE_ENTRIES(double, f64)

#endif /* FASTNN_CONV_DIRECT_H */
