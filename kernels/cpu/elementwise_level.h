/* The instruction-set level the elementwise loops (FNN_MULTIVERSION, activation_loops.h)
 * run at: activations, softmax, losses, batch norm, the sensitivity ops, dropout, the
 * adaptive pools and the dense reductions.
 *
 * Each loop is compiled for the portable baseline, AVX2/FMA and AVX-512F; which of them
 * runs is chosen by measurement once per CPU (fastnn/_isa.py's "elementwise" family: an
 * exp-heavy mix timed at every level), not by what the CPU supports: AVX-512 doubles the
 * lanes per instruction, which pays on a core with two 512-bit FMA ports and may not on
 * one that splits them (AMD Zen 4).  Until then the prior, AVX2, runs.  A request above
 * what the CPU executes is capped at run time.
 *
 * The variable is static: every extension module that includes this header has its own
 * copy, set through its `set_elementwise_level` function.
 */
#ifndef FNN_ELEMENTWISE_LEVEL_H
#define FNN_ELEMENTWISE_LEVEL_H

#include "cpu_features.h"

static int fnn_elementwise_level = FNN_ISA_AVX2;

static inline void fnn_set_elementwise_level(int level) {
    fnn_elementwise_level = level < FNN_ISA_BASE     ? FNN_ISA_BASE
                            : level > FNN_ISA_AVX512 ? FNN_ISA_AVX512
                                                     : level;
}

static inline int fnn_get_elementwise_level(void) { return fnn_elementwise_level; }

#endif /* FNN_ELEMENTWISE_LEVEL_H */
