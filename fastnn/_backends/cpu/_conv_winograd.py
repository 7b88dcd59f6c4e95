"""Host side of the Winograd convolution (kernels/cpu/conv_winograd.pyx, winograd.h):
which layers it runs, the tile size, the blocking, and the two passes it computes.

Winograd's F(m x m, 3 x 3) runs 3x3 convolutions with stride 1 and no dilation (any
padding, any groups; fastnn._geometry.winograd_unsupported says why not): the forward
pass; the input gradient, which is the same kind of convolution of grad_output with the
flipped, transposed weights and padding 2 - pad; and the weight gradient, whose
transformed products are GEMMs that reduce over the tiles (kernels/cpu/winograd_wgrad.h).
Tile sizes: m = 2, 4 or 6 (multiplies per output fall 2.25x, 4x and 5.06x; the float32
error against float64 grows with m: see docs/API.md).

The plan (:func:`plan`) cuts the work for the kernel: ``pb`` tiles per block, whose
transformed input (alpha^2 x channels x pb) a thread keeps near its core; ``kc`` output
channels per chunk, whose filters each thread transforms just in time; and a grid of
``tk x tp`` threads over chunks and blocks (blocks when there are enough of them, else
channels: a 7x7 map at batch 8 has too few tiles to split).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from fastnn import _isa
from fastnn._backends.cpu import _outputs
from fastnn._machine import l2_bytes
from fastnn.kernels.cpu import conv_winograd as _k

__all__ = [
    "TILE_SIZES",
    "WinogradPlan",
    "default_tile",
    "forward",
    "grad_input",
    "grad_weight",
    "plan",
    "weight_plan",
]

TILE_SIZES = _k.TILE_SIZES

#: Transformed input a thread keeps per block, in L2 sizes (a sweep on a Zen 4 with a 1 MB
#: L2 per core found 1-3 MB best: the filters of a chunk are transformed once per block,
#: so a block must be long enough to pay for it; bench/scripts/winograd_sweep.py re-checks
#: this on another CPU).
BLOCK_L2 = 2.5
#: The longest block, in tiles.
MAX_BLOCK = 256
#: Output channels per chunk, at most (rounded up to the register tile).
CHUNK = 16
#: Just-in-time transformed filters a thread keeps per chunk (alpha^2 x kc x channels),
#: in L2 sizes: fewer output channels per chunk when there are many input channels, so
#: that they stay in the L2 cache (512x7x7 at batch 8: kc 18 -> 6 took 8.3 -> 6.5 ms, Zen 4).
FILTER_L2 = 0.5


class WinogradPlan(NamedTuple):
    """How one call is cut: tile size, instruction-set level, tiles per block, output
    channels per chunk, and the thread grid (chunks x blocks)."""

    m: int
    isa: int
    pb: int
    kc: int
    tk: int
    tp: int


def default_tile(ho: int, wo: int) -> int:
    """The tile size the prior expects to be fastest for an ho x wo output: F(4x4, 3x3)
    (4x fewer multiplies; its transforms cost less per output than F(6x6)'s), or
    F(2x2, 3x3) when the map is too small for 4x4 tiles to be mostly useful."""
    return 4 if min(ho, wo) >= 4 else 2


def plan(
    n: int,
    cg: int,
    kg: int,
    groups: int,
    ho: int,
    wo: int,
    m: int,
    itemsize: int,
    threads: int,
    isa: int | None = None,
) -> WinogradPlan:
    """The blocking of one convolution: n images, cg input and kg output channels per
    group, an ho x wo output, F(m x m, 3 x 3), at instruction-set level code ``isa``
    (default: the level in force)."""
    if isa is None:
        isa = _isa.level_code("winograd")
    mr, nr = _k.register_tile(isa, itemsize == 8)
    alpha2 = (m + 2) ** 2
    tiles = n * math.ceil(ho / m) * math.ceil(wo / m)
    fit = int(BLOCK_L2 * l2_bytes()) // (alpha2 * cg * itemsize)
    pb = max(nr, min(MAX_BLOCK, fit) // nr * nr)
    pb = min(pb, _round_up(tiles, nr))
    kc = _round_up(max(CHUNK, mr), mr)
    chunks = math.ceil(kg / kc)
    blocks = groups * math.ceil(tiles / pb)
    balanced = blocks % threads == 0 or blocks >= 3 * threads
    if (blocks >= threads and balanced) or chunks < 2:
        return WinogradPlan(m, isa, pb, kc, 1, threads)
    # too few blocks to share evenly: split the output channels between threads instead,
    # each with all the tiles and the filters of its chunks, transformed once per chunk
    # and kept in the cache for every block
    fit_kc = int(FILTER_L2 * l2_bytes()) // (alpha2 * cg * itemsize) // mr * mr
    kc = max(mr, min(kc, fit_kc))
    chunks = math.ceil(kg / kc)
    tk = min(threads, chunks)
    tp = max(1, threads // tk)
    pb = _round_up(math.ceil(tiles / tp), nr)
    return WinogradPlan(m, isa, pb, kc, tk, tp)


def _round_up(a: int, b: int) -> int:
    return -(-a // b) * b


def forward(
    x4: np.ndarray, w: np.ndarray, bias, shape, threads: int, m: int, act: int = 0
) -> np.ndarray:
    """The flat (N, K, Ho, Wo) output of the convolution of x4 (any strides) by F(m, 3);
    ``w`` is the flat contiguous weight; the activation ``act`` (conv_epilogue.h's code,
    0: none) runs in the output transform."""
    n, c, _, _, k, g = shape[:6]
    ho, wo, pt, pl = shape[8], shape[9], shape[14], shape[16]
    y = _outputs.empty(n * k * ho * wo, x4.dtype)
    p = plan(n, c // g, k // g, g, ho, wo, m, x4.dtype.itemsize, threads)
    _k.convolve(x4, None, w, False, bias, y, k, g, ho, wo, pt, pl, p.m, p.isa, p.pb, p.kc,
                p.tk, p.tp, act)  # fmt: skip
    return y


def grad_input(gy4: np.ndarray, w: np.ndarray, shape, threads: int, m: int) -> np.ndarray:
    """d loss / d input, flat (N, C, H, W): grad_output (4-D, any strides) convolved with
    the flipped, transposed weight (flat contiguous ``w``), padding 2 - pad."""
    n, c, h, wd, k, g = shape[:6]
    pt, pl = shape[14], shape[16]
    gx = _outputs.empty(n * c * h * wd, gy4.dtype)
    p = plan(n, k // g, c // g, g, h, wd, m, gy4.dtype.itemsize, threads)
    _k.convolve(gy4, None, w, True, None, gx, c, g, h, wd, 2 - pt, 2 - pl, p.m, p.isa, p.pb,
                p.kc, p.tk, p.tp)  # fmt: skip
    return gx


#: Weight gradient: tiles per block, and output x input channels per work item (a Zen 4
#: sweep: 64-128 x 64-128 channels with blocks of 64 tiles were best on every ResNet
#: layer; larger items recompute fewer transforms, smaller ones keep S in the cache).
WEIGHT_BLOCK = 64
WEIGHT_CHANNELS = 128


def weight_plan(cg: int, kg: int) -> tuple[int, int, int]:
    """(tiles per block, output channels, input channels) per weight-gradient item."""
    return WEIGHT_BLOCK, min(kg, WEIGHT_CHANNELS), min(cg, WEIGHT_CHANNELS)


def grad_weight(x4: np.ndarray, gy: np.ndarray, shape, threads: int, m: int) -> np.ndarray:
    """d loss / d weight, flat (K, C // G, 3, 3), in x's dtype: ``gy`` is the flat
    contiguous grad_output."""
    n, c, _, _, k, g = shape[:6]
    ho, wo, pt, pl = shape[8], shape[9], shape[14], shape[16]
    gw = np.empty(k * (c // g) * 9, dtype=x4.dtype)
    pb, kc, cc = weight_plan(c // g, k // g)
    isa = _isa.level_code("winograd")
    _k.weight_gradient(x4, gy, gw, k, g, ho, wo, pt, pl, m, isa, pb, kc, cc, threads)
    return gw
