"""A CPU convolution pass settled ahead of the call, as plain integers, for callers that run
the C kernels themselves: fastnn.jax's XLA FFI handler (kernels/jax/fastnn_jax_conv.c)
resolves everything this backend decides in Python -- the algorithm (the memoised choice of
conv.py, autotuned on first use), the instruction-set level and the blocking -- when a
function is traced, and the call then runs C alone.

:func:`pass_plan` returns an int64 vector (layout in :data:`LAYOUT`) for the channel-
blocked, Winograd and depthwise kernels, or None for the algorithms whose work split lives
in Cython (the direct row kernel's packing and items in conv_direct.pyx, im2col's tiles and
BLAS calls in conv_im2col.pyx): those keep fastnn's Python wrappers.
"""

from __future__ import annotations

import math

import numpy as np

from fastnn._backends.cpu import _conv_blocked, _conv_winograd
from fastnn._backends.cpu import conv as _conv
from fastnn._geometry import ConvGeometry
from fastnn._isa import level_code
from fastnn._threads import get_num_threads

__all__ = ["BLOCKED", "DEPTHWISE", "LAYOUT", "WINOGRAD", "choice", "pass_plan"]

#: Algorithm codes, the vector's first entry.
BLOCKED, WINOGRAD, DEPTHWISE = 1, 2, 3
#: The vector: [algorithm, the 18 values of ``geom.plane``, threads, then per algorithm
#: and pass] -- blocked forward: isa, rows, kbs, kc, jit, in_place; blocked weight: isa,
#: rows, kbs, cc; blocked input: the number of stride phases, then per phase PHASE values;
#: winograd forward / input: m, isa, pb, kc, tk, tp; winograd weight: m, isa, pb, kc, cc;
#: depthwise (every pass): isa, lanes (1: channels in lanes, 0: plane by plane).
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
        return [p.isa, p.rows, p.kbs, p.kc]
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


def pass_plan(
    geom: ConvGeometry,
    dtype: np.dtype,
    which: str,
    algo: str = "auto",
    threads: int | None = None,
) -> np.ndarray | None:
    """How pass ``which`` of this layer runs with a team of ``threads`` (default: fastnn's
    thread count), as the int64 vector of :data:`LAYOUT`; None when its algorithm has no C
    entry point the handler reaches (or the batch is empty: fastnn's wrappers handle it).
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
        rest = [level_code("depthwise"), int(_conv._depthwise_variant(name, geom))]
    else:
        return None
    return np.asarray(head + rest, dtype=np.int64)
