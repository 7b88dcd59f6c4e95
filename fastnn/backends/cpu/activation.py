"""relu / sigmoid / tanh and activation_backward on the CPU: kernels/cpu/activation.pyx.

The kernels take any float array (non-contiguous ones are copied once), allocate the
C-contiguous result and split large arrays over threads, so these wrappers stay one line:
per-call overhead matters for tiny arrays.
"""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register
from fastnn._threads import get_num_threads
from fastnn.kernels.cpu import activation as _k

#: Activation names -> the kernels' codes.
CODES = {None: _k.IDENTITY, "relu": _k.RELU, "sigmoid": _k.SIGMOID, "tanh": _k.TANH}

_RELU, _SIGMOID, _TANH = _k.RELU, _k.SIGMOID, _k.TANH
_activate = _k.activate


@register("relu", "cpu")
def relu(x: np.ndarray) -> np.ndarray:
    return _activate(_RELU, x, get_num_threads())


@register("sigmoid", "cpu")
def sigmoid(x: np.ndarray) -> np.ndarray:
    return _activate(_SIGMOID, x, get_num_threads())


@register("tanh", "cpu")
def tanh(x: np.ndarray) -> np.ndarray:
    return _activate(_TANH, x, get_num_threads())


@register("activation_backward", "cpu")
def activation_backward(name: str, gy: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _k.backward(CODES[name], gy, y, get_num_threads())
