"""softmax / log_softmax along any axis and their gradients (kernels/cuda/softmax.cu).

The input is viewed as (outer, d, inner) with d the softmax axis.  Along the last axis
(inner == 1) with rows of at least ROW_KERNEL_MIN elements, one block reduces each row;
otherwise one thread walks each line (outer, inner), reading neighbouring lines at
neighbouring addresses."""

from __future__ import annotations

import math
from typing import Any

import cupy

from fastnn._backends.cupy._runtime import (
    contiguous,
    cupy_arrays,
    i64,
    kernel,
    launch_1d,
    run_rows,
)
from fastnn._dispatch import register

#: Shortest row for which the block-per-row kernel beats a thread per row.
ROW_KERNEL_MIN = 32


def _split(shape: tuple[int, ...], dim: int) -> tuple[int, int, int]:
    """(outer, d, inner) of ``shape`` around axis ``dim`` (a 0-d array is one line of 1)."""
    if not shape:
        return 1, 1, 1
    return math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1 :])


def _run(name: str, log: bool, arrays: tuple, out: Any, dim: int) -> Any:
    outer, d, inner = _split(tuple(out.shape), dim)
    if out.size == 0:
        return out
    inputs = tuple(contiguous(a) for a in arrays)
    if inner == 1 and d >= ROW_KERNEL_MIN:
        args = (*inputs, out, i64(outer), i64(d))
        run_rows("softmax.cu", f"{name}_rows", out.dtype, (log,), outer, d, args)
    else:
        kern = kernel("softmax.cu", f"{name}_strided", out.dtype, log)
        launch_1d(kern, outer * inner, (*inputs, out, i64(outer), i64(d), i64(inner)))
    return out


@register("softmax", "cupy")
@cupy_arrays
def softmax(x: Any, dim: int) -> Any:
    """exp(x - max) / sum(exp(x - max)) along ``dim``."""
    return _run("softmax", False, (x,), cupy.empty(x.shape, dtype=x.dtype), dim)


@register("log_softmax", "cupy")
@cupy_arrays
def log_softmax(x: Any, dim: int) -> Any:
    """(x - max) - log(sum(exp(x - max))) along ``dim``."""
    return _run("softmax", True, (x,), cupy.empty(x.shape, dtype=x.dtype), dim)


@register("softmax_backward", "cupy")
@cupy_arrays
def softmax_backward(gy: Any, y: Any, dim: int) -> Any:
    """y * (gy - sum(gy * y)) along ``dim``."""
    return _run("softmax_backward", False, (gy, y), cupy.empty(gy.shape, dtype=gy.dtype), dim)


@register("log_softmax_backward", "cupy")
@cupy_arrays
def log_softmax_backward(gy: Any, y: Any, dim: int) -> Any:
    """gy - exp(y) * sum(gy) along ``dim``."""
    return _run("softmax_backward", True, (gy, y), cupy.empty(gy.shape, dtype=gy.dtype), dim)
