/* The measured scale of the CPU kernels' work thresholds for threads.
 *
 * Each kernel module states, as a prior, how much work (elements) a thread must get before
 * waking it pays for the OpenMP fork-join; those priors were set on one CPU.  The break-even
 * moves with the CPU (fork-join latency, per-element speed) and with load, so fastnn
 * measures it once per process (fastnn/_backends/cpu/_parallel.py: fork-join time over a
 * streaming kernel's time per element) and sets every module's copy of this scale; a
 * threshold in force is prior * scale.
 *
 * The variable is static: every extension module that includes this header has its own
 * copy, set through its `set_parallel_scale` function.
 */
#ifndef FNN_PARALLEL_SCALE_H
#define FNN_PARALLEL_SCALE_H

#include <stddef.h>

static double fnn_parallel_scale = 1.0;

static inline void fnn_set_parallel_scale(double scale) { fnn_parallel_scale = scale; }

/* A work threshold stated for the reference break-even, scaled to this process's. */
static inline ptrdiff_t fnn_scaled_min(ptrdiff_t prior) {
    return (ptrdiff_t)((double)prior * fnn_parallel_scale);
}

#endif /* FNN_PARALLEL_SCALE_H */
