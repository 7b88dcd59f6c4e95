"""Elementwise activations for JAX: fastnn's kernels forward and backward (custom_vjp)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fastnn
from fastnn._op_checks import check_bounds, check_finite, gelu_approximation
from fastnn.jax._common import arrays, check_floats
from fastnn.jax._kernel import Kernel

__all__ = [
    "gelu",
    "hardtanh",
    "leaky_relu",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "tanh",
]


def _same(*shapes):
    return [(shapes[0], 0)]


def _forward_host(name: str, params: tuple):
    if name == "gelu":
        return lambda x: (fastnn.gelu(x, *params),)
    op = getattr(fastnn, name)
    return lambda x: (op(x, *params),)


def _backward_host(name: str, params: tuple):
    """d / d input from (grad_output, saved), the saved array the forward input or output."""
    if name == "silu":
        return lambda g, x: (fastnn.silu_backward(g, x),)
    if name == "gelu":
        return lambda g, x: (fastnn.gelu_backward(g, x, *params),)
    keywords = {}
    if name == "hardtanh":
        keywords = {"min_val": params[0], "max_val": params[1]}
    if name == "leaky_relu":
        keywords = {"negative_slope": params[0]}
    return lambda g, y: (fastnn.activation_backward(name, g, y, **keywords),)


#: fastnn's C activation codes (FNN_ACT_* in kernels/cpu/activation_simd.h) of the
#: activations the XLA FFI handler runs.
FFI_CODES = {"relu": 1, "sigmoid": 2, "tanh": 3}


def _ffi_forward(code: int):
    return lambda specs, x: jax.ffi.ffi_call("fastnn_activation", specs)(x, act=np.int32(code))


def _ffi_backward(code: int):
    def run(specs, g, y):
        return jax.ffi.ffi_call("fastnn_activation_backward", specs)(g, y, act=np.int32(code))

    return run


@functools.lru_cache(maxsize=128)
def _activation(name: str, params: tuple):
    """The custom_vjp function of activation ``name`` with its scalar ``params``."""
    from_input = name in ("silu", "gelu")
    code = FFI_CODES.get(name)
    forward = Kernel(
        _forward_host(name, params),
        _same,
        ("free",),
        ("free",),
        ffi=None if code is None else _ffi_forward(code),
    )
    negative_slope = name == "leaky_relu" and params[0] < 0
    backward = None
    if not negative_slope:
        backward = Kernel(
            _backward_host(name, params),
            _same,
            ("free", "free"),
            ("free",),
            ffi=None if code is None else _ffi_backward(code),
        )

    @jax.custom_vjp
    def act(x):
        return forward(x)[0]

    def act_fwd(x):
        y = forward(x)[0]
        return y, (x if from_input or negative_slope else y)

    def act_bwd(saved, g):
        if negative_slope:  # the output's sign does not tell the input's: from the input
            return (jnp.where(saved > 0, g, g * jnp.asarray(params[0], g.dtype)),)
        return backward(g, saved)

    act.defvjp(act_fwd, act_bwd)
    return act


def _apply(name: str, input: Any, params: tuple = ()) -> jax.Array:
    (x,) = arrays(input)
    check_floats(name, {"input": x})
    return _activation(name, params)(x)


def relu(input: Any) -> jax.Array:
    """``max(input, 0)`` elementwise (NaN stays NaN), by fastnn's kernel."""
    return _apply("relu", input)


def sigmoid(input: Any) -> jax.Array:
    """``1 / (1 + exp(-input))`` elementwise, by fastnn's kernel."""
    return _apply("sigmoid", input)


def tanh(input: Any) -> jax.Array:
    """Hyperbolic tangent elementwise, by fastnn's kernel."""
    return _apply("tanh", input)


def hardtanh(input: Any, min_val: float = -1.0, max_val: float = 1.0) -> jax.Array:
    """``input`` clamped to ``[min_val, max_val]`` (finite, ``max_val >= min_val``)."""
    return _apply("hardtanh", input, check_bounds("hardtanh", min_val, max_val))


def relu6(input: Any) -> jax.Array:
    """``min(max(input, 0), 6)`` elementwise."""
    return _apply("relu6", input)


def leaky_relu(input: Any, negative_slope: float = 0.01) -> jax.Array:
    """``input if input > 0 else negative_slope * input`` elementwise (any finite slope;
    with a negative one the gradient is taken from the saved input)."""
    return _apply(
        "leaky_relu", input, (check_finite("leaky_relu", "negative_slope", negative_slope),)
    )


def silu(input: Any) -> jax.Array:
    """``input * sigmoid(input)`` elementwise."""
    return _apply("silu", input)


def gelu(input: Any, approximate: str = "none") -> jax.Array:
    """``input * Phi(input)`` ("none", with erf) or PyTorch's "tanh" approximation."""
    return _apply("gelu", input, (gelu_approximation("gelu", approximate),))
