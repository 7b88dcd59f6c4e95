# The measured tile speed of the blocked GEMM (gemm_blocked.h's fnn_gemm_t48_time): a
# setter and getter included by each module that compiles the GEMM in, since every module
# has its own copy; fastnn/_backends/cpu/_gemm.py measures it once per CPU and sets every
# module's.

from gemm_blocked cimport fnn_gemm_t48_time


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
