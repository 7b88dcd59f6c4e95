"""A CPU convolution pass settled ahead of the call, as plain integers, for callers that run
the C kernels themselves: fastnn.jax's XLA FFI handler (kernels/jax/fastnn_jax_conv.c)
resolves everything this backend decides in Python -- the algorithm (the memoised choice of
conv.py, autotuned on first use), the instruction-set level and the blocking -- when a
function is traced, and the call then runs C alone.

:func:`pass_plan` returns an int64 vector (layout in :data:`LAYOUT`) for every CPU
algorithm: the channel-blocked, Winograd and depthwise kernels, which the handler calls
itself, and the direct row kernel and im2col + BLAS, whose work split lives in Cython
(conv_direct.pyx, conv_im2col.pyx): the handler calls their modules' GIL-free C entry
points (:func:`c_entries`) with the blocks their Python wrappers would choose.  It is None
for im2col only when SciPy's BLAS is one whose thread count C cannot hold at one
(:func:`blas_controls`): that pass keeps fastnn's Python wrapper.
"""

from __future__ import annotations

import ctypes
import functools
import math

import numpy as np

from fastnn import _threads
from fastnn._backends.cpu import _conv_blocked, _conv_depthwise, _conv_plan, _conv_winograd
from fastnn._backends.cpu import conv as _conv
from fastnn._geometry import ConvGeometry
from fastnn._isa import level_code
from fastnn._threads import get_num_threads

__all__ = [
    "BLOCKED",
    "DEPTHWISE",
    "DIRECT",
    "IM2COL",
    "LAYOUT",
    "WINOGRAD",
    "blas_controls",
    "c_entries",
    "choice",
    "pass_plan",
]

#: Algorithm codes, the vector's first entry.
BLOCKED, WINOGRAD, DEPTHWISE, DIRECT, IM2COL = 1, 2, 3, 4, 5
#: The vector: [algorithm, the 18 values of ``geom.plane``, threads, then per algorithm
#: and pass] -- blocked forward: isa, rows, kbs, kc, jit, in_place; blocked weight: isa,
#: rows, kbs, cc, imgs; blocked input: the number of stride phases, then per phase PHASE values;
#: winograd forward / input: m, isa, pb, kc, tk, tp; winograd weight: m, isa, pb, kc, cc;
#: depthwise (every pass): isa, lanes (1: channels in lanes, 0: plane by plane); direct
#: row kernel and im2col: the ``blocks`` of their modules' conv_entry (see there) -- direct
#: forward: xh, rows, kblocks; direct input: channels; direct weight: xh, images, rows,
#: channels; im2col forward: xh, tile, images; im2col input: tile, images, channels;
#: im2col weight: xh, shared images (0: tiles), tile, images (xh: the input's row stride,
#: 0 for a 1-D convolution as in NumPy's 4-D view of it).
LAYOUT = "algorithm, plane[18], threads, per-pass values"
#: Per stride phase of the blocked input gradient: a, b, reached (0: zero-filled), the
#: flipped taps (first row, row step, rows, first column, column step, columns), the
#: sub-convolution's dilation (2) and window offset (2), and its plan (isa, rows, kbs, kc,
#: jit).
PHASE = 18


def choice(geom: ConvGeometry, dtype: np.dtype, which: str, algo: str = "auto") -> str:
    """The algorithm pass ``which`` ("forward", "input" or "weight") of this layer runs
    under ``algo`` at fastnn's thread count now: conv.py's memoised choice, made first by
    one call of the pass on random data of the layer's shape when there is none (measured
    there with autotuning on, as a first call would).  Needs a non-empty batch."""
    dtype = np.dtype(dtype)
    op = f"conv{geom.nd}d" if which == "forward" else f"conv{geom.nd}d_backward"
    for _ in range(2):  # the memo may be cleared (it is capped) between the call and here
        name = _conv.chosen(algo, op, which, geom, dtype, get_num_threads())
        if name is not None:
            return name
        rng = np.random.default_rng(0)
        x = rng.standard_normal(geom.input_shape).astype(dtype)
        w = rng.standard_normal(geom.weight_shape).astype(dtype)
        if which == "forward":
            _conv.conv_forward(x, w, None, geom, algo)
        else:
            gy = rng.standard_normal(geom.output_shape).astype(dtype)
            mask = (which == "input", which == "weight", False)
            _conv.conv_backward(gy, x, w, geom, algo, mask)
    raise RuntimeError(f"{op}: no algorithm was chosen for the {which} pass")


