"""Max and average pooling, forward and backward, with PyTorch's rules; NCHW seen as
(planes = N * C, H, W), 1-d as H = 1.

- Max forward: one thread per output; a window starts from its first real element and
  takes a later one when it is larger or NaN, so NaN propagates and the last NaN's index
  wins.  Padding is never read.  Indices are flat positions ``h * W + w`` in the plane.
- Max backward: a GATHER, one thread per input element, over the windows that have it as
  a tap: it receives the gradient of those whose index names it.  Deterministic, no
  atomics.  Indices given by the caller are first checked to name a tap of their own
  window (``check_indices``); when one does not, ``max_backward_scan`` (every window of
  the plane) keeps the result exact.
- Average: the divisor is the window clipped to ``input + padding``
  (``count_include_pad``) or to the input; backward is a gather of ``gy / divisor``.

Geometry arguments, in order: ``kh, kw, sh, sw, ph, pw`` (+ ``dh, dw`` for max).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.grid import split3

#: Threads per block (fewer for tiny problems).
THREADS = 256


@cuda.jit(device=True, inline=True)
def _first_window(x, pad, kernel, stride):
    """The first output window whose taps ``o * stride - pad + [0, kernel)`` cover x:
    ceil((x + pad - kernel + 1) / stride), at least 0."""
    a = x + pad - kernel + 1
    if a <= 0:
        return 0
    return (a + stride - 1) // stride


@cuda.jit(device=True, inline=True)
def _window_size(o, size, kernel, stride, pad, include_pad):
    """The divisor's extent along one axis for output window ``o``."""
    start = o * stride - pad
    end = min(start + kernel, size + pad)
    if include_pad:
        return end - start
    return min(end, size) - max(start, 0)


@cuda.jit(device=True, inline=True)
def _window_origin(f, ho_size, wo_size, sh, sw, ph, pw):
    """(plane, oh, ow, h0, w0): the coordinates of output ``f`` and its window's first tap
    (row h0, column w0; negative in the padding)."""
    pc, oh, ow = split3(f, ho_size, wo_size)
    return pc, oh, ow, oh * sh - ph, ow * sw - pw


@cuda.jit(device=True, inline=True)
def argmax_gather(gy, idx, pc, me, oh0, oh1, ow0, ow1, s):
    """``s`` plus the gradients of the windows [oh0, oh1) x [ow0, ow1) of plane ``pc``
    whose index is ``me`` (the max-pooling gather, plain and adaptive)."""
    for oh in range(oh0, oh1):
        for ow in range(ow0, ow1):
            if idx[pc, oh, ow] == me:
                s += gy[pc, oh, ow]
    return s


