"""Host-side wrappers of kernels/cpu/activation.pyx: contiguity, allocation, threads."""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register
from fastnn._threads import get_num_threads
from fastnn.kernels.cpu import activation as _k

_BACKWARD_CODE = {"relu": 0, "sigmoid": 1, "tanh": 2}


def _elementwise(kernel):
    def run(x):
        x = np.asarray(x, order="C")
        out = np.empty_like(x, order="C")
        kernel(x.reshape(-1), out.reshape(-1), get_num_threads())
        return out

    return run


register("relu", "cpu")(_elementwise(_k.relu))
register("sigmoid", "cpu")(_elementwise(_k.sigmoid))
register("tanh", "cpu")(_elementwise(_k.tanh_))


@register("activation_backward", "cpu")
def _activation_backward(name, gy, y):
    gy = np.asarray(gy, order="C")
    y = np.asarray(y, order="C")
    out = np.empty_like(gy, order="C")
    _k.backward(
        _BACKWARD_CODE[name], gy.reshape(-1), y.reshape(-1), out.reshape(-1), get_num_threads()
    )
    return out