def _phase_taps(phase: int, size: int, pad: int, stride: int, dil: int) -> list[int] | None:
    """One axis of a stride phase: [first tap, step down, taps, sub-dilation, offset]
    (_conv_blocked's flipped slice as numbers), or None when no tap reaches it."""
    got = _conv_blocked._phase_taps(phase, size, pad, stride, dil)
    if got is None:
        return None
    flipped, sub_dil, offset = got
    first, step = flipped.start, -flipped.step
    count = len(range(size)[flipped])
    return [first, step, count, sub_dil, offset]


def _blocked(geom: ConvGeometry, which: str, is_double: bool, threads: int) -> list[int]:
    n, c, h, wd, k, g, r, s, ho, wo, sh, sw, dh, dw, pt, pb, pl, pr = geom.plane
    if which == "forward":
        p = _conv_blocked.plan(n, c // g, k // g, g, (r, s), sh, dh, (ho, wo), is_double,
                               threads, (h, wd))  # fmt: skip
        return [p.isa, p.rows, p.kbs, p.kc, int(p.jit), int(not (pt or pb or pl or pr))]
    if which == "weight":
        p = _conv_blocked.weight_plan(n, c // g, k // g, g, (r, s), (sh, sw), (dh, dw),
                                      (ho, wo), is_double, threads)  # fmt: skip
        return [p.isa, p.rows, p.kbs, p.kc, p.imgs]
    phases: list[int] = []
    for a in range(min(sh, h)):
        rows = _phase_taps(a, r, pt, sh, dh)
        for b in range(min(sw, wd)):
            cols = _phase_taps(b, s, pl, sw, dw)
            if rows is None or cols is None:
                phases += [a, b, 0] + [0] * (PHASE - 3)
                continue
            hq, wq = math.ceil((h - a) / sh), math.ceil((wd - b) / sw)
            kernel = (rows[2], cols[2])
            p = _conv_blocked.plan(n, k // g, c // g, g, kernel, 1, rows[3], (hq, wq),
                                   is_double, threads, (ho, wo))  # fmt: skip
            phases += [a, b, 1, *rows[:3], *cols[:3], rows[3], cols[3], rows[4], cols[4]]
            phases += [p.isa, p.rows, p.kbs, p.kc, int(p.jit)]
    return [len(phases) // PHASE, *phases]


def _winograd(geom: ConvGeometry, which: str, m: int, itemsize: int, threads: int) -> list:
    n, c, h, wd, k, g = geom.plane[:6]
    ho, wo = geom.plane[8], geom.plane[9]
    if which == "weight":
        pb, kc, cc = _conv_winograd.weight_plan(c // g, k // g)
        return [m, level_code("winograd"), pb, kc, cc]
    if which == "forward":
        p = _conv_winograd.plan(n, c // g, k // g, g, ho, wo, m, itemsize, threads)
    else:
        p = _conv_winograd.plan(n, k // g, c // g, g, h, wd, m, itemsize, threads)
    return [p.m, p.isa, p.pb, p.kc, p.tk, p.tp]


def _direct(geom: ConvGeometry, which: str, threads: int) -> list[int]:
    """_conv_direct.py's blocks for pass ``which``."""
    from fastnn.kernels.cpu import conv_direct

    shape, xh = tuple(geom.plane), _row_stride(geom)
    if which == "forward":
        rows = _conv_plan.direct_rows(shape, threads)
        return [xh, rows, _conv_plan.direct_kblocks(shape, rows, threads, conv_direct.FWD_KB)]
    if which == "input":
        return [_conv_plan.direct_channels(shape, threads)]
    return [xh, *_conv_plan.direct_gw_blocks(shape, threads)]


def _im2col(geom: ConvGeometry, which: str, threads: int) -> list[int]:
    """_conv_im2col.py's tiles for pass ``which``."""
    shape, xh = tuple(geom.plane), _row_stride(geom)
    if which == "weight":
        shared = _conv_plan.shared_weight_images(shape, threads)
        if shared:
            return [xh, shared, 0, 0]
        return [xh, 0, *_conv_plan.im2col_tile(shape, threads)]
    tile, images = _conv_plan.im2col_tile(shape, threads)
    if which == "forward":
        return [xh, tile, images]
    return [tile, images, _conv_plan.im2col_channels(shape, tile * images, images, threads)]


def _row_stride(geom: ConvGeometry) -> int:
    """The row stride (elements) of conv.py's 4-D view of a contiguous input: W, or 0 for a
    1-D convolution (NumPy's stride of the axis ``x[:, :, None, :]`` adds)."""
    return 0 if geom.nd == 1 else geom.plane[3]


def _address(fn) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


@functools.cache
def blas_controls() -> tuple[int, int] | None:
    """The addresses of ``openblas_get_num_threads`` and ``openblas_set_num_threads`` of
    the BLAS that scipy.linalg.cython_blas calls, with which C holds it to one thread
    around an im2col pass as :func:`fastnn._threads.limit_blas_threads` does; (0, 0) when
    fastnn does not control that BLAS's threads (the limit is then a no-op too); None
    when C cannot (several libraries, or not OpenBLAS)."""
    _threads.sync_blas_threads()
    libs = _threads._blas_libs or []
    if not libs:
        return (0, 0)
    if len(libs) > 1 or libs[0].internal_api != "openblas":
        return None
    symbol = getattr(libs[0], "_get_symbol", None)
    if symbol is None:
        return None
    get, set_ = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
    if get is None or set_ is None:
        return None
    return (_address(get), _address(set_))


@functools.cache
def c_entries() -> tuple[int, int, int, int]:
    """The addresses the handler's ``fnn_jax_conv_set_entries`` takes: conv_direct.pyx's and
    conv_im2col.pyx's conv_entry (0 for im2col when :func:`blas_controls` is None) and the
    BLAS's thread-count getter and setter (0: none to hold)."""
    from fastnn.kernels.cpu import conv_direct, conv_im2col

    blas = blas_controls()
    im2col = conv_im2col.c_entry() if blas is not None else 0
    return (conv_direct.c_entry(), im2col, *(blas or (0, 0)))


def pass_plan(
    geom: ConvGeometry,
    dtype: np.dtype,
    which: str,
    algo: str = "auto",
    threads: int | None = None,
) -> np.ndarray | None:
    """How pass ``which`` of this layer runs with a team of ``threads`` (default: fastnn's
    thread count), as the int64 vector of :data:`LAYOUT`; None when its algorithm has no C
    entry point the handler reaches (im2col beside a BLAS :func:`blas_controls` cannot hold)
    or the batch is empty (fastnn's wrappers handle it).
    The algorithm is the one chosen at fastnn's thread count, as conv.py chooses it for
    every team size."""
    if geom.batch == 0:
        return None
    dtype = np.dtype(dtype)
    name = choice(geom, dtype, which, algo)
    threads = get_num_threads() if threads is None else threads
    head = [0, *geom.plane, threads]
    if name == _conv_blocked.NAME:
        head[0] = BLOCKED
        rest = _blocked(geom, which, dtype == np.float64, threads)
    elif name.startswith("winograd"):
        head[0] = WINOGRAD
        rest = _winograd(geom, which, int(name[len("winograd") :]), dtype.itemsize, threads)
    elif _conv._depthwise_variant(name, geom) is not None:
        head[0] = DEPTHWISE
        lanes = bool(_conv._depthwise_variant(name, geom))
        rest = [_conv_depthwise.level_code(lanes), int(lanes)]
    elif name == "direct":
        head[0] = DIRECT
        rest = _direct(geom, which, threads)
    elif name == "im2col" and c_entries()[1]:
        head[0] = IM2COL
        rest = _im2col(geom, which, threads)
        # SciPy's own BLAS then stays at one thread, as after a call of the wrapper, so
        # that the handler's calls find it there (a count of more costs them two changes)
        with _threads.limit_blas_threads():
            pass
    else:
        return None
    return np.asarray(head + rest, dtype=np.int64)
