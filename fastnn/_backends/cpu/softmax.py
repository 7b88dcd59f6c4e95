"""softmax / log_softmax and their backward on the CPU: kernels/cpu/softmax.pyx."""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register
from fastnn._threads import team_size
from fastnn.kernels.cpu import softmax as _k

_SOFTMAX, _LOG_SOFTMAX = 0, 1


@register("softmax", "cpu")
def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    return _k.forward(_SOFTMAX, x, dim, team_size())


@register("log_softmax", "cpu")
def log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    return _k.forward(_LOG_SOFTMAX, x, dim, team_size())


@register("softmax_backward", "cpu")
def softmax_backward(gy: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    return _k.backward(_SOFTMAX, gy, y, dim, team_size())


@register("log_softmax_backward", "cpu")
def log_softmax_backward(gy: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    return _k.backward(_LOG_SOFTMAX, gy, y, dim, team_size())
