"""``algo="auto"`` for the CPU convolution: a heuristic drawn from measurements, or, with
``fastnn.autotune(True)``, timing both algorithms once per problem (fastnn._autotune).

Each pass is chosen on its own -- the forward pass, the input gradient and the weight
gradient -- since they favour different algorithms on the same layer.  What the
measurements (single-thread CPU time per algorithm on the shapes of
bench/scripts/conv_table.py) showed:

- forward: the direct kernel wins everywhere except on pointwise (1x1, stride 1, no
  padding) layers with many input channels, where im2col is no copy at all and the whole
  convolution is one GEMM;
- input gradient: direct wins too, except on pointwise layers with many output channels
  and on large images with many channels (VGG's 224x224x64), where the direct kernel's
  packed gradient no longer fits the L2 cache;
- weight gradient: direct wins with few input channels per group (up to ~32); beyond,
  im2col's GEMM runs closer to peak than the direct kernel's long reductions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastnn import _autotune
from fastnn._args import ConvGeometry

__all__ = ["PASSES", "autotune_key", "heuristic", "pick"]

ALGOS = ("im2col", "direct")
PASSES = ("forward", "input", "weight")

#: Input channels per group up to which the direct weight gradient wins.
DIRECT_WEIGHT_MAX_CHANNELS = 32
#: Channels from which a pointwise layer is a GEMM worth handing to BLAS.
POINTWISE_GEMM_CHANNELS = 32
#: Padded input positions beyond which the direct input gradient leaves the L2 cache.
LARGE_IMAGE = 200 * 200


def _pointwise(geom: ConvGeometry) -> bool:
    return (
        all(k == 1 for k in geom.kernel)
        and all(s == 1 for s in geom.stride)
        and all(p == (0, 0) for p in geom.pad)
    )


def heuristic(geom: ConvGeometry, which: str = "forward") -> str:
    """The algorithm expected to be faster for one pass ("forward", "input" or "weight"
    gradient) of ``geom``, without running anything."""
    cg = geom.in_channels // geom.groups
    kg = geom.out_channels // geom.groups
    if which == "forward":
        return "im2col" if _pointwise(geom) and cg >= POINTWISE_GEMM_CHANNELS else "direct"
    if which == "input":
        if _pointwise(geom) and kg >= POINTWISE_GEMM_CHANNELS:
            return "im2col"
        padded = 1
        for size, (before, after) in zip(geom.in_size, geom.pad):
            padded *= size + before + after
        large = padded >= LARGE_IMAGE and cg >= 32 and kg >= 32
        return "im2col" if large else "direct"
    return "direct" if cg <= DIRECT_WEIGHT_MAX_CHANNELS and not _pointwise(geom) else "im2col"


def autotune_key(op: str, geom: ConvGeometry, dtype: Any, threads: int, which: str) -> str:
    """The autotune cache key: op and pass, shapes, parameters, dtype, threads."""
    parts = [
        f"cpu:{op}",
        f"pass={which}",
        f"x={geom.input_shape}",
        f"w={geom.weight_shape}",
        f"s={geom.stride}",
        f"p={geom.pad}",
        f"d={geom.dilation}",
        f"g={geom.groups}",
        f"dtype={dtype}",
        f"threads={threads}",
    ]
    return "|".join(parts).replace(" ", "")


def pick(
    algo: str,
    op: str,
    geom: ConvGeometry,
    dtype: Any,
    threads: int,
    run: Callable[[str], Any],
    which: str = "forward",
) -> str:
    """The algorithm for one pass: ``algo`` itself unless it is "auto"; then the autotuned
    choice when autotuning is on (``run(name)`` runs the pass with one candidate), else
    the heuristic."""
    if algo != "auto":
        return algo
    if _autotune.autotune_enabled():
        key = autotune_key(op, geom, dtype, threads, which)
        return _autotune.choose(key, {name: (lambda name=name: run(name)) for name in ALGOS})
    return heuristic(geom, which)
