"""Thread count shared by every CPU kernel: ``set_num_threads`` / ``get_num_threads``.

The default is ``OMP_NUM_THREADS`` when it is set to a positive integer, otherwise the
number of CPUs this process may run on.  CPU kernels pass the count explicitly to their
OpenMP regions (``prange(..., num_threads=n)``) and limit BLAS with threadpoolctl, so the
two never oversubscribe the machine.
"""

from __future__ import annotations

import operator
import os

__all__ = ["get_num_threads", "set_num_threads", "default_num_threads"]

_num_threads: int | None = None


def default_num_threads() -> int:
    """``OMP_NUM_THREADS`` if set to a positive integer, else the CPUs available to us."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """The number of threads fastnn's CPU kernels use."""
    return _num_threads if _num_threads is not None else default_num_threads()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (>= 1) in every CPU kernel, BLAS calls included."""
    global _num_threads
    if isinstance(n, bool):
        raise TypeError(f"set_num_threads: n must be an int, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _num_threads = n
