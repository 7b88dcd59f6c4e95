"""Elementwise activations and their backward: one thread per element of flat,
C-contiguous arrays, grid-stride loops.  The activation is a runtime code, so one
compiled kernel per dtype serves several: relu / sigmoid / tanh with the codes of
kernels/numba_cuda/pointwise.py (:func:`activation_kernels`), hardtanh, leaky_relu, silu
and gelu with this module's own (:func:`extra_kernels`)."""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from numba import cuda

from fastnn.kernels.numba_cuda.pointwise import functions

#: Threads per block of the elementwise kernels (fewer for tiny arrays).
THREADS = 256


@functools.cache
def activation_kernels(dtype: np.dtype) -> SimpleNamespace:
    """``forward(code, x, out)``: out = f(x); ``backward(code, g, y, out)``: out = g * f'
    computed from the forward output y."""
    f = functions(np.dtype(dtype))
    activate, input_grad = f.activate, f.input_grad

    @cuda.jit
    def forward(code, x, out):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            out[i] = activate(code, x[i])

    @cuda.jit
    def backward(code, g, y, out):
        for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
            out[i] = input_grad(code, g[i], y[i])

    return SimpleNamespace(forward=forward, backward=backward)


#: Codes of :func:`extra_kernels` (the activations pointwise.py's codes do not cover).
HARDTANH, LEAKY_RELU, SILU, GELU, GELU_TANH = 0, 1, 2, 3, 4
#: |x| beyond which gelu's tanh form takes its cubic at the bound (tanh is +-1 there
#: already, and x**3 cannot overflow: 0 * inf would make the gradient NaN).
GELU_CUBIC_BOUND = 100.0


@functools.cache
def extra_kernels(dtype: np.dtype) -> SimpleNamespace:
    """hardtanh (p0, p1 = min_val, max_val), leaky_relu (p0 = negative_slope), silu and
    gelu (exact, tanh form): ``forward(code, x, out, p0, p1)``: out = f(x) (out may be x);
    ``backward(code, g, v, out, p0, p1)``: out = g * f', from the forward output v for
    hardtanh and leaky_relu, from the forward input v for silu and gelu.  p0 and p1 must
    be scalars of ``dtype`` (a Python float would make float32 arithmetic float64)."""
    t = np.dtype(dtype).type
    zero, half, one, two = t(0), t(0.5), t(1), t(2)
    sqrt1_2, inv_sqrt_2pi = t(0.7071067811865476), t(0.3989422804014327)
    beta, kappa, kappa3 = t(0.7978845608028654), t(0.044715), t(3 * 0.044715)
    bound = t(GELU_CUBIC_BOUND)

    @cuda.jit(device=True, inline=True)
    def inner(x):
        b = -bound if x < -bound else (bound if x > bound else x)
        return beta * b * (one + kappa * b * b), beta * (one + kappa3 * b * b)

    @cuda.jit(device=True, inline=True)
    def sigmoid(z):
        """1 / (1 + exp(-z)) from e = exp(-|z|): no overflow (the simulator's math.exp
        raises where a GPU gives inf)."""
        e = math.exp(-abs(z))
        r = one / (one + e)
        return r if z >= zero else e * r

    @cuda.jit(device=True, inline=True)
    def f(code, x, p0, p1):
        if code == HARDTANH:  # NaN fails both compares and stays NaN
            return p0 if x < p0 else (p1 if x > p1 else x)
        if code == LEAKY_RELU:
            return x if x > zero else x * p0
        if code == SILU:
            return x * sigmoid(x)
        if code == GELU:
            return x * half * (one + math.erf(x * sqrt1_2))
        if code == GELU_TANH:  # x (1 + tanh(u)) / 2 = x sigmoid(2u)
            u, _ = inner(x)
            return x * sigmoid(two * u)
        return x

    @cuda.jit(device=True, inline=True)
    def grad(code, g, v, p0, p1):
        if code == HARDTANH:
            return zero if (v <= p0 or v >= p1) else g
        if code == LEAKY_RELU:
            return g if v > zero else g * p0
        if code == SILU:  # s (1 + x (1 - s)), s and 1 - s from e = exp(-|x|)
            e = math.exp(-abs(v))
            p = one / (one + e)
            s = p if v >= zero else e * p
            c = e * p if v >= zero else p
            return g * (s * (one + v * c))
        if code == GELU:
            pdf = math.exp(-half * v * v) * inv_sqrt_2pi
            return g * (half * (one + math.erf(v * sqrt1_2)) + v * pdf)
        if code == GELU_TANH:  # sigmoid(2u) + x / 2 sech^2(u) u'
            u, slope = inner(v)
            e = math.exp(-two * abs(u))
            r = one / (one + e)
            s = r if u >= zero else e * r
            return g * (s + two * v * (e * r * r) * slope)
        return g

    @cuda.jit
    def forward(code, x, out, p0, p1):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            out[i] = f(code, x[i], p0, p1)

    @cuda.jit
    def backward(code, g, v, out, p0, p1):
        for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
            out[i] = grad(code, g[i], v[i], p0, p1)

    return SimpleNamespace(forward=forward, backward=backward)
