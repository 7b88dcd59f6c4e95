"""The JAX peer: XLA CPU's own convolution, pooling and dense ops, each one jitted function
(compiled once per configuration) whose result is waited for (``block_until_ready``).
Backward ops are the jitted VJPs XLA derives (for max pooling, select-and-scatter, which
recomputes the forward's window maxima).  Imported only when jax is installed.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["conv", "conv_backward", "linear", "linear_backward", "pool", "pool_backward"]

_ACT = {None: lambda y: y, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}


def _tuple(value, nd: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * nd


@functools.lru_cache(maxsize=256)
def _conv_fn(nd: int, stride, pad, dilation, with_bias: bool):
    def conv(x, w, b):
        y = lax.conv_general_dilated(
            x, w, _tuple(stride, nd), [(p, p) for p in _tuple(pad, nd)],
            rhs_dilation=_tuple(dilation, nd),
        )  # fmt: skip
        return y + b.reshape(-1, *([1] * nd)) if with_bias else y

    def backward(gy, x, w):
        gx, gw = jax.vjp(lambda x, w: conv(x, w, None), x, w)[1](gy)
        return gx, gw, jnp.sum(gy, axis=(0, *range(2, gy.ndim)))

    return jax.jit(conv), jax.jit(backward)


def conv(x, w, b, stride, pad, dilation):
    """lax.conv_general_dilated (+ bias), NCHW / OIHW."""
    fn, _ = _conv_fn(x.ndim - 2, stride, pad, dilation, b is not None)
    return fn(x, w, b).block_until_ready()


def conv_backward(gy, x, w, stride, pad, dilation):
    """(grad_input, grad_weight, grad_bias) of the convolution, by XLA's transposed
    convolutions and a sum."""
    _, fn = _conv_fn(x.ndim - 2, stride, pad, dilation, False)
    return jax.block_until_ready(fn(gy, x, w))


@functools.lru_cache(maxsize=256)
def _pool_fn(kind: str, nd: int, kernel: int, stride: int, pad: int):
    dims, strides = (1, 1, *(kernel,) * nd), (1, 1, *(stride,) * nd)
    pads = [(0, 0), (0, 0), *[(pad, pad)] * nd]

    def pool(x):
        if kind == "max":
            return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, pads)
        return lax.reduce_window(x, 0.0, lax.add, dims, strides, pads) / kernel**nd

    def backward(gy, x):
        return jax.vjp(pool, x)[1](gy)[0]

    return jax.jit(pool), jax.jit(backward)


def pool(kind: str, x, kernel: int, stride: int, pad: int):
    """Max or average (count_include_pad) pooling by lax.reduce_window."""
    fn, _ = _pool_fn(kind, x.ndim - 2, kernel, stride, pad)
    return fn(x).block_until_ready()


def pool_backward(kind: str, gy, x, kernel: int, stride: int, pad: int):
    """The pooling's gradient with respect to its input."""
    _, fn = _pool_fn(kind, x.ndim - 2, kernel, stride, pad)
    return fn(gy, x).block_until_ready()


@functools.lru_cache(maxsize=16)
def _linear_fn(activation: str | None):
    def linear(x, w, b):
        return _ACT[activation](x @ w.T + b)

    def backward(gy, x, w):
        return jax.vjp(lambda x, w: x @ w.T, x, w)[1](gy), jnp.sum(gy, axis=0)

    return jax.jit(linear), jax.jit(backward)


def linear(x, w, b, activation=None):
    """activation(x @ w.T + b) in one jitted function."""
    fn, _ = _linear_fn(activation)
    return fn(x, w, b).block_until_ready()


def linear_backward(gy, x, w):
    """(grad_input, grad_weight, grad_bias) of x @ w.T + b."""
    _, fn = _linear_fn(None)
    (gx, gw), gb = fn(gy, x, w)
    return jax.block_until_ready((gx, gw, gb))
