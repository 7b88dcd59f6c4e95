"""Choosing a convolution algorithm, for every backend: a ranked list from the backend's
static prior, then -- with autotuning on -- a measurement of its first few candidates on
first use of a shape, remembered in the autotune cache (fastnn._autotune).

A backend supplies what only it knows: the candidates in the order its prior expects
them to be fastest, and a function that runs one pass with a named algorithm (on the
GPU, synchronised, so that the timing covers the work).  This module supplies the
policy: the key, how many candidates are timed, and when the prior alone decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fastnn import _autotune
from fastnn._geometry import ConvGeometry

__all__ = [
    "CPU_ONLY",
    "TIMED",
    "choose_conv",
    "conv_key",
    "refuse_cpu_only",
    "timed",
    "tuning_batch",
]

#: Convolution algorithms only the CPU backend implements.
CPU_ONLY = ("winograd", "winograd2", "winograd4", "winograd6")


def refuse_cpu_only(op: str, algo: str, backend: str) -> None:
    """A GPU backend's answer to an algorithm only the CPU implements: ValueError naming
    the algorithms that run on ``backend``."""
    if algo in CPU_ONLY:
        raise ValueError(
            f"{op}: algo={algo!r} is implemented on the cpu backend only; use 'auto', "
            f"'im2col' or 'direct' on {backend}"
        )


#: Candidates timed on first use, best-ranked first.  The prior rarely puts the winner
#: below third; timing every algorithm of every pass would multiply the first-use cost.
#: An engine variant ranked right after its algorithm ("im2col:blocked" after "im2col")
#: comes with it and does not count.
TIMED = 3
#: Batches larger than this are tuned on a slice of this many images, when the slice is
#: work enough (:data:`TUNING_FLOPS`): the ranking of the algorithms does not change with
#: the batch once every thread has several images of a layer that large.
TUNING_BATCH = 16
#: Floating-point operations a tuning slice does at least (if the batch has them): on a
#: small layer 16 images time the fixed costs, not the algorithm.  LeNet-5's C1 (1 -> 6,
#: 5x5 at 32x32, batch 128) ranked im2col first on 16 images (0.26 vs 0.28 ms) and ran
#: it at 2.5 ms on the whole batch, where direct took 1.8 ms (lscpu: Intel(R) Xeon(R)
#: Processor @ 2.80GHz, 2 threads).
TUNING_FLOPS = 1.5e8


def conv_key(
    backend: str,
    op: str,
    which: str,
    geom: ConvGeometry,
    dtype: Any,
    threads: int,
    device: str = "",
) -> str:
    """The cache key of one pass ("forward", "input" or "weight") of one convolution: op,
    the 2-D geometry, dtype, threads, and the device where it matters (a GPU's model)."""
    parts = [
        f"{backend}:{op}",
        f"pass={which}",
        "plane=" + ",".join(str(v) for v in geom.plane),
        f"dtype={np.dtype(dtype)}",
        f"threads={threads}",
    ]
    if device:
        parts.append(f"device={device}")
    return "|".join(parts)


def tuning_batch(batch: int, flops_per_image: float = 0.0) -> int:
    """How many images of a batch the measurement runs on: :data:`TUNING_BATCH`, or as
    many as make :data:`TUNING_FLOPS` of work, at most the whole batch."""
    enough = math.ceil(TUNING_FLOPS / flops_per_image) if flops_per_image > 0 else 0
    return min(batch, max(TUNING_BATCH, enough))


def timed(ranked: Sequence[str]) -> list[str]:
    """The candidates of ``ranked`` that "auto" times: the first :data:`TIMED`, each with
    the engine variant ranked right after it (``name:variant`` after ``name``)."""
    out: list[str] = []
    algorithms = 0
    for i, name in enumerate(ranked):
        if i > 0 and name.startswith(f"{ranked[i - 1]}:"):  # an engine variant
            if ranked[i - 1] in out:
                out.append(name)
            continue
        if algorithms == TIMED:
            break
        out.append(name)
        algorithms += 1
    return out


def choose_conv(
    backend: str,
    op: str,
    which: str,
    geom: ConvGeometry,
    dtype: Any,
    threads: int,
    ranked: Sequence[str],
    run: Callable[[str], Any],
    device: str = "",
) -> str:
    """The algorithm for one pass: ``ranked[0]`` (the prior's favourite) when autotuning
    is off or there is no choice; else the fastest of the first :data:`TIMED` candidates,
    measured once per key with ``run(name)`` and remembered."""
    if not ranked:
        raise ValueError(f"{op}: no algorithm can run this convolution")
    if len(ranked) == 1 or not _autotune.autotune_enabled():
        return ranked[0]
    key = conv_key(backend, op, which, geom, dtype, threads, device)
    candidates = {name: (lambda name=name: run(name)) for name in timed(ranked)}
    return _autotune.choose(key, candidates)
