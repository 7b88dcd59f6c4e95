"""Whether a small dense layer (``linear``, ``linear_backward``) runs in one call of plain
loops or as GEMMs.

``linear_backward`` of a small layer is three tiny products, ``linear`` one plus its
epilogue; through the GEMM dispatcher each pays a trip through Python and the blocked
kernel's packing, which for a few thousand multiply-adds costs more than the arithmetic.
kernels/cpu/dense.pyx's ``small_linear`` / ``small_linear_backward`` compute them in one
single-threaded call of plain loops (kernels/cpu/small_dense.h).

Which of the two is faster depends on the CPU, the shape and the threads, so it is
measured on the first layer of each shape class (sizes in half-octaves, the output mask or
activation and bias, dtype, threads) through fastnn's autotune cache, like the GEMM
engine; the prior (loops for at most LOOPS_PRIOR multiply-adds per product) decides when
autotuning is off or the machine is busy.
"""

from __future__ import annotations

from collections.abc import Callable

from fastnn import _autotune, _threads
from fastnn._backends.cpu._gemm import _bucket
from fastnn.kernels.cpu import dense as _k

__all__ = ["LOOPS_LIMIT", "LOOPS_PRIOR", "use_loops"]

#: Layers above this m * n * k always take the GEMMs (the loops' kernel refuses them).
LOOPS_LIMIT = _k.SMALL_LINEAR_WORK
#: The prior: loops up to this many multiply-adds per product (a few microseconds of
#: arithmetic on any core, against one GEMM dispatch of about as much).
LOOPS_PRIOR = 4096
#: (op, m, n, k, flags, dtype, threads, autotune generation) -> loops?
_memo: dict[tuple, bool] = {}
_MEMO_LIMIT = 4096


def use_loops(
    op: str, m: int, n: int, k: int, flags: tuple, dtype_char: str, timed: Callable
) -> bool:
    """Whether ``op`` ("linear" or "linear-backward") of the (m x k) layer with n outputs
    runs in plain loops; ``flags`` (small ints: the output mask, or the activation code and
    whether there is a bias) belong to the shape class.  On a new shape class ``timed()``
    gives the two ways to time, (loops, gemms), zero-argument."""
    threads = _threads.team_size()
    key = (op, m, n, k, flags, dtype_char, threads, _autotune.generation())
    choice = _memo.get(key)
    if choice is None:
        choice = _choose(key, *timed())
    return choice


def _choose(key: tuple, loops, gemms) -> bool:
    op, m, n, k, flags, dtype_char, threads = key[:7]
    prior = m * n * k <= LOOPS_PRIOR
    if not _autotune.autotune_enabled():
        return prior
    shape = f"{_bucket(m)}|{_bucket(n)}|{_bucket(k)}".replace(" ", "")
    marks = "".join(str(int(f)) for f in flags)
    name = f"{op}-loops|{shape}|{marks}|{dtype_char}|{threads}"
    if _threads.others_busy(threads):
        # a timing now would measure the other processes: the remembered choice or the
        # prior, and nothing new remembered
        remembered = _autotune.lookup(name)
        return prior if remembered not in ("loops", "gemms") else remembered == "loops"
    candidates = {"loops": loops, "gemms": gemms}
    if not prior:
        candidates = {"gemms": gemms, "loops": loops}
    # both ways take microseconds: timed again once per process (a cached verdict may
    # come from a busy moment or an older build)
    choice = _autotune.choose(name, candidates, repeats=5, remeasure=True)
    if len(_memo) >= _MEMO_LIMIT:
        _memo.clear()
    _memo[key] = choice == "loops"
    return choice == "loops"
