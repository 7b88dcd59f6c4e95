"""Host-side wrappers of kernels/cpu/elementwise.pyx: dropout, its backward and the fused
residual add.  The kernels take flat C-contiguous arrays; non-contiguous inputs are
copied first.  A bool dropout mask is read as uint8 (a view, no copy)."""

from __future__ import annotations

import numpy as np

from fastnn._backends.cpu import _outputs
from fastnn._dispatch import register
from fastnn._threads import team_size
from fastnn.kernels.cpu import elementwise as _kernels


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


@register("dropout", "cpu")
def _dropout(x, p: float, threshold: int, seed: int | None):
    """(x * mask / (1 - p), uint8 mask), or (copy of x, None) when seed is None."""
    if seed is None:
        return np.array(x, order="C", copy=True), None
    y = _outputs.empty_shaped(x.shape, x.dtype)
    mask = _outputs.empty_shaped(x.shape, np.uint8)
    _kernels.dropout(
        _flat(x), y.reshape(-1), mask.reshape(-1), seed, threshold, 1.0 / (1.0 - p),
        team_size(),
    )  # fmt: skip
    return y, mask


@register("dropout_backward", "cpu")
def _dropout_backward(gy, mask, p: float):
    """gy * [mask != 0] / (1 - p); a copy of gy when mask is None."""
    if mask is None:
        return np.array(gy, order="C", copy=True)
    gx = _outputs.empty_shaped(gy.shape, gy.dtype)
    flat_mask = _flat(mask).view(np.uint8)
    _kernels.dropout_backward(_flat(gy), flat_mask, gx.reshape(-1), 1.0 / (1.0 - p), team_size())
    return gx


@register("add", "cpu")
def _add(a, b, activation: str | None):
    """activation(a + b)."""
    y = _outputs.empty_shaped(a.shape, a.dtype)
    code = _kernels.ADD_CODES[activation]
    _kernels.add(code, _flat(a), _flat(b), y.reshape(-1), team_size())
    return y
