"""Dropout, its backward and the fused residual add on the GPU
(kernels/cuda/dropout_add.cu), with the same random stream as every other backend.

The kernels take the uint8 mask as the int words of a buffer padded to a multiple of 4
bytes (their scalar and pointer arguments are int, long long and float types only); the
mask returned is a C-contiguous view of the first ``n`` bytes of that buffer.
"""

from __future__ import annotations

from typing import Any

import cupy
import numpy as np

from fastnn._backends.cupy._runtime import contiguous, cupy_arrays, i64, kernel, launch_1d, scalar
from fastnn._dispatch import register

_ADD_CODES = {None: 0, "relu": 1, "relu6": 2}


def _bits(value: int) -> np.int64:
    """A uint64 as the long long with the same bits."""
    return np.int64(value - (1 << 64) if value >= 1 << 63 else value)


def _mask_words(n: int) -> Any:
    """A zeroed byte buffer of n bytes rounded up to whole int32 words."""
    return cupy.zeros((max(1, -(-n // 4)) * 4,), dtype=np.uint8)


@register("dropout", "cupy")
@cupy_arrays
def dropout(x: Any, p: float, threshold: int, seed: int | None) -> tuple[Any, Any]:
    """(x * mask / (1 - p), uint8 mask), or (a copy of x, None) when seed is None."""
    if seed is None:
        return x.copy(), None  # C order: cupy and numpy copy to C order by default
    n = x.size
    y = cupy.empty(x.shape, dtype=x.dtype)
    words = _mask_words(n)
    kern = kernel("dropout_add.cu", "dropout_forward", x.dtype)
    args = (contiguous(x), y, words.view(np.int32), i64(n), _bits(seed), i64(threshold),
            scalar(x.dtype, 1.0 / (1.0 - p)))  # fmt: skip
    launch_1d(kern, n, args)
    return y, words[:n].reshape(x.shape)


@register("dropout_backward", "cupy")
@cupy_arrays
def dropout_backward(gy: Any, mask: Any | None, p: float) -> Any:
    """gy * [mask != 0] / (1 - p); a copy of gy when mask is None."""
    if mask is None:
        return gy.copy()
    n = gy.size
    flat = contiguous(mask).reshape(-1).view(np.uint8)
    if n % 4:
        words = _mask_words(n)
        words[:n] = flat
    else:
        words = flat if n else _mask_words(0)
    gx = cupy.empty(gy.shape, dtype=gy.dtype)
    kern = kernel("dropout_add.cu", "dropout_backward", gy.dtype)
    args = (contiguous(gy), words.view(np.int32), gx, i64(n), scalar(gy.dtype, 1.0 / (1.0 - p)))
    launch_1d(kern, n, args)
    return gx


@register("add", "cupy")
@cupy_arrays
def add(a: Any, b: Any, activation: str | None) -> Any:
    """activation(a + b)."""
    y = cupy.empty(a.shape, dtype=a.dtype)
    kern = kernel("dropout_add.cu", "residual_add", a.dtype, _ADD_CODES[activation])
    launch_1d(kern, y.size, (contiguous(a), contiguous(b), y, i64(y.size)))
    return y
