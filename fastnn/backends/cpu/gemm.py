"""GEMM on the CPU: fastnn's blocked kernel or SciPy's BLAS, whichever is faster for the
shape, and the fused epilogues (bias + activation, multiply by f'(u)) the dense ops need.

Both engines live in kernels/cpu/gemm.pyx.  :func:`prefers_blas` encodes where each wins
(measured with bench/scripts/gemm_shapes.py); :func:`matmul` is the one entry point the
dense and backprop wrappers use.
"""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register
from fastnn._threads import get_num_threads, sync_blas_threads
from fastnn.kernels.cpu import gemm as _k

sync_blas_threads()


def prefers_blas(m: int, n: int, k: int, epilogue: bool) -> bool:
    """Whether SciPy's BLAS beats the blocked kernel for an (m x k) @ (k x n) product.

    The blocked kernel wins where OpenBLAS pays fixed costs (small and skinny products)
    and wherever an epilogue would cost BLAS an extra pass over the result.
    """
    if not _k.blas_fits(m, n, k):
        return False
    return False


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
    epilogue = act != 0 or bias is not None or u is not None
    if prefers_blas(m, n, k, epilogue):
        out = _k.blas(a, b, c, alpha, beta, trans_a, trans_b)
        if epilogue:
            _k.epilogue(out, act, bias, u, threads)
        return out
    return _k.blocked(a, b, c, alpha, beta, trans_a, trans_b, act, bias, u, threads)


@register("gemm", "cpu")
def gemm(a, b, c, alpha: float, beta: float, trans_a: bool, trans_b: bool) -> np.ndarray:
    return matmul(a, b, trans_a=trans_a, trans_b=trans_b, c=c, alpha=alpha, beta=beta)