@functools.cache
def pool_kernels(dtype: np.dtype) -> SimpleNamespace:
    """The pooling kernels for ``dtype``; x, gx: (planes, H, W); out, gy, idx: (planes,
    Ho, Wo); all C-contiguous:

    - ``max_forward(x, out, idx, kh, kw, sh, sw, ph, pw, dh, dw)`` (idx may be None)
    - ``max_backward(gy, idx, gx, kh, kw, sh, sw, ph, pw, dh, dw)``
    - ``check_indices(idx, bad, height, width, kh, kw, sh, sw, ph, pw, dh, dw)``: sets
      ``bad[0] = 1`` if an index is not a tap of its window (leaves it otherwise)
    - ``max_backward_scan(gy, idx, gx)``: the gather over every window of the plane
    - ``avg_forward(x, out, kh, kw, sh, sw, ph, pw, include_pad)``
    - ``avg_backward(gy, gx, kh, kw, sh, sw, ph, pw, include_pad)``
    """
    F = numba.from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def max_forward(x, out, idx, kh, kw, sh, sw, ph, pw, dh, dw):
        planes, height, width = x.shape
        _, ho_size, wo_size = out.shape
        for f in range(cuda.grid(1), planes * ho_size * wo_size, cuda.gridsize(1)):
            pc, oh, ow, h0, w0 = _window_origin(f, ho_size, wo_size, sh, sw, ph, pw)
            best = zero
            best_index = -1
            for i in range(kh):
                h = h0 + i * dh
                if 0 <= h < height:
                    for j in range(kw):
                        w = w0 + j * dw
                        if 0 <= w < width:
                            v = x[pc, h, w]
                            if best_index < 0 or v > best or v != v:
                                best = v
                                best_index = h * width + w
            out[pc, oh, ow] = best
            if idx is not None:
                idx[pc, oh, ow] = best_index

    @cuda.jit
    def max_backward(gy, idx, gx, kh, kw, sh, sw, ph, pw, dh, dw):
        planes, height, width = gx.shape
        _, ho_size, wo_size = gy.shape
        for f in range(cuda.grid(1), planes * height * width, cuda.gridsize(1)):
            pc, h, w = split3(f, height, width)
            me = h * width + w
            s = zero
            for i in range(kh):
                hh = h + ph - i * dh  # = oh * sh for the window that has (h, w) as tap i
                if hh >= 0 and hh % sh == 0 and hh // sh < ho_size:
                    oh = hh // sh
                    for j in range(kw):
                        ww = w + pw - j * dw
                        if ww >= 0 and ww % sw == 0 and ww // sw < wo_size:
                            ow = ww // sw
                            if idx[pc, oh, ow] == me:
                                s += gy[pc, oh, ow]
            gx[pc, h, w] = s

    @cuda.jit
    def check_indices(idx, bad, height, width, kh, kw, sh, sw, ph, pw, dh, dw):
        planes, ho_size, wo_size = idx.shape
        for f in range(cuda.grid(1), planes * ho_size * wo_size, cuda.gridsize(1)):
            pc, oh, ow = split3(f, ho_size, wo_size)
            index = idx[pc, oh, ow]
            h = index // width
            dh_off = h - (oh * sh - ph)
            dw_off = index - h * width - (ow * sw - pw)
            tap = (
                dh_off >= 0 and dh_off % dh == 0 and dh_off // dh < kh
                and dw_off >= 0 and dw_off % dw == 0 and dw_off // dw < kw
            )  # fmt: skip
            if not tap:
                bad[0] = 1  # every writer writes the same value

    @cuda.jit
    def max_backward_scan(gy, idx, gx):
        planes, height, width = gx.shape
        _, ho_size, wo_size = gy.shape
        for f in range(cuda.grid(1), planes * height * width, cuda.gridsize(1)):
            pc, h, w = split3(f, height, width)
            gx[pc, h, w] = argmax_gather(gy, idx, pc, h * width + w, 0, ho_size, 0, wo_size, zero)

    @cuda.jit
    def avg_forward(x, out, kh, kw, sh, sw, ph, pw, include_pad):
        planes, height, width = x.shape
        _, ho_size, wo_size = out.shape
        for f in range(cuda.grid(1), planes * ho_size * wo_size, cuda.gridsize(1)):
            pc, oh, ow, h0, w0 = _window_origin(f, ho_size, wo_size, sh, sw, ph, pw)
            s = zero
            for h in range(max(h0, 0), min(h0 + kh, height)):
                for w in range(max(w0, 0), min(w0 + kw, width)):
                    s += x[pc, h, w]
            rows = _window_size(oh, height, kh, sh, ph, include_pad)
            cols = _window_size(ow, width, kw, sw, pw, include_pad)
            out[pc, oh, ow] = s / F(rows * cols)

    @cuda.jit
    def avg_backward(gy, gx, kh, kw, sh, sw, ph, pw, include_pad):
        planes, height, width = gx.shape
        _, ho_size, wo_size = gy.shape
        for f in range(cuda.grid(1), planes * height * width, cuda.gridsize(1)):
            pc, h, w = split3(f, height, width)
            s = zero
            oh_end = min(ho_size, (h + ph) // sh + 1)
            ow_end = min(wo_size, (w + pw) // sw + 1)
            for oh in range(_first_window(h, ph, kh, sh), oh_end):
                rows = _window_size(oh, height, kh, sh, ph, include_pad)
                for ow in range(_first_window(w, pw, kw, sw), ow_end):
                    cols = _window_size(ow, width, kw, sw, pw, include_pad)
                    s += gy[pc, oh, ow] / F(rows * cols)
            gx[pc, h, w] = s

    return SimpleNamespace(
        max_forward=max_forward,
        max_backward=max_backward,
        check_indices=check_indices,
        max_backward_scan=max_backward_scan,
        avg_forward=avg_forward,
        avg_backward=avg_backward,
    )
