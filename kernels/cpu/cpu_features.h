/* Run-time CPU feature detection and target attributes, for every CPU kernel.
 *
 * The default build is portable (no -march flags).  Functions that want AVX2/FMA or
 * AVX-512 are compiled a second time with one of the target attributes below and chosen
 * at run time with fnn_cpu_has_*().  Which level a kernel family actually runs is not
 * decided here: the families measure their variants once per CPU (fastnn/_isa.py) and
 * pass the level in; these checks only cap a request at what the CPU can execute.
 *
 * This is the one place that asks the CPU what it supports; kernels include it instead
 * of calling __builtin_cpu_supports themselves.
 */
#ifndef FNN_CPU_FEATURES_H
#define FNN_CPU_FEATURES_H

#include <stddef.h>
#include <stdlib.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_X86 1
#define FNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FNN_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))

static inline int fnn_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static inline int fnn_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return fnn_cpu_has_avx2() && __builtin_cpu_supports("avx512f");
}
#else
#define FNN_X86 0
#define FNN_TARGET_AVX2
#define FNN_TARGET_AVX512
static inline int fnn_cpu_has_avx2(void) { return 0; }
static inline int fnn_cpu_has_avx512(void) { return 0; }
#endif

/* Instruction-set levels, as every kernel family numbers them. */
#define FNN_ISA_BASE 0
#define FNN_ISA_AVX2 1
#define FNN_ISA_AVX512 2

/* The best level this CPU can execute. */
static inline int fnn_cpu_best_isa(void) {
    return fnn_cpu_has_avx512() ? FNN_ISA_AVX512 : fnn_cpu_has_avx2() ? FNN_ISA_AVX2
                                                                      : FNN_ISA_BASE;
}

/* 64-byte aligned memory (a cache line, an AVX-512 vector). */
static inline void* fnn_aligned_alloc_64(size_t bytes) {
    void* p = NULL;
#if defined(_WIN32)
    p = _aligned_malloc(bytes ? bytes : 64, 64);
#else
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) p = NULL;
#endif
    return p;
}

static inline void fnn_aligned_free_64(void* p) {
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

#endif /* FNN_CPU_FEATURES_H */
