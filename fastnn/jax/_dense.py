"""linear (fused bias + activation) for JAX: fastnn's kernels under jax.custom_vjp."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fastnn
from fastnn import _args
from fastnn.jax._common import arrays, check_floats, threads_attr
from fastnn.jax._kernel import Kernel

__all__ = ["linear"]


#: fastnn's C activation codes (FNN_ACT_* in kernels/cpu/activation_simd.h).
_CODES = {None: 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def _ffi_forward(has_bias: bool, activation: str | None):
    act = np.int32(_CODES[activation])

    def run(specs, x, w, *b):
        bias = b[0] if has_bias else jnp.zeros((0,), x.dtype)
        call = jax.ffi.ffi_call("fastnn_linear", specs)
        return call(x, w, bias, act=act, has_bias=np.int32(has_bias), threads=threads_attr())

    return run


def _ffi_backward(has_bias: bool, activation: str | None):
    act = np.int32(_CODES[activation])

    def run(specs, g, x, w, y):
        out = [*specs, jax.ShapeDtypeStruct((w.shape[0],), w.dtype)][:3]
        gi, gw, gb = jax.ffi.ffi_call("fastnn_linear_backward", out)(
            g, x, w, y, act=act, threads=threads_attr()
        )
        return (gi, gw, gb) if has_bias else (gi, gw)

    return run


@functools.lru_cache(maxsize=64)
def _linear(has_bias: bool, activation: str | None):
    """The custom_vjp function of linear with or without a bias, through ``activation``."""

    def forward_host(x, w, *b):
        return (fastnn.linear(x, w, b[0] if b else None, activation=activation),)

    forward = Kernel(
        forward_host,
        lambda xs, ws, *bs: [((*xs[:-1], ws[0]), 0)],
        ("free", "fixed", "fixed")[: 2 + has_bias],
        ("free",),
        ffi=_ffi_forward(has_bias, activation),
    )

    def backward_host(g, x, w, y):
        if activation is not None:
            g = fastnn.activation_backward(activation, g, y)
        gi, gw, gb = fastnn.linear_backward(g, x, w, output_mask=(True, True, has_bias))
        return (gi, gw, gb) if has_bias else (gi, gw)

    backward = Kernel(
        backward_host,
        lambda gs, xs, ws, ys: [(xs, 1), (ws, 2), ((ws[0],), 2)][: 2 + has_bias],
        ("free", "free", "fixed", "free"),
        ("free", "fixed", "fixed")[: 2 + has_bias],
        ffi=_ffi_backward(has_bias, activation),
    )

    @jax.custom_vjp
    def linear(x, w, *b):
        return forward(x, w, *b)[0]

    def linear_fwd(x, w, *b):
        y = forward(x, w, *b)[0]
        return y, (x, w, y)

    def linear_bwd(saved, g):
        x, w, y = saved
        return backward(g, x, w, y)

    linear.defvjp(linear_fwd, linear_bwd)
    return linear


def linear(input: Any, weight: Any, bias: Any = None, activation: str | None = None) -> jax.Array:
    """:func:`fastnn.linear` on jax arrays: ``activation(input @ weight.T + bias)`` with
    ``input`` (..., in_features), ``weight`` (out_features, in_features), ``bias``
    (out_features,) or None and ``activation`` None, "relu", "sigmoid" or "tanh"."""
    op = "linear"
    x, w, b = arrays(input, weight, bias)
    check_floats(op, {"input": x, "weight": w, "bias": b})
    if len(x.shape) < 1:
        raise ValueError("linear: input must be at least 1-d (..., in_features), got shape ()")
    _args.check_ndim(op, "weight", w, 2, "(out_features, in_features)")
    if tuple(x.shape)[-1] != w.shape[1]:
        raise ValueError(
            f"linear: input.shape[-1] must equal weight.shape[1] = {w.shape[1]} "
            f"(in_features), got input shape {tuple(x.shape)}"
        )
    if b is not None:
        _args.check_shape(op, "bias", b, (w.shape[0],), "out_features")
    act = _args.activation_name(op, activation)
    fn = _linear(b is not None, act)
    return fn(x, w) if b is None else fn(x, w, b)
