# The measured tile speed of the blocked GEMM (gemm_blocked.h's fnn_gemm_t48_time), the
# last-level cache size it plans with (fnn_gemm_llc_bytes), the bytes of B panels it runs
# past each A micro-panel (fnn_gemm_b_block_bytes) and its measured prefetch
# distance for few-row products (fnn_gemm_few_prefetch) and the widest product with a
# transposed A that runs column tiles (fnn_gemm_narrow_t_n): setters and getters
# included by each module that compiles the GEMM in, since every module has its own copy;
# fastnn/_backends/cpu/_gemm.py sets every module's.

from gemm_blocked cimport (
    fnn_gemm_b_block_bytes,
    fnn_gemm_few_prefetch,
    fnn_gemm_llc_bytes,
    fnn_gemm_narrow_t_n,
    fnn_gemm_t48_time,
)


def set_t48_time(double ratio):
    """Set the time per multiply-add of the AVX-512 3-vector register tile relative to the
    2-vector one (> 0; the tile for each product follows from it and the padding)."""
    global fnn_gemm_t48_time
    if not ratio > 0:
        raise ValueError(f"set_t48_time: the ratio must be > 0, got {ratio}")
    fnn_gemm_t48_time = ratio


def t48_time():
    """This module's time per multiply-add of the 3-vector tile relative to the 2-vector."""
    return fnn_gemm_t48_time


def set_llc_bytes(double size):
    """Set the last-level cache size in bytes (> 0) that decides whether a few-row
    product reads B in place (B in cache) or packs it (B from memory)."""
    global fnn_gemm_llc_bytes
    if not size > 0:
        raise ValueError(f"set_llc_bytes: the size must be > 0, got {size}")
    fnn_gemm_llc_bytes = size


def llc_bytes():
    """This module's last-level cache size in bytes (see set_llc_bytes)."""
    return fnn_gemm_llc_bytes


def set_few_prefetch(Py_ssize_t rows):
    """Set how many rows of B ahead a few-row product that reads B in place prefetches
    (0: none; at most 64)."""
    global fnn_gemm_few_prefetch
    if not 0 <= rows <= 64:
        raise ValueError(f"set_few_prefetch: rows must be in [0, 64], got {rows}")
    fnn_gemm_few_prefetch = rows


def few_prefetch():
    """This module's prefetch distance for few-row products, in rows of B."""
    return fnn_gemm_few_prefetch


def set_b_block_bytes(double size):
    """Set the bytes of packed B panels a product of several row blocks runs past each A
    micro-panel (> 0; about half the L2 cache)."""
    global fnn_gemm_b_block_bytes
    if not size > 0:
        raise ValueError(f"set_b_block_bytes: the size must be > 0, got {size}")
    fnn_gemm_b_block_bytes = size


def b_block_bytes():
    """This module's bytes of B panels per A micro-panel (see set_b_block_bytes)."""
    return fnn_gemm_b_block_bytes


def set_narrow_t_n(Py_ssize_t n):
    """Set the widest product with a transposed A (unit stride down op(A)'s columns) that
    runs column tiles instead of packed tiles (>= 0; 0: never)."""
    global fnn_gemm_narrow_t_n
    if n < 0:
        raise ValueError(f"set_narrow_t_n: the width must be >= 0, got {n}")
    fnn_gemm_narrow_t_n = n


def narrow_t_n():
    """This module's widest product with a transposed A that runs column tiles."""
    return fnn_gemm_narrow_t_n
