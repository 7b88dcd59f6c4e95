"""softmax / log_softmax and their backward on the GPU: one launch each
(kernels/numba_cuda/softmax.py), a team of threads per row around the softmax axis."""

from __future__ import annotations

import math
from typing import Any

from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import device_arrays, empty, launch
from fastnn._dispatch import register
from fastnn.kernels.numba_cuda.reduce import BLOCK
from fastnn.kernels.numba_cuda.softmax import softmax_kernels


def rows_view(x: Any, dim: int) -> Any:
    """The C-contiguous ``x`` as 3-d (outer, length, inner) around axis ``dim``."""
    shape = tuple(x.shape)
    return x.reshape(math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1 :]))


def softmax_launch(x3: Any) -> tuple[int, int, int]:
    """(blocks, threads, team) for the row kernels on a 3-d (outer, length, inner) view."""
    outer, length, inner = x3.shape
    if length == 0:  # nothing to compute (and row kernels read each row's first element)
        return 0, 0, 1
    return _launch.teams(outer * inner, length, BLOCK)


def _softmax_forward(x: Any, dim: int, log: bool) -> Any:
    out = empty(x.shape, x.dtype)
    x3, out3 = rows_view(x, dim), rows_view(out, dim)
    blocks, threads, team = softmax_launch(x3)
    launch(softmax_kernels(x.dtype).forward, blocks, threads, x3, out3, team, log)
    return out


def _softmax_backward(gy: Any, y: Any, dim: int, log: bool) -> Any:
    out = empty(gy.shape, gy.dtype)
    g3, y3, out3 = rows_view(gy, dim), rows_view(y, dim), rows_view(out, dim)
    blocks, threads, team = softmax_launch(g3)
    launch(softmax_kernels(gy.dtype).backward, blocks, threads, g3, y3, out3, team, log)
    return out


@register("softmax", "numba-cuda")
@device_arrays
def _softmax(x, dim: int):
    return _softmax_forward(x, dim, False)


@register("log_softmax", "numba-cuda")
@device_arrays
def _log_softmax(x, dim: int):
    return _softmax_forward(x, dim, True)


@register("softmax_backward", "numba-cuda")
@device_arrays
def _softmax_bw(gy, y, dim: int):
    return _softmax_backward(gy, y, dim, False)


@register("log_softmax_backward", "numba-cuda")
@device_arrays
def _log_softmax_bw(gy, y, dim: int):
    return _softmax_backward(gy, y, dim, True)
