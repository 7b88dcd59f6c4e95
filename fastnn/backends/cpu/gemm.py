"""GEMM on the CPU: fastnn's blocked kernel or SciPy's BLAS, whichever is faster for the
shape, and the fused epilogues (bias + activation, multiply by f'(u)) the dense ops need.

Both engines live in kernels/cpu/gemm.pyx.  :func:`prefers_blas` encodes where each wins
(measured with bench/scripts/cpu_dense.py gemm-engines); :func:`matmul` is the one entry
point the dense and backprop wrappers use.
"""

from __future__ import annotations

import time

import numpy as np

from fastnn import _isa
from fastnn._dispatch import register
from fastnn._threads import (
    blas_for_call,
    get_num_threads,
    limit_blas_threads,
    sync_blas_threads,
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
    """Measure where a second GEMM thread starts to pay on this machine, and set it.

    A split into two halves saves half the single-thread time and costs one fork-join,
    so it pays from ``flops = 2 * fork_join * rate`` (rate: one thread's blocked-GEMM
    FLOP/s on a 96^3 product).  Both are measured in about a millisecond, once per
    process, on the first product; the result is clamped to FLOPS_PER_THREAD_RANGE."""
    global _calibrated
    _calibrated = True
    threads = max(2, get_num_threads())
    overhead = _k.fork_join_seconds(threads, 64)
    a = np.ones((96, 96), dtype=np.float32)
    level = _isa.level_code("gemm")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        _k.blocked(a, a, None, 1.0, 0.0, False, False, 0, None, None, 1, level)
        best = min(best, time.perf_counter() - start)
    rate = 2.0 * 96**3 / best
    low, high = FLOPS_PER_THREAD_RANGE
    flops = min(high, max(low, 2.0 * overhead * rate))
    _k.set_flops_per_thread(flops)
    return flops


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
    threads = get_num_threads()
    if not _calibrated and threads > 1:
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


@register("gemm", "cpu")
def gemm(a, b, c, alpha: float, beta: float, trans_a: bool, trans_b: bool) -> np.ndarray:
    return matmul(a, b, trans_a=trans_a, trans_b=trans_b, c=c, alpha=alpha, beta=beta)
