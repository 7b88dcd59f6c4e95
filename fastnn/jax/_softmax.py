"""softmax / log_softmax for JAX: fastnn's kernels forward and backward (custom_vjp)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

import fastnn
from fastnn import _args
from fastnn.jax._common import arrays, check_floats
from fastnn.jax._kernel import Kernel

__all__ = ["log_softmax", "softmax"]


def _same(*shapes):
    return [(shapes[0], 0)]


@functools.lru_cache(maxsize=64)
def _softmax(name: str, axis: int):
    """The custom_vjp function of softmax or log_softmax along ``axis`` (negative, so that
    leading axes added by vmap pass through)."""
    forward_op = getattr(fastnn, name)
    backward_op = getattr(fastnn, f"{name}_backward")
    log_mode = np.int32(name == "log_softmax")
    ffi_forward = ffi_backward = None
    if axis == -1:  # the handler runs contiguous rows
        ffi_forward = lambda specs, x: jax.ffi.ffi_call("fastnn_softmax", specs)(  # noqa: E731
            x, log_mode=log_mode
        )
        ffi_backward = lambda specs, g, y: jax.ffi.ffi_call(  # noqa: E731
            "fastnn_softmax_backward", specs
        )(g, y, log_mode=log_mode)
    forward = Kernel(lambda x: (forward_op(x, axis),), _same, ("free",), ("free",), ffi=ffi_forward)
    backward = Kernel(
        lambda g, y: (backward_op(g, y, axis),),
        _same,
        ("free", "free"),
        ("free",),
        ffi=ffi_backward,
    )

    @jax.custom_vjp
    def fn(x):
        return forward(x)[0]

    def fn_fwd(x):
        y = forward(x)[0]
        return y, y

    def fn_bwd(y, g):
        return backward(g, y)

    fn.defvjp(fn_fwd, fn_bwd)
    return fn


def _apply(name: str, input: Any, axis: object) -> jax.Array:
    (x,) = arrays(input)
    check_floats(name, {"input": x})
    ndim = len(x.shape)
    d = _args.check_dim(name, axis, ndim)
    if ndim == 0:
        return _softmax(name, -1)(x.reshape(1)).reshape(())
    return _softmax(name, d - ndim)(x)


def softmax(input: Any, axis: int = -1) -> jax.Array:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``, by fastnn's kernel."""
    return _apply("softmax", input, axis)


def log_softmax(input: Any, axis: int = -1) -> jax.Array:
    """``x - max - log(sum(exp(x - max)))`` along ``axis``, by fastnn's kernel."""
    return _apply("log_softmax", input, axis)
