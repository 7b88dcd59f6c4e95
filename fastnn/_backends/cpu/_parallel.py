"""When a CPU kernel opens an OpenMP region: the measured break-even.

Every kernel module states its work thresholds for threads (elements a thread must get
before waking it pays for the fork-join) as priors, set on one development CPU.  The
break-even moves with the CPU and its load: it is the fork-join time divided by the time a
thread takes per element.  :func:`calibrate` measures both once per process, on the first
use of the CPU backend (about a millisecond): the cheapest OpenMP fork-join at the thread
count in force, and the relu kernel's time per element on one thread (a streaming kernel,
as are most of those whose thresholds are scaled); then every module's thresholds are
scaled by the measured break-even over the prior's (kernels/cpu/parallel_scale.h).

When other processes keep CPUs busy at that moment the priors stand (scale 1): a
fork-join timed then measures the neighbours.  ``FASTNN_PARALLEL_SCALE`` sets the scale
instead of measuring it (1 = the priors).
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from fastnn import _threads
from fastnn._machine import best_seconds
from fastnn._threads import get_num_threads

#: The kernel modules whose thresholds the scale multiplies.
MODULES = (
    "activation",
    "backprop",
    "batch_norm",
    "conv_bias",
    "dense",
    "elementwise",
    "gemm",
    "loss",
    "optim",
    "pool_adaptive",
    "pool_avg",
    "pool_max",
    "softmax",
)
#: The relu threshold of kernels/cpu/activation.pyx (PARALLEL_MIN_CHEAP): the break-even,
#: in elements, that the priors assume.
PRIOR_BREAK_EVEN = 1 << 16
#: The scale stays within these bounds (a wild measurement on a busy machine must not
#: turn threads off, or on, for everything).
SCALE_RANGE = (1 / 8, 8.0)
#: Elements of the relu timed for the per-element cost (in L2 on any current CPU).
PROBE_ELEMENTS = 1 << 15

_scale: float | None = None
#: Called with the scale whenever it is set: other compiled copies of the thresholds
#: (fastnn.jax's XLA handler library) follow the CPU backend's.
SCALE_HOOKS: list = []


def scale() -> float:
    """The scale in force (measuring it on the first call)."""
    return _scale if _scale is not None else calibrate()


def break_even(fork_join: float, per_element: float) -> float:
    """Elements from which two threads beat one on a streaming kernel: the half a second
    thread saves, ``n * per_element / 2``, must exceed one fork-join."""
    return 2.0 * fork_join / per_element


def calibrate() -> float:
    """Measure the break-even, set every module's scale, and return the scale."""
    global _scale
    forced = os.environ.get("FASTNN_PARALLEL_SCALE", "").strip()
    if forced:
        value = float(forced)
    elif _threads.others_busy(get_num_threads()):
        # Other processes hold CPUs now: a fork-join timed now measures them (it came out
        # 25x the quiet one here), and teams shrink under load anyway (fastnn._threads).
        value = 1.0
    else:
        from fastnn.kernels.cpu import activation, gemm

        fork_join = gemm.fork_join_seconds(max(2, get_num_threads()), 64)
        x = np.ones(PROBE_ELEMENTS, dtype=np.float32)
        out = np.empty_like(x)
        per_element = best_seconds(lambda: activation.activate(activation.RELU, x, 1, out), 5, True)
        per_element /= PROBE_ELEMENTS
        value = break_even(fork_join, per_element) / PRIOR_BREAK_EVEN
    low, high = SCALE_RANGE
    value = min(high, max(low, value))
    set_scale(value)
    return value


def set_scale(value: float) -> None:
    """Set every kernel module's threshold scale to ``value`` (1 = the priors)."""
    global _scale
    if not value > 0:
        raise ValueError(f"the parallel scale must be positive, got {value!r}")
    for name in MODULES:
        importlib.import_module(f"fastnn.kernels.cpu.{name}").set_parallel_scale(value)
    _scale = value
    for hook in SCALE_HOOKS:
        hook(value)
