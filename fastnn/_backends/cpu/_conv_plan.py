"""How the CPU convolution kernels split their work: the geometry tuple the Cython kernels
read (ConvGeometry.plane as a tuple), and the block sizes (positions per im2col tile,
output rows per packed chunk, input channels per gradient item) that bound every
per-thread buffer.

Buffers are per thread and sized by the limits below, never by the batch: a batch of any
size runs in the same memory.  :func:`chunking` overrides the automatic sizes (tests use it
to force tiny chunks, so that every chunk boundary is crossed).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

from fastnn._geometry import ConvGeometry

_T = TypeVar("_T")

__all__ = [
    "Chunking",
    "chunking",
    "direct_channels",
    "direct_fits",
    "direct_gw_blocks",
    "direct_kblocks",
    "direct_rows",
    "fits_blas",
    "im2col_channels",
    "im2col_tile",
    "shared_weight_images",
    "shape_tuple",
]

#: Elements of one thread's im2col column buffer (C*R*S x tile); 4 MiB of float32.
COLUMN_BUFFER_ELEMENTS = 1 << 20
#: Output positions below which a pointwise layer's tile spans several images: a one-image
#: pointwise tile reads the image in place, a several-image tile has to copy it.
POINTWISE_MULTI_IMAGE = 128
#: Fewest positions per im2col tile (narrower GEMMs waste BLAS's packing).
MIN_TILE = 64
#: Elements of one thread's packed input rows in the direct kernels (fits the L2 cache).
PACKED_ELEMENTS = 1 << 16
#: Work items per thread we aim for, so that uneven items still balance.
ITEMS_PER_THREAD = 2


@dataclass(frozen=True)
class Chunking:
    """Forced block sizes; None means automatic."""

    tile: int | None = None  # im2col: output positions per tile (>= Ho*Wo: whole images)
    rows: int | None = None  # direct: output rows per packed chunk
    channels: int | None = None  # both, input gradient: input channels per work item
    kblocks: int | None = None  # direct forward: output-channel blocks per work item


_forced = Chunking()
#: _forced's fields as a plain tuple (a dataclass hashes each time; this once).
_forced_key = (None, None, None, None)


@contextlib.contextmanager
def chunking(
    tile: int | None = None,
    rows: int | None = None,
    channels: int | None = None,
    kblocks: int | None = None,
) -> Iterator[Chunking]:
    """Force block sizes inside a ``with`` block (for tests and experiments); each value is
    clipped to what the problem allows, None keeps the automatic choice."""
    global _forced, _forced_key
    sizes = {"tile": tile, "rows": rows, "channels": channels, "kblocks": kblocks}
    for name, value in sizes.items():
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"chunking: {name} must be a positive int or None, got {value!r}")
    previous, previous_key = _forced, _forced_key
    _forced = replace(previous, tile=tile, rows=rows, channels=channels, kblocks=kblocks)
    _forced_key = (tile, rows, channels, kblocks)
    try:
        yield _forced
    finally:
        _forced, _forced_key = previous, previous_key


#: (function, arguments, forced chunking, block constants) -> its answer.
_PLANS: dict[tuple, object] = {}
_PLANS_LIMIT = 4096


def _planned(plan: Callable[..., _T]) -> Callable[..., _T]:
    """``plan`` memoised: a layer asks for the same block sizes on every call, and
    working them out again cost 1-2 us of a small layer's ~10 us.  The key holds the
    forced chunking and the module's block constants, so a change to either (tests
    monkeypatch them) is never answered from the memo."""

    @functools.wraps(plan)
    def planned(*args: object, **kwargs: object) -> _T:
        if kwargs:  # the kernels' callers pass positions; keywords are worked out afresh
            return plan(*args, **kwargs)
        key = (plan, args, _forced_key, COLUMN_BUFFER_ELEMENTS, PACKED_ELEMENTS, MIN_TILE,
               ITEMS_PER_THREAD, POINTWISE_MULTI_IMAGE, GW_MIN_REDUCTION)  # fmt: skip
        got = _PLANS.get(key)
        if got is None:
            if len(_PLANS) >= _PLANS_LIMIT:
                _PLANS.clear()
            got = _PLANS[key] = plan(*args)
        return got  # type: ignore[return-value]

    return planned


def shape_tuple(geom: ConvGeometry) -> tuple[int, ...]:
    """(N, C, H, W, K, G, R, S, Ho, Wo, sh, sw, dh, dw, pt, pb, pl, pr): the 2-D geometry
    the kernels read (conv_shape.pxd), i.e. ``geom.plane`` as a plain tuple."""
    return tuple(geom.plane)


#: BLAS takes 32-bit sizes and leading dimensions.
BLAS_INT_MAX = 2**31 - 1


def fits_blas(shape: tuple[int, ...]) -> bool:
    """Whether every size the im2col GEMMs pass to BLAS fits its 32-bit integers."""
    _, c, h, w, k, g, r, s, ho, wo = shape[:10]
    return max(ho * wo, h * w, (c // g) * r * s, k) <= BLAS_INT_MAX


#: Largest per-thread packed buffer (elements) the direct kernels may need before "auto"
#: prefers im2col, whose buffers are bounded by COLUMN_BUFFER_ELEMENTS whatever the size.
DIRECT_MAX_PACKED = 1 << 24


def direct_fits(shape: tuple[int, ...]) -> bool:
    """Whether the direct kernels' smallest per-thread buffers stay within
    DIRECT_MAX_PACKED: one output row's input over a group's channels (forward, weight
    gradient) and one padded input channel (input gradient)."""
    _, c, h, _, _, g, r, _, _, _, _, _, dh, _, pt, pb = shape[:16]
    row = _packed_row_width(shape)
    forward = (c // g) * ((r - 1) * dh + 1) * row
    backward = (h + pt + pb) * row
    return max(forward, backward) <= DIRECT_MAX_PACKED


def _split_for_threads(length: int, parts_already: int, threads: int) -> int:
    """Block size along an axis of ``length`` so that ``parts_already`` times the number of
    blocks gives every thread ITEMS_PER_THREAD items, if the axis allows."""
    want = math.ceil(ITEMS_PER_THREAD * threads / max(parts_already, 1))
    return max(1, math.ceil(length / max(want, 1)))


@_planned
def im2col_tile(shape: tuple[int, ...], threads: int) -> tuple[int, int]:
    """(tile, images per tile) of the im2col kernels: a tile is ``tile`` output positions
    of one image, or -- for images smaller than a good GEMM width -- several whole images
    side by side (then ``tile`` is Ho*Wo)."""
    n, c, _, _, _, _, r, s, ho, wo = shape[:10]
    howo = ho * wo
    if _forced.tile is not None:
        if _forced.tile >= howo:
            return howo, max(1, min(n, _forced.tile // howo))
        return _forced.tile, 1
    width = max(MIN_TILE, COLUMN_BUFFER_ELEMENTS // max(c * r * s, 1))
    pointwise = r == s == 1 and shape[10:12] == (1, 1) and not any(shape[14:18])
    small = howo < (POINTWISE_MULTI_IMAGE if pointwise else width // 2)
    if small and n > 1:  # several whole images per tile, if threads allow
        images = min(n, width // howo, max(1, n // (ITEMS_PER_THREAD * threads)))
        if images > 1:
            return howo, images
    # split small batches across threads, but keep tiles wide enough for the GEMM
    tile = min(width, max(_split_for_threads(howo, n, threads), MIN_TILE // 2))
    return max(1, min(tile, howo)), 1


@_planned
def im2col_channels(shape: tuple[int, ...], width: int, images: int, threads: int) -> int:
    """Input channels per work item of the im2col input gradient (``width`` columns per
    tile, ``images`` per tile)."""
    n, c, _, _, _, g, r, s = shape[:8]
    cg = c // g
    if _forced.channels is not None:
        return min(_forced.channels, cg)
    fit = max(1, COLUMN_BUFFER_ELEMENTS // max(r * s * width, 1))
    chunks = math.ceil(n / images)
    return max(1, min(cg, fit, _split_for_threads(cg, chunks * g, threads)))


def _packed_row_width(shape: tuple[int, ...]) -> int:
    _, _, _, w, _, _, _, _, _, _, _, sw, _, _, _, _, pl, pr = shape
    return sw * math.ceil((w + pl + pr) / sw)


@_planned
def direct_rows(shape: tuple[int, ...], threads: int) -> int:
    """Output rows per packed chunk of the direct forward and weight-gradient kernels."""
    n, c, _, _, _, g, r, _, ho, _, sh, _, dh = shape[:13]
    if _forced.rows is not None:
        return min(_forced.rows, ho)
    row = _packed_row_width(shape) * (c // g)
    halo = (r - 1) * dh + 1  # padded rows one output row needs

    def packed(rows: int) -> int:
        return ((rows - 1) * sh + halo) * row

    rows = ho
    while rows > 1 and packed(rows) > PACKED_ELEMENTS:
        rows = math.ceil(rows / 2)
    return max(1, min(rows, _split_for_threads(ho, n * g, threads)))


@_planned
def direct_kblocks(shape: tuple[int, ...], rows: int, threads: int, kb: int) -> int:
    """Blocks of ``kb`` output channels per direct forward work item."""
    n, c, _, _, k, g, _, _, ho = shape[:9]
    nkb = math.ceil((k // g) / kb)
    if _forced.kblocks is not None:
        return min(_forced.kblocks, nkb)
    return max(1, min(nkb, _split_for_threads(nkb, n * g * math.ceil(ho / rows), threads)))


#: Weight elements (K x Cg*R*S) from which the im2col weight gradient stops giving each
#: thread its own copy: past this, re-reading and re-writing per-thread copies tile after
#: tile costs more than sharing the column matrix (ResNet-50's 2048 -> 512 1x1 at 7x7:
#: 14 ms with copies, torch 10 ms).
SHARED_WEIGHT_ELEMENTS = 1 << 18
#: Elements of the shared column matrix of one chunk of images (16 MiB of float32).
SHARED_COLUMN_ELEMENTS = 1 << 22


def shared_weight_images(shape: tuple[int, ...], threads: int) -> int:
    """Images per chunk of the shared-column weight gradient, or 0 to keep per-thread
    partial gradients (small weights, or images too large for one chunk)."""
    n, c, _, _, k, g, r, s, ho, wo = shape[:10]
    weight = k * (c // g) * r * s
    per_image = c * r * s * ho * wo
    if _forced.tile is not None or weight * threads < SHARED_WEIGHT_ELEMENTS:
        return 0
    if per_image > SHARED_COLUMN_ELEMENTS:
        return 0
    return max(1, min(n, SHARED_COLUMN_ELEMENTS // per_image))


#: Output positions one weight-gradient call should reduce over, at least (the call's
#: fixed cost -- clearing and reducing its accumulators -- is then small).
GW_MIN_REDUCTION = 1024


@_planned
def direct_gw_blocks(shape: tuple[int, ...], threads: int) -> tuple[int, int, int]:
    """(images, output rows, input channels) per work item of the direct weight gradient:
    enough rows -- and, for small images, images -- for long reductions, then as many
    channels as fit the packed budget, then smaller blocks if the threads need items."""
    n, c, _, _, _, g, r, _, ho, wo, sh, _, dh = shape[:13]
    cg = c // g
    rows = _forced.rows if _forced.rows is not None else math.ceil(GW_MIN_REDUCTION / wo)
    rows = max(1, min(rows, ho))
    images = 1
    if rows == ho and _forced.rows is None:
        images = max(1, min(n, GW_MIN_REDUCTION // (ho * wo)))
    packed_rows = ((rows - 1) * sh + (r - 1) * dh + 1) * _packed_row_width(shape)
    if _forced.channels is not None:
        channels = min(_forced.channels, cg)
    else:
        channels = max(1, min(cg, PACKED_ELEMENTS // max(packed_rows * images, 1)))
    if _forced.channels is None and _forced.rows is None:
        # never starve the threads: fewer images per item first, then fewer channels
        def items(i: int, ch: int) -> int:
            return math.ceil(n / i) * g * math.ceil(ho / rows) * math.ceil(cg / ch)

        while images > 1 and items(images, channels) < ITEMS_PER_THREAD * threads:
            images = math.ceil(images / 2)
        if items(images, channels) < ITEMS_PER_THREAD * threads:
            others = math.ceil(n / images) * g * math.ceil(ho / rows)
            channels = min(channels, _split_for_threads(cg, others, threads))
    return images, rows, channels


@_planned
def direct_channels(shape: tuple[int, ...], threads: int) -> int:
    """Input channels per work item of the direct input gradient."""
    n, c, h, _, _, g, _, _, _, _, _, _, _, _, pt, pb = shape[:16]
    cg = c // g
    if _forced.channels is not None:
        return min(_forced.channels, cg)
    per_channel = (h + pt + pb) * _packed_row_width(shape)
    fit = max(1, PACKED_ELEMENTS * 4 // max(per_channel, 1))
    return max(1, min(cg, fit, _split_for_threads(cg, n * g, threads)))
