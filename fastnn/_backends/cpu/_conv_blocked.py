"""Host side of the channel-blocked direct convolution (kernels/cpu/conv_blocked.pyx,
conv_blocked.h): the blocking, the instruction set, and the three passes it runs.

The kernel keeps output channels in SIMD lanes and broadcasts input values, so one FMA
stream serves any kernel size, stride, dilation and padding; no im2col buffer is built.
It is the candidate ``"direct:blocked"`` of ``algo="auto"``, and what ``algo="direct"``
runs for a pass that produces enough channels to fill its lanes:

- forward: the convolution itself, with the weights packed once per call, or -- where
  the weights outweigh the input maps -- chunk by chunk just in time inside the kernel
  (:func:`plan`'s ``jit``);
- weight gradient: work items of (group, output-channel blocks, input channels) that
  each reduce over every image and position, so no two threads share an output; the
  input rows are packed channels-last and grad_output positions-first, and the register
  tile holds NW input channels x a block of output channels for one kernel tap;
- input gradient: for each stride phase (a, b) -- the input rows a, a + sh, ... and
  columns b, b + sw, ... -- the taps that reach it form a smaller kernel, and the phase
  is a stride-1 convolution of grad_output with those taps, flipped and transposed,
  written into every sh-th row and sw-th column of the gradient.  A phase no tap reaches
  (a 1x1 kernel with stride 2) is zero.

Every function takes the geometry tuple ``tuple(geom.plane)`` (fastnn._geometry) and 4-D
views (a 1-D convolution is passed as 2-D with H = 1); ``w`` is the flat contiguous
weight.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from fastnn import _isa
from fastnn._backends.cpu import _conv_plan, _outputs
from fastnn._machine import l2_bytes, llc_bytes
from fastnn.kernels.cpu import conv_blocked as _k

__all__ = [
    "NAME",
    "BlockedPlan",
    "fits",
    "forward",
    "grad_input",
    "grad_weight",
    "plan",
    "weight_plan",
]

#: The algorithm's name among the candidates of ``algo="auto"``.
NAME = "direct:blocked"
#: Each of the per-thread working sets -- its packed input rows, the partial sums of a
#: work item -- is kept within this fraction of the L2 cache.
WORKING_SET_L2 = 0.25
#: One reduction chunk's weights, which every tile of a work item streams, in L2 sizes
#: (a sweep on a Zen 4 with a 1 MB L2 found 32-128 KB chunks within 2% of each other and
#: 5-10% ahead of whole-layer chunks).
WEIGHT_CHUNK_L2 = 0.125
#: Work items per thread we aim for, so that uneven items still balance.
ITEMS_PER_THREAD = 2


class BlockedPlan(NamedTuple):
    """How one call is cut: the level, output rows and channel blocks per work item,
    input channels per reduction chunk; ``jit``: weights packed chunk by chunk inside the
    kernel (items of channel blocks over every image) instead of once up front; ``imgs``
    (weight gradient): images whose maps each register tile reduces over per call."""

    isa: int
    rows: int
    kbs: int
    kc: int
    jit: bool = False
    imgs: int = 1


#: The level code of the narrow AVX-512 pass (kernels/cpu/conv_blocked.h FNN_CB_NARROW):
#: one vector of channels (16 floats) x 28 positions.
NARROW = 3
_AVX512 = _isa.LEVELS.index("avx512")


def _half_empty(kg: int, wide: int, narrow: int) -> bool:
    """Whether blocks of ``wide`` lanes would be at least half empty for ``kg`` channels,
    against blocks of ``narrow`` lanes."""
    return math.ceil(kg / wide) * wide >= 2 * math.ceil(kg / narrow) * narrow


def _lanes_level(kg: int, is_double: bool) -> int:
    """The family's level, or a narrower tile when its channel blocks would be at least
    half empty for ``kg`` channels (16 channels in AVX-512's 32-lane blocks).  At
    AVX-512 that is the narrow pass (one vector of channels, 28 positions) or AVX2's
    two-vector tile, whichever the "conv_blocked_narrow" family measured faster on this
    CPU (the same lanes per block; one 512-bit FMA does the work of two 256-bit ones,
    which only a CPU with two 512-bit FMA ports turns into speed); below AVX-512, one
    step down, as long as the blocks stay half empty."""
    isa = _isa.level_code("conv_blocked")
    if isa == _AVX512 and _isa.level_code("conv_blocked_narrow") == _AVX512:
        wide = _k.register_tile(isa, is_double)[0]
        narrow = _k.register_tile(NARROW, is_double)[0]
        if _half_empty(kg, wide, narrow) and not _half_empty(kg, narrow, narrow // 2):
            return NARROW
    while isa > 0:
        wide = _k.register_tile(isa, is_double)[0]
        narrow = _k.register_tile(isa - 1, is_double)[0]
        if not _half_empty(kg, wide, narrow):
            break
        isa -= 1
    return isa


def plan(
    n: int,
    cg: int,
    kg: int,
    groups: int,
    kernel: tuple[int, int],
    stride_h: int,
    dil_h: int,
    out_hw: tuple[int, int],
    is_double: bool,
    threads: int,
    in_hw: tuple[int, int] | None = None,
) -> BlockedPlan:
    """The blocking of one convolution of ``n`` images (``cg`` -> ``kg`` channels per
    group, ``in_hw`` input planes) producing an ``out_hw`` plane."""
    isa = _lanes_level(kg, is_double)
    if in_hw is not None:
        jit = _jit_plan(n, cg, kg, groups, kernel, in_hw, out_hw, isa, is_double, threads)
        if jit is not None:
            return jit
    ob, nw = _k.register_tile(isa, is_double)
    esize = 8 if is_double else 4
    budget = WORKING_SET_L2 * l2_bytes()
    r, s = kernel
    ho, wo = out_hw
    # reduction chunks of equal size whose weights fit the budget
    kc_max = max(1, int(WEIGHT_CHUNK_L2 * l2_bytes() // (ob * r * s * esize)))
    chunks = math.ceil(cg / kc_max)
    kc = math.ceil(cg / chunks)
    nkb = math.ceil(kg / ob)
    kbs = nkb
    pair = 2 if 2 * wo <= nw else 1  # short rows run two per tile

    def rows_fit(rows: int) -> bool:
        packed = kc * ((rows - 1) * stride_h + (r - 1) * dil_h + 1) * (wo * stride_h + s)
        partial = kbs * rows * wo * ob
        return max(packed, partial) * esize <= budget

    rows = ho
    while rows > pair and not rows_fit(rows):
        rows = max(pair, rows // 2)
    want = ITEMS_PER_THREAD * threads

    def items(rows: int, kbs: int) -> int:
        return n * groups * math.ceil(ho / rows) * math.ceil(nkb / kbs)

    while items(rows, kbs) < want and rows > pair:
        rows = max(pair, math.ceil(rows / 2))
    while items(rows, kbs) < want and kbs > 1:
        kbs = math.ceil(kbs / 2)
    if pair == 2 and rows % 2 and rows < ho:  # whole pairs per item (a map's last row
        rows += 1  # may still be alone)
    return BlockedPlan(isa, max(1, rows), max(1, kbs), max(1, kc))


def _jit_plan(
    n: int,
    cg: int,
    kg: int,
    groups: int,
    kernel: tuple[int, int],
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    isa: int,
    is_double: bool,
    threads: int,
) -> BlockedPlan | None:
    """The just-in-time weight plan, for layers whose weights outweigh their input maps
    (ResNet's and MobileNetV2's last stages): packing the weights up front writes and
    re-reads them from memory, and every image's items re-read them again, while a
    thread that owns a few channel blocks reads its weights once and keeps every image's
    partial sums, which must then fit the cache budget.  None when the layer does not
    qualify."""
    ob = _k.register_tile(isa, is_double)[0]
    esize = 8 if is_double else 4
    r, s = kernel
    if kg * cg * r * s < n * cg * in_hw[0] * in_hw[1]:  # weights under the input maps
        return None
    nkb = math.ceil(kg / ob)
    kbs = min(nkb, max(1, math.ceil(groups * nkb / threads)))
    partial = n * out_hw[0] * out_hw[1] * kbs * ob * esize
    if partial > 2 * WORKING_SET_L2 * l2_bytes() or groups * math.ceil(nkb / kbs) < threads:
        return None
    kc_max = max(1, int(WEIGHT_CHUNK_L2 * l2_bytes() // (ob * r * s * esize)))
    kc = math.ceil(cg / math.ceil(cg / kc_max))  # one block's chunk within the budget
    return BlockedPlan(isa, out_hw[0], kbs, kc, jit=True)


def _packed(w4: np.ndarray, groups: int, isa: int, threads: int) -> np.ndarray:
    """The packed weights of w4 (any strides), in 64-byte aligned memory from the output
    cache: a call per step would otherwise fault in megabytes of fresh pages each time."""
    k, cg, r, s = w4.shape
    size = max(1, _k.packed_size(k, cg, r, s, groups, isa, w4.dtype == np.float64))
    lanes = 64 // w4.itemsize
    buf = _outputs.empty(size + lanes, w4.dtype)
    skip = (-buf.ctypes.data % 64) // w4.itemsize
    return _k.pack(w4, groups, isa, threads, buf[skip : skip + size])


def fits(shape: tuple[int, ...]) -> bool:
    """Whether the smallest per-thread buffers of both passes -- one output row's packed
    input and partial sums -- stay within _conv_plan.DIRECT_MAX_PACKED elements (rows
    are not cut into column blocks, so a very long 1-D signal does not fit)."""
    _, _, h, w, _, _, r, s, ho, wo, _, sw, dh, dw = shape[:14]
    ob = max(_k.register_tile(level, True)[0] for level in range(3))
    fwd = max(r * dh * ((wo - 1) * sw + (s - 1) * dw + 1), wo * ob)
    bwd = max(r * dh * (w + s * dw), w * ob)  # a stride phase spans at most a row
    return max(fwd, bwd) <= _conv_plan.DIRECT_MAX_PACKED


#: The output is written with streaming stores (whole aligned lines, AVX-512) once it
#: holds this many times the last-level cache: it will not stay cached for its reader,
#: and a streamed line is not first read in to be overwritten.
STREAM_LLC_MULTIPLE = 1.0


def streams(out: np.ndarray) -> bool:
    """Whether a pass writes ``out`` with streaming stores."""
    return out.nbytes > STREAM_LLC_MULTIPLE * llc_bytes()


def forward(
    x4: np.ndarray, w: np.ndarray, bias: np.ndarray | None, shape, threads: int, act: int = 0
):
    """The flat (N, K, Ho, Wo) output of the convolution of x4 (any strides), through the
    activation ``act`` (conv_epilogue.h's code, 0: none) as the partial sums are written."""
    n, c, _, _, k, g, r, s, ho, wo, sh, sw, dh, dw, pt, pb, pl, pr = shape
    y = _outputs.empty(n * k * ho * wo, x4.dtype)
    is_double = x4.dtype == np.float64
    p = plan(n, c // g, k // g, g, (r, s), sh, dh, (ho, wo), is_double, threads, shape[2:4])
    w4 = w.reshape(k, c // g, r, s)
    wp = None if p.jit else _packed(w4, g, p.isa, threads)
    in_place = not (pt or pb or pl or pr) and x4.strides[3] == x4.itemsize
    _k.convolve(
        x4, wp, bias, y.reshape(n, k, ho, wo), g, (r, s), (sh, sw), (dh, dw), (pt, pl),
        in_place, p.rows, p.kbs, p.kc, p.isa, threads, w=w4, act=act, stream=streams(y),
    )  # fmt: skip
    return y


def _phase_taps(phase: int, size: int, pad: int, stride: int, dil: int):
    """The taps of one axis that reach input index ``phase`` (mod stride): a slice of
    the kernel axis, flipped (None when no tap reaches it), the sub-convolution's
    dilation and its window offset."""
    taps = [t for t in range(size) if (phase + pad - t * dil) % stride == 0]
    if not taps:
        return None
    step = stride // math.gcd(stride, dil)
    flipped = slice(taps[-1], None if taps[0] == 0 else taps[0] - 1, -step)
    offset = -((phase + pad - taps[-1] * dil) // stride)
    return flipped, dil // math.gcd(stride, dil), offset


def grad_input(gy4: np.ndarray, w: np.ndarray, shape, threads: int) -> np.ndarray:
    """d loss / d input, flat (N, C, H, W), from grad_output gy4 (N, K, Ho, Wo)."""
    n, c, h, wd, k, g, r, s, ho, wo, sh, sw, dh, dw, pt, _, pl, _ = shape
    cg, kg = c // g, k // g
    gx = _outputs.empty(n * c * h * wd, gy4.dtype)
    gx4 = gx.reshape(n, c, h, wd)
    # the transposed weight: (G*Cg, Kg, R, S), output and input channels swapped
    wt = w.reshape(g, kg, cg, r, s).transpose(0, 2, 1, 3, 4).reshape(g * cg, kg, r, s)
    is_double = gy4.dtype == np.float64
    for a in range(min(sh, h)):
        rows = _phase_taps(a, r, pt, sh, dh)
        for b in range(min(sw, wd)):
            cols = _phase_taps(b, s, pl, sw, dw)
            out = gx4[:, :, a::sh, b::sw]
            if rows is None or cols is None:
                out[...] = 0
                continue
            (rsl, rdil, roff), (csl, cdil, coff) = rows, cols
            wphase = wt[:, :, rsl, csl]
            hq, wq = out.shape[2:]
            kernel = wphase.shape[2:]
            p = plan(n, kg, cg, g, kernel, 1, rdil, (hq, wq), is_double, threads, (ho, wo))
            wp = None if p.jit else _packed(wphase, g, p.isa, threads)
            _k.convolve(
                gy4, wp, None, out, g, kernel, (1, 1), (rdil, cdil), (roff, coff),
                False, p.rows, p.kbs, p.kc, p.isa, threads, w=wphase, stream=streams(gx),
            )  # fmt: skip
    return gx


#: Output positions each register tile of the weight gradient reduces over per call, at
#: least (its accumulators are loaded and stored once per call): rows of one map, or the
#: whole maps of several images when one map has fewer.
WEIGHT_POSITIONS = 256


def weight_plan(
    n: int,
    cg: int,
    kg: int,
    groups: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
    is_double: bool,
    threads: int,
) -> BlockedPlan:
    """The blocking of one weight gradient: ``rows`` output rows of ``imgs`` images per
    position block, ``kbs`` channel blocks and ``kc`` input channels per work item."""
    isa = _lanes_level(kg, is_double)
    ob, nw = _k.register_tile(isa, is_double)
    esize = 8 if is_double else 4
    budget = WORKING_SET_L2 * l2_bytes()
    (r, s), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    width = (wo - 1) * sw + (s - 1) * dw + 1
    rows = max(1, min(ho, math.ceil(WEIGHT_POSITIONS / wo)))
    imgs = 1
    if rows == ho and n > 1:  # whole maps: as many images as make up the positions
        imgs = min(n, math.ceil(WEIGHT_POSITIONS / max(1, ho * wo)))
        imgs = math.ceil(n / math.ceil(n / imgs))  # equal chunks

    def channels_fit(rows: int, imgs: int) -> int:
        rows_in = (rows - 1) * sh + (r - 1) * dh + 1
        return int(budget // (imgs * rows_in * width * esize))

    while imgs > 1 and channels_fit(rows, imgs) < min(cg, nw):
        imgs = math.ceil(imgs / 2)
    while rows > 1 and channels_fit(rows, imgs) < min(cg, nw):
        rows = math.ceil(rows / 2)
    cc = max(1, min(cg, channels_fit(rows, imgs)))
    cc = math.ceil(cg / math.ceil(cg / cc))  # equal chunks
    kbs = math.ceil(kg / ob)

    def items(cc: int, kbs: int) -> int:
        return groups * math.ceil(cg / cc) * math.ceil(math.ceil(kg / ob) / kbs)

    if items(cc, kbs) > threads and items(cc, kbs) % threads:
        # as many items per thread: 3 equal items on 2 threads take the time of 4
        # (ResNet-50/MobileNetV2's 960 -> 320 1x1 at 7x7: 2.8 ms, torch 1.6 ms)
        chunks = math.ceil(cg / cc)
        while chunks < cg and items(math.ceil(cg / chunks), kbs) % threads:
            chunks += 1
        cc = math.ceil(cg / chunks)

    while items(cc, kbs) < threads:
        if cc >= 2 * nw or (cc > 1 and kbs == 1):
            cc = math.ceil(cc / 2)
        elif kbs > 1:
            kbs = math.ceil(kbs / 2)
        else:
            break
    return BlockedPlan(isa, rows, kbs, cc, imgs=imgs)


def grad_weight(x4: np.ndarray, gy4: np.ndarray, shape, threads: int) -> np.ndarray:
    """d loss / d weight, flat (K, Cg, R, S) in the input's dtype, from the input x4 and
    grad_output gy4 (both any strides)."""
    n, c, _, _, k, g, r, s, ho, wo, sh, sw, dh, dw, pt, _, pl, _ = shape
    gw = np.empty(k * (c // g) * r * s, dtype=x4.dtype)
    p = weight_plan(
        n, c // g, k // g, g, (r, s), (sh, sw), (dh, dw), (ho, wo),
        x4.dtype == np.float64, threads,
    )  # fmt: skip
    _k.weight_grad(
        x4, gy4, gw, g, (r, s), (sh, sw), (dh, dw), (pt, pl), p.rows, p.kbs, p.kc,
        p.imgs, p.isa, threads,
    )  # fmt: skip
    return gw
