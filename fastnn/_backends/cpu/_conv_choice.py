"""The CPU's prior for ``algo="auto"``: the algorithms ranked by how fast they are
expected to be for one pass of one convolution, without running anything.

With autotuning on (the default), fastnn._selection times the first few of this ranking
on first use of a shape and remembers the winner; with it off, the first one runs.  Each
pass -- the forward pass, the input gradient and the weight gradient -- is ranked on its
own, since they favour different algorithms on the same layer.

What the measurements (bench/scripts/conv_table.py and model_convs.py) showed:

- the channel-blocked direct kernel (_conv_blocked: output channels in SIMD lanes,
  broadcast inputs) runs strided, pointwise, large-kernel and grouped layers near the
  FMA peak, all three passes, once there are enough channels to fill its lanes; it leads
  unless Winograd applies.
- depthwise layers (groups = input channels) run their own direct kernel
  (_conv_depthwise), a bandwidth-bound stream per plane that im2col cannot approach.
- Winograd F(4x4, 3x3) (F(2x2) on maps under 4x4) is fastest on 3x3 stride-1 layers with
  enough channels on both sides: it does a quarter of the multiplies, and its GEMMs over
  channels run near peak.  With few channels its transforms dominate.
- forward otherwise: the direct kernel wins everywhere except on pointwise (1x1, stride
  1, no padding) layers with many input channels, where im2col is no copy at all and the
  whole convolution is one GEMM;
- input gradient: direct wins too, except on pointwise layers with many output channels
  and on large images with many channels (VGG's 224x224x64), where the direct kernel's
  packed gradient no longer fits the L2 cache;
- im2col's GEMMs run on SciPy's BLAS ("im2col") or on fastnn's blocked GEMM
  ("im2col:blocked", ranked right after it): neither wins everywhere (pointwise layers'
  gradients, 1 thread, AMD EPYC: the blocked GEMM 62-104 GFLOP/s, OpenBLAS 53-99,
  either ahead by up to 30% depending on the shape), so the tuner times both;
- weight gradient: direct wins with few input channels per group (up to ~32); beyond,
  im2col's GEMM runs closer to peak than the direct kernel's long reductions; Winograd's
  (GEMMs over tiles of the transformed grad_output and input) beats both on 3x3
  stride-1 layers with enough channels, except on tiny maps with many channels, where
  there are too few tiles to reduce over (the tuner catches those).
"""

from __future__ import annotations

from fastnn._backends.cpu._conv_blocked import NAME as BLOCKED
from fastnn._backends.cpu._conv_depthwise import LANES, PLANES, prefer_lanes, single_channel
from fastnn._backends.cpu._conv_im2col import BLOCKED_GEMM
from fastnn._backends.cpu._conv_winograd import default_tile
from fastnn._geometry import ConvGeometry, winograd_unsupported

__all__ = ["PASSES", "blocked_fills_lanes", "heuristic", "ranked"]

PASSES = ("forward", "input", "weight")

#: Input channels per group up to which the direct weight gradient wins.
DIRECT_WEIGHT_MAX_CHANNELS = 32
#: Channels from which a pointwise layer is a GEMM worth handing to BLAS.
POINTWISE_GEMM_CHANNELS = 32
#: Padded input positions beyond which the direct input gradient leaves the L2 cache.
LARGE_IMAGE = 200 * 200
#: Channels on each side (reduced over, and produced) from which Winograd leads.
WINOGRAD_MIN_CHANNELS = 16
#: Channels produced per group from which the channel-blocked kernel leads: they fill
#: its SIMD lanes (16 floats on AVX-512).
BLOCKED_MIN_CHANNELS = 16


def blocked_fills_lanes(geom: ConvGeometry, which: str = "forward") -> bool:
    """Whether a pass produces enough channels per group for the channel-blocked kernel,
    which puts them in SIMD lanes (input channels for the input gradient, output
    channels otherwise)."""
    p = geom.plane
    return (p.cg if which == "input" else p.kg) >= BLOCKED_MIN_CHANNELS


def _pointwise(geom: ConvGeometry) -> bool:
    return geom.plane.pointwise


def heuristic(geom: ConvGeometry, which: str = "forward") -> str:
    """The GEMM-or-direct choice for one pass ("forward", "input" or "weight" gradient)
    of ``geom``: the older of the two algorithms expected to be faster."""
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


def ranked(geom: ConvGeometry, which: str = "forward") -> list[str]:
    """Every algorithm that can run this pass, best expected first.  A layer of a single
    input channel adds the depthwise kernel (:data:`PLANES`): first for its weight
    gradient (on the AMD EPYC, two threads, time against the best other algorithm:
    256 x 1 x 28 x 28 -> 32 3x3 0.71, 128 x 1 x 32 x 32 -> 6 5x5 0.55, 64 x 1 x 1000 -> 16
    k7 0.97), else as a variant timed beside "direct"."""
    order = _ranked(geom, which)
    if single_channel(geom):
        order.insert(0 if which == "weight" else order.index("direct") + 1, PLANES)
    return order


def _ranked(geom: ConvGeometry, which: str) -> list[str]:
    if geom.groups == geom.in_channels and geom.groups > 1:  # depthwise: its own kernels
        variants = [LANES, "direct"] if prefer_lanes(geom) else ["direct", LANES]
        return [*variants, "im2col"]
    first = heuristic(geom, which)
    order = [first, "direct" if first == "im2col" else "im2col"]
    order.insert(order.index("im2col") + 1, BLOCKED_GEMM)
    p = geom.plane
    order.insert(0 if blocked_fills_lanes(geom, which) else len(order), BLOCKED)
    if winograd_unsupported(geom) is not None:
        return order
    if which == "input":  # grad_output (kg channels) convolved into cg channels
        reduced, produced, hw = p.kg, p.cg, (p.h, p.w)
    else:  # forward; the weight gradient reduces over tiles of the output plane
        reduced, produced, hw = p.cg, p.kg, (p.ho, p.wo)
    m = default_tile(*hw)
    tiles = [f"winograd{m}", f"winograd{2 if m == 4 else 4}"]
    if reduced >= WINOGRAD_MIN_CHANNELS and produced >= WINOGRAD_MIN_CHANNELS:
        return [tiles[0], order[0], tiles[1], *order[1:]]
    return [order[0], tiles[0], *order[1:], tiles[1]]
