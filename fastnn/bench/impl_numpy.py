"""The NumPy peer: each op written the way a NumPy user would, in the input's dtype.

Convolution is im2col + BLAS: a strided window view of the padded input that
``tensordot`` copies into a matrix and multiplies with OpenBLAS's sgemm.  Every function
takes its array module from its first argument, so the same code is the CuPy peer (on a
GPU, ``tensordot`` calls cuBLAS).  Only ``groups == 1`` is needed by the benchmark shapes.
"""

from __future__ import annotations

import itertools
import math
import sys
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "activation",
    "activation_backward",
    "avg_pool",
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
    "avg_pool_backward",
    "conv",
    "conv_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "derivative",
    "log_softmax_backward",
    "mse_loss_backward",
    "softmax_backward",
    "im2col_bytes",
    "linear",
    "linear_backward",
    "log_softmax",
    "max_pool",
    "max_pool_backward",
    "mlp_backward",
    "mse_loss",
    "sensitivity",
    "softmax",
]


def xp_of(a: Any) -> ModuleType:
    """numpy, or cupy for a cupy array (never imports cupy)."""
    if type(a).__module__.split(".")[0] == "cupy":
        return sys.modules["cupy"]
    return np


# ---------------------------------------------------------------------------------------
# Convolution: im2col + GEMM
# ---------------------------------------------------------------------------------------


def _out_size(size, kernel, stride, pad, dilation) -> tuple[int, ...]:
    return tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(size, kernel, stride, pad, dilation)
    )


def _windows(xp, xpad, out, kernel, stride, dilation):
    """The view (N, C, *out, *kernel) of every window of the padded input."""
    sn, sc, *sp = xpad.strides
    shape = (*xpad.shape[:2], *out, *kernel)
    strides = (
        sn,
        sc,
        *(s * st for s, st in zip(sp, stride)),
        *(s * d for s, d in zip(sp, dilation)),
    )
    return xp.lib.stride_tricks.as_strided(xpad, shape, strides)


def _pad(xp, x, pad, value=0.0):
    widths = ((0, 0), (0, 0), *((p, p) for p in pad))
    return xp.pad(x, widths, constant_values=value) if any(pad) else x


def im2col_bytes(x_shape, w_shape, stride, pad, dilation, itemsize: int) -> int:
    """Bytes of the im2col matrix :func:`conv` builds (to skip shapes that do not fit)."""
    n, c, *size = x_shape
    kernel = w_shape[2:]
    out = _out_size(size, kernel, stride, pad, dilation)
    return n * c * math.prod(kernel) * math.prod(out) * itemsize


def conv(x, w, b, stride, pad, dilation):
    """Cross-correlation (N, C, *size) x (K, C, *kernel) -> (N, K, *out), im2col + GEMM."""
    xp = xp_of(x)
    nd = x.ndim - 2
    kernel = w.shape[2:]
    out = _out_size(x.shape[2:], kernel, stride, pad, dilation)
    win = _windows(xp, _pad(xp, x, pad), out, kernel, stride, dilation)
    axes_w = list(range(1, nd + 2))  # C, *kernel
    axes_x = [1, *range(2 + nd, 2 + 2 * nd)]
    y = xp.moveaxis(xp.tensordot(w, win, axes=(axes_w, axes_x)), 0, 1)  # (N, K, *out)
    if b is not None:
        y = y + b.reshape(1, -1, *([1] * nd))
    return xp.ascontiguousarray(y)


def conv_backward(gy, x, w, stride, pad, dilation):
    """(grad_input, grad_weight, grad_bias) of :func:`conv`: grad_weight as one GEMM with
    the im2col matrix, grad_input as one GEMM then col2im (a sum over kernel offsets)."""
    xp = xp_of(x)
    nd = x.ndim - 2
    kernel = w.shape[2:]
    out = gy.shape[2:]
    xpad = _pad(xp, x, pad)
    win = _windows(xp, xpad, out, kernel, stride, dilation)
    spatial = list(range(2, 2 + nd))
    gw = xp.tensordot(gy, win, axes=([0, *spatial], [0, *spatial]))  # (K, C, *kernel)
    cols = xp.tensordot(w, gy, axes=([0], [1]))  # (C, *kernel, N, *out)
    gxp = xp.zeros(xpad.shape, dtype=x.dtype)
    for offset in itertools.product(*(range(k) for k in kernel)):
        where = tuple(
            slice(o * d, o * d + s * (n - 1) + 1, s)
            for o, d, s, n in zip(offset, dilation, stride, out)
        )
        gxp[(slice(None), slice(None), *where)] += xp.moveaxis(cols[(slice(None), *offset)], 0, 1)
    inner = tuple(slice(p, p + n) for p, n in zip(pad, x.shape[2:]))
    gx = xp.ascontiguousarray(gxp[(slice(None), slice(None), *inner)])
    return gx, xp.ascontiguousarray(gw), gy.sum(axis=(0, *spatial))


# ---------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------


def _pool_view(x, kernel, stride, pad, fill):
    xp = xp_of(x)
    nd = x.ndim - 2
    k, s, p = (kernel,) * nd, (stride,) * nd, (pad,) * nd
    out = _out_size(x.shape[2:], k, s, p, (1,) * nd)
    return _windows(xp, _pad(xp, x, p, fill), out, k, s, (1,) * nd), nd


def max_pool(x, kernel, stride, pad):
    """Max pooling (floor mode, dilation 1) over a window view."""
    win, nd = _pool_view(x, kernel, stride, pad, -np.inf)
    return win.max(axis=tuple(range(-nd, 0)))


