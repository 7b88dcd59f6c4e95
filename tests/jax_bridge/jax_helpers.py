"""Shared helpers of the fastnn.jax tests: dtypes, tolerances, random arrays, gradients."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

#: (dtype name, rtol, atol) for values and gradients against XLA's own ops.
TOLERANCES = {"float32": (2e-4, 2e-5), "float64": (1e-10, 1e-12)}


def precision(dtype: str):
    """A context running jax in ``dtype`` (float64 switches jax_enable_x64 on inside)."""
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()


def normal(rng: np.random.Generator, shape, dtype: str) -> jax.Array:
    """Standard normal values of ``shape`` as a jax array of ``dtype``."""
    return jnp.asarray(rng.standard_normal(shape).astype(dtype))


def assert_close(actual, expected, dtype: str, scale: float = 1.0) -> None:
    """Elementwise closeness at the dtype's tolerance (atol scaled by ``scale``)."""
    rtol, atol = TOLERANCES[dtype]
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol,
                               atol=atol * scale)  # fmt: skip


def value_and_grads(fn, args, argnums):
    """``fn(*args)`` and the gradients of ``sum(fn * cotangent)`` for a fixed random
    cotangent (so every output element weighs differently), in one jitted call."""
    shape = jax.eval_shape(fn, *args)
    rng = np.random.default_rng(7)
    cot = jnp.asarray(rng.standard_normal(shape.shape).astype(shape.dtype))

    def loss(*a):
        out = fn(*a)
        return jnp.sum(out * cot), out

    (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums, has_aux=True))(*args)
    return out, grads
