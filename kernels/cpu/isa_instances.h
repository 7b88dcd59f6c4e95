/* Compiles a kernel family's body header once per (element type, instruction set):
 * float and double with 16-byte vectors (the portable "base" level: SSE2 on x86-64, NEON
 * on ARM) and, on x86, with 32-byte (AVX2 + FMA) and 64-byte (AVX-512) vectors under
 * GCC target attributes.
 *
 * The family header defines FNN_ISA_BODY (the body's file name in quotes) and any
 * per-level tuning macros of its own, written with FNN_ISA_TUNE(FNN_XX_) so that they
 * name FNN_XX_BASE, FNN_XX_AVX2 or FNN_XX_AVX512 in each pass; then it includes this
 * file once.  Each pass defines for the body (see isa_pass.h):
 *   T            float or double
 *   VEC          a GCC vector of VL elements of T
 *   IVEC         the integer vector of VEC's size and lane count (for lane masks)
 *   VL           lanes per vector
 *   SFX          name suffix: f32_base, f64_base, f32_avx2, ... f64_avx512
 *   TARGET_ATTR  the target attribute of the instruction set (empty for base)
 * and undefines them afterwards; FNN_ISA_BODY is undefined at the end.  The body leaves
 * these macros alone (it undefines only its own).  A family that wants other target
 * attributes defines FNN_ISA_TARGET_AVX2 / FNN_ISA_TARGET_AVX512 (undefined here too).
 */
#include "cpu_features.h"

#ifndef FNN_ISA_INSTANCES_H
#define FNN_ISA_INSTANCES_H

/* The vector types of every pass, fnn_isa_<type>_<level>, and their integer (mask)
 * vectors, fnn_isa_mask_<type>_<level>. */
#define FNN_ISA_VECTORS(level, bytes)                                                     \
    typedef float fnn_isa_f32_##level __attribute__((vector_size(bytes)));                \
    typedef double fnn_isa_f64_##level __attribute__((vector_size(bytes)));               \
    typedef int fnn_isa_mask_f32_##level __attribute__((vector_size(bytes)));             \
    typedef long long fnn_isa_mask_f64_##level __attribute__((vector_size(bytes)));
FNN_ISA_VECTORS(base, 16)
#if FNN_X86
FNN_ISA_VECTORS(avx2, 32)
FNN_ISA_VECTORS(avx512, 64)
#endif

#define FNN_ISA_CAT_(a, b) a##b
#define FNN_ISA_CAT(a, b) FNN_ISA_CAT_(a, b)
/* The family's tuning constant of the level being compiled (prefix##BASE/AVX2/AVX512). */
#define FNN_ISA_TUNE(prefix) FNN_ISA_CAT(prefix, FNN_ISA_LEVEL_UC)

/* `return fn_<sfx>_<level> args;` for the run-time instruction-set level `level`
 * (FNN_ISA_*): how a family's entry points call the pass compiled for the CPU. */
#if FNN_X86
#define FNN_ISA_DISPATCH(level, fn, sfx, args)                                            \
    switch (level) {                                                                      \
    case FNN_ISA_AVX512: return fn##_##sfx##_avx512 args;                                 \
    case FNN_ISA_AVX2: return fn##_##sfx##_avx2 args;                                     \
    default: return fn##_##sfx##_base args;                                               \
    }
#else
#define FNN_ISA_DISPATCH(level, fn, sfx, args) return fn##_##sfx##_base args;
#endif

#endif /* FNN_ISA_INSTANCES_H */

#ifndef FNN_ISA_TARGET_AVX2
#define FNN_ISA_TARGET_AVX2 FNN_TARGET_AVX2
#endif
#ifndef FNN_ISA_TARGET_AVX512
#define FNN_ISA_TARGET_AVX512 FNN_TARGET_AVX512
#endif

#define FNN_ISA_LEVEL base
#define FNN_ISA_LEVEL_UC BASE
#define FNN_ISA_BYTES 16
#define TARGET_ATTR
#include "isa_pass.h"

#if FNN_X86
#define FNN_ISA_LEVEL avx2
#define FNN_ISA_LEVEL_UC AVX2
#define FNN_ISA_BYTES 32
#define TARGET_ATTR FNN_ISA_TARGET_AVX2
#include "isa_pass.h"
#define FNN_ISA_LEVEL avx512
#define FNN_ISA_LEVEL_UC AVX512
#define FNN_ISA_BYTES 64
#define TARGET_ATTR FNN_ISA_TARGET_AVX512
#include "isa_pass.h"
#endif

#undef FNN_ISA_BODY
#undef FNN_ISA_TARGET_AVX2
#undef FNN_ISA_TARGET_AVX512