def avg_pool(x, kernel, stride, pad):
    """Average pooling, padding counted in the divisor (count_include_pad=True)."""
    win, nd = _pool_view(x, kernel, stride, pad, 0.0)
    return win.mean(axis=tuple(range(-nd, 0)), dtype=x.dtype)


def max_pool_backward(gy, x, indices):
    """Scatter ``gy`` to the argmax positions (flat per plane, as PyTorch returns them)."""
    xp = xp_of(gy)
    planes = x.shape[0] * x.shape[1]
    plane = math.prod(x.shape[2:])
    flat = indices.reshape(planes, -1) + (xp.arange(planes) * plane)[:, None]
    gx = xp.bincount(flat.ravel(), weights=gy.ravel(), minlength=planes * plane)
    return gx.astype(x.dtype).reshape(x.shape)


def avg_pool_backward(gy, x_shape, kernel, stride, pad):
    """Spread ``gy / window size`` back over every window (count_include_pad=True)."""
    xp = xp_of(gy)
    nd = gy.ndim - 2
    padded = (*x_shape[:2], *(n + 2 * pad for n in x_shape[2:]))
    gxp = xp.zeros(padded, dtype=gy.dtype)
    share = gy / kernel**nd
    for offset in itertools.product(range(kernel), repeat=nd):
        where = tuple(
            slice(o, o + stride * (n - 1) + 1, stride) for o, n in zip(offset, gy.shape[2:])
        )
        gxp[(slice(None), slice(None), *where)] += share
    inner = tuple(slice(pad, pad + n) for n in x_shape[2:])
    return xp.ascontiguousarray(gxp[(slice(None), slice(None), *inner)])


# ---------------------------------------------------------------------------------------
# Activations, softmax, dense layers
# ---------------------------------------------------------------------------------------


def activation(name: str | None, x):
    """relu, sigmoid or tanh (None: identity), in the input's dtype."""
    xp = xp_of(x)
    if name == "relu":
        return xp.maximum(x, 0)
    if name == "sigmoid":
        with np.errstate(over="ignore"):
            return 1 / (1 + xp.exp(-x))
    if name == "tanh":
        return xp.tanh(x)
    return x


def activation_backward(name: str, gy, y):
    """d loss / d input from the forward output ``y``."""
    if name == "relu":
        return gy * (y > 0)
    if name == "sigmoid":
        return gy * y * (1 - y)
    return gy * (1 - y * y)


def derivative(name: str | None, u):
    """f'(u) from the pre-activation."""
    if name is None:
        return 1
    if name == "relu":
        return u > 0
    if name == "sigmoid":
        s = activation("sigmoid", u)
        return s * (1 - s)
    return 1 - xp_of(u).tanh(u) ** 2


def softmax(x, dim=-1):
    xp = xp_of(x)
    e = xp.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def log_softmax(x, dim=-1):
    xp = xp_of(x)
    z = x - x.max(axis=dim, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=dim, keepdims=True))


def softmax_backward(gy, y, dim=-1):
    return y * (gy - (gy * y).sum(axis=dim, keepdims=True))


def log_softmax_backward(gy, y, dim=-1):
    return gy - xp_of(y).exp(y) * gy.sum(axis=dim, keepdims=True)


def linear(x, w, b, act):
    """act(x @ w.T + b)."""
    u = x @ w.T
    if b is not None:
        u += b
    return activation(act, u)


def linear_backward(gy, x, w):
    return gy @ w, gy.T @ x, gy.sum(axis=0)


# ---------------------------------------------------------------------------------------
# Losses (mean reduction)
# ---------------------------------------------------------------------------------------


def mse_loss(x, t):
    return ((x - t) ** 2).mean()


def mse_loss_backward(x, t):
    return (x - t) * (2 / x.size)


def binary_cross_entropy(x, t):
    """PyTorch's definition: each log clamped at -100."""
    xp = xp_of(x)
    with np.errstate(divide="ignore"):
        log_x = xp.maximum(xp.log(x), -100)
        log_1mx = xp.maximum(xp.log(1 - x), -100)
    return -(t * log_x + (1 - t) * log_1mx).mean()


def binary_cross_entropy_backward(x, t):
    return (x - t) / xp_of(x).maximum(x * (1 - x), 1e-12) / x.size


def cross_entropy(z, t):
    rows = xp_of(z).arange(z.shape[0])
    return -log_softmax(z, 1)[rows, t].mean()


def cross_entropy_backward(z, t):
    p = softmax(z, 1)
    p[xp_of(z).arange(z.shape[0]), t] -= 1
    return p / z.shape[0]


# ---------------------------------------------------------------------------------------
# The sensitivity recursion
# ---------------------------------------------------------------------------------------


def sensitivity(delta_next, w_next, u, act):
    """BP2: f'(u) * (delta_next @ w_next)."""
    return derivative(act, u) * (delta_next @ w_next)


def mlp_backward(inputs, preacts, weights, delta_out, acts, sensitivity=sensitivity):
    """BP2-BP4 over a stack of dense layers; [(grad_weight, grad_bias), ...].  Any array
    library with ``@``, ``.T`` and ``.sum(axis=...)``: ``sensitivity`` is its BP2 (the
    PyTorch peer passes its own)."""
    grads = [None] * len(weights)
    delta = delta_out
    for m in range(len(weights) - 1, -1, -1):
        grads[m] = (delta.T @ inputs[m], delta.sum(axis=0))
        if m > 0:
            delta = sensitivity(delta, weights[m], preacts[m - 1], acts[m - 1])
    return grads
