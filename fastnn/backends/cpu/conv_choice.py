"""``algo="auto"`` for the CPU convolution: a heuristic drawn from measurements, or, with
``fastnn.autotune(True)``, timing both algorithms once per problem (fastnn._autotune).

The heuristic (see bench/scripts/conv_table.py for the measurements behind it): the
direct kernel wins when the reduction per output (Cg * R * S) is short -- few input
channels per group, depthwise layers, 1-D signals with a handful of channels -- because
im2col then copies as much as the GEMM computes and the GEMM is too thin to run fast;
im2col + GEMM wins on wide layers, where BLAS runs near peak.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastnn import _autotune
from fastnn._args import ConvGeometry

__all__ = ["autotune_key", "heuristic", "pick"]

ALGOS = ("im2col", "direct")

#: im2col's GEMM needs a reduction this long (Cg * R * S) to beat the direct kernel.
DIRECT_MAX_REDUCTION = 64


def heuristic(geom: ConvGeometry) -> str:
    """The algorithm expected to be faster for ``geom``, without running anything."""
    cg = geom.in_channels // geom.groups
    reduction = cg
    for k in geom.kernel:
        reduction *= k
    if reduction <= DIRECT_MAX_REDUCTION or cg <= 4:
        return "direct"
    return "im2col"


def autotune_key(op: str, geom: ConvGeometry, dtype: Any, threads: int, extra: str = "") -> str:
    """The autotune cache key: op, shapes, parameters, dtype, threads (and ``extra``)."""
    parts = [
        f"cpu:{op}",
        f"x={geom.input_shape}",
        f"w={geom.weight_shape}",
        f"s={geom.stride}",
        f"p={geom.pad}",
        f"d={geom.dilation}",
        f"g={geom.groups}",
        f"dtype={dtype}",
        f"threads={threads}",
    ]
    if extra:
        parts.append(extra)
    return "|".join(parts).replace(" ", "")


def pick(
    algo: str,
    op: str,
    geom: ConvGeometry,
    dtype: Any,
    threads: int,
    run: Callable[[str], Any],
    extra: str = "",
) -> str:
    """The algorithm to run: ``algo`` itself unless it is "auto"; then the autotuned
    choice when autotuning is on (``run(name)`` runs one candidate), else the heuristic."""
    if algo != "auto":
        return algo
    if _autotune.autotune_enabled():
        key = autotune_key(op, geom, dtype, threads, extra)
        return _autotune.choose(key, {name: (lambda name=name: run(name)) for name in ALGOS})
    return heuristic(geom)
