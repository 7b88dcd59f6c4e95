"""Device functions shared by the kernels: activations, their derivatives, NaN-aware min/max.

Every kernel module builds its kernels per dtype (see :func:`functions`), so that the
constants in the arithmetic have the array's own type: a Python float literal would turn
float32 arithmetic into float64 on the GPU.  Activation codes are plain ints so that one
compiled kernel serves every activation.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from numba import cuda

#: Activation codes understood by :func:`functions` ``.activate`` and ``.derivative``.
IDENTITY, RELU, SIGMOID, TANH = 0, 1, 2, 3
#: relu6 (min(max(u, 0), 6)): the convolutions' fused activation.
RELU6 = 4

#: Activation names (as in the public API) -> codes.
CODES = {None: IDENTITY, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH, "relu6": RELU6}


@functools.cache
def functions(dtype: np.dtype) -> SimpleNamespace:
    """The device functions for arrays of ``dtype``, compiled lazily at their first use.

    - ``activate(code, u)``: f(u); sigmoid without overflow, NaN kept by relu.
    - ``derivative(code, u)``: f'(u) at the pre-activation u (relu: 1 where u > 0).
    - ``input_grad(code, g, y)``: g * f'(u) from the output y = f(u) (relu: g where not
      y <= 0, so a NaN output passes g through, as in PyTorch).
    - ``nan_max(a, b)`` / ``nan_min(a, b)``: max / min where a NaN on either side wins.
    """
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)
    six = np.dtype(dtype).type(6)

    @cuda.jit(device=True, inline=True)
    def sigmoid(u):
        e = math.exp(-abs(u))
        if u >= zero:
            return one / (one + e)
        return e / (one + e)

    @cuda.jit(device=True, inline=True)
    def activate(code, u):
        if code == RELU:
            return zero if u < zero else u
        if code == RELU6:  # NaN fails both compares and stays NaN
            return zero if u < zero else (six if u > six else u)
        if code == SIGMOID:
            return sigmoid(u)
        if code == TANH:
            return math.tanh(u)
        return u

    @cuda.jit(device=True, inline=True)
    def derivative(code, u):
        if code == RELU:
            return one if u > zero else zero
        if code == RELU6:
            return one if zero < u < six else zero
        if code == SIGMOID:
            s = sigmoid(u)
            return s * (one - s)
        if code == TANH:
            t = math.tanh(u)
            return one - t * t
        return one

    @cuda.jit(device=True, inline=True)
    def input_grad(code, g, y):
        if code == RELU:  # a selection, not a product: g passes where y is NaN, as in PyTorch
            return zero if y <= zero else g
        if code == RELU6:  # as hardtanh's: g where 0 < y < 6, and where y is NaN
            return zero if (y <= zero or y >= six) else g
        if code == SIGMOID:
            return g * y * (one - y)
        if code == TANH:
            return g * (one - y * y)
        return g

    @cuda.jit(device=True, inline=True)
    def nan_max(a, b):
        if a != a:
            return a
        if b != b or b > a:
            return b
        return a

    @cuda.jit(device=True, inline=True)
    def nan_min(a, b):
        if a != a:
            return a
        if b != b or b < a:
            return b
        return a

    return SimpleNamespace(
        zero=zero,
        one=one,
        sigmoid=sigmoid,
        activate=activate,
        derivative=derivative,
        input_grad=input_grad,
        nan_max=nan_max,
        nan_min=nan_min,
    )
