"""GEMM on the CPU: fastnn's blocked kernel or SciPy's BLAS, whichever is faster for the
shape, and the fused epilogues (bias + activation, multiply by f'(u)) the dense ops need.

Both engines live in kernels/cpu/gemm.pyx.  :func:`prefers_blas` encodes where each wins
(measured with bench/scripts/cpu_dense.py gemm-engines); :func:`matmul` is the one entry
point the dense and backprop wrappers use.
"""

from __future__ import annotations

import numpy as np

from fastnn import _isa
from fastnn._machine import best_seconds
from fastnn._threads import (
    blas_for_call,
    get_num_threads,
    limit_blas_threads,
    sync_blas_threads,
    team_size,
)
from fastnn.kernels.cpu import gemm as _k

sync_blas_threads()


#: The best instruction set the blocked kernel can run with on this CPU ("avx2",
#: "avx512", ...); the one it runs is measured once per CPU (fastnn._isa, family "gemm").
VARIANT = _k.variant_name()


#: Bounds of the measured flops-per-thread threshold (a busy or odd machine can give a
#: wild measurement; outside these a split is surely worth it, or surely not).
FLOPS_PER_THREAD_RANGE = (2.0**16, 2.0**23)
_calibrated = False


def calibrate() -> float:
    """Measure, once per process on the first product, where this machine's GEMM paths
    cross over, and set them:

    - the flops from which a second thread pays: a split into two halves saves half the
      single-thread time and costs one fork-join, so it pays from
      ``2 * fork_join * rate`` (rate: one thread's blocked-GEMM FLOP/s on a 96^3
      product), clamped to FLOPS_PER_THREAD_RANGE;
    - the longest reduction the unpacked path runs (:func:`_measure_short_k`).

    Together a few milliseconds.  Returns the flops per thread."""
    global _calibrated
    _calibrated = True
    level = _isa.level_code("gemm")
    overhead = _k.fork_join_seconds(max(2, get_num_threads()), 64)  # the cap: calibration
    a = np.ones((96, 96), dtype=np.float32)
    args = (a, a, None, 1.0, 0.0, False, False, 0, None, None, 1, level)
    rate = 2.0 * 96**3 / best_seconds(lambda: _k.blocked(*args))
    low, high = FLOPS_PER_THREAD_RANGE
    flops = min(high, max(low, 2.0 * overhead * rate))
    _k.set_flops_per_thread(flops)
    _k.set_short_k(_measure_short_k(level))
    return flops


#: Reduction lengths the unpacked-path measurement tries, shortest first.
SHORT_K_TRIALS = (1, 2, 4, 8, 16)


def _measure_short_k(level: int) -> int:
    """The longest k in SHORT_K_TRIALS at which a one-thread 512 x 512 product runs
    faster unpacked than blocked, trying the lengths in order and stopping at the first
    where packing wins (0: never; then only k = 0 products, which read nothing, run
    unpacked)."""
    out = 0
    for k in SHORT_K_TRIALS:
        a = np.ones((512, k), dtype=np.float32)
        b = np.ones((k, 512), dtype=np.float32)

        def run(a=a, b=b) -> None:
            _k.blocked(a, b, None, 1.0, 0.0, False, False, 0, None, None, 1, level)

        _k.set_short_k(k)
        unpacked = best_seconds(run)
        _k.set_short_k(k - 1)
        packed = best_seconds(run)
        if unpacked >= packed:
            break
        out = k
    return out


def prefers_blas(m: int, n: int, k: int, epilogue: bool) -> bool:
    """Whether SciPy's BLAS beats the blocked kernel for an (m x k) @ (k x n) product.

    Measured on the development machine (AVX2, Zen 4), one thread, CPU time, interleaved
    (bench/scripts/cpu_dense.py gemm-engines --threads 1 --clock thread): the blocked
    kernel is within noise of OpenBLAS on most shapes and ahead on small, skinny and
    transposed ones (few rows of A: 35 x 8457 x 2560 +28%; 512^3 +10%; 4096 x 128 x 4096
    TN +14%); OpenBLAS is ahead by 7-11% on large squares
    (1536^3, 2048^3).  A fused epilogue saves the blocked kernel one pass over the
    result, worth ~40 / K of a GEMM's time, so with one BLAS needs a deeper K to win.
    Without AVX2 the blocked kernel is a portable build with no tuning: BLAS, with its
    per-CPU kernels, wins there.  A result with one row or one column is a matrix-vector
    product, which BLAS runs with gemv (1024 x 1024 @ 1024 x 1: 29 us against the
    blocked kernel's 480 us, whose register tile is 1/NR full).
    """
    if not _k.blas_fits(m, n, k):
        return False
    if min(m, n) == 1:  # a matrix-vector product: BLAS's gemv, not a GEMM register tile
        return True
    if VARIANT == "generic":
        return m * n * k >= 32**3
    return min(m, n) >= 1024 and k >= (1024 if epilogue else 512)


def matmul(
    a: np.ndarray,
    b: np.ndarray,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    c: np.ndarray | None = None,
    alpha: float = 1.0,
    beta: float = 0.0,
    act: int = 0,
    bias: np.ndarray | None = None,
    u: np.ndarray | None = None,
) -> np.ndarray:
    """A new C-contiguous ``alpha * op(a) @ op(b) + beta * c`` followed by the epilogue:
    ``act(. + bias)``, or ``. * act'(u)`` when ``u`` is given (act is a kernel code)."""
    m = a.shape[1] if trans_a else a.shape[0]
    k = a.shape[0] if trans_a else a.shape[1]
    n = b.shape[0] if trans_b else b.shape[1]
    threads = team_size()
    if not _calibrated:
        calibrate()
    epilogue = act != 0 or bias is not None or u is not None
    if prefers_blas(m, n, k, epilogue):
        if _k.blas_threads(m, n, k, threads) == 1:  # one call, outside any parallel region
            blas_for_call()
            out = _k.blas(a, b, c, alpha, beta, trans_a, trans_b, 1)
        else:
            # Our threads each make a one-thread BLAS call on a block of the result: an
            # OpenBLAS pool left spinning after a threaded call would slow the kernels after.
            with limit_blas_threads():
                out = _k.blas(a, b, c, alpha, beta, trans_a, trans_b, threads)
        if epilogue:
            _k.epilogue(out, act, bias, u, threads)
        return out
    level = _isa.level_code("gemm")  # measured once per CPU (fastnn._isa)
    return _k.blocked(a, b, c, alpha, beta, trans_a, trans_b, act, bias, u, threads, level)
