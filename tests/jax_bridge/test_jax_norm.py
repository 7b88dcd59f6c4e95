"""fastnn.jax.batch_norm against a jnp formula: values, gradients (input, weight, bias),
the returned running statistics, vmap and errors."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="pip install 'fastnn[jax]' (CI installs it)")

import jax.numpy as jnp  # noqa: E402

import fastnn.jax as fj  # noqa: E402
from tests.jax_bridge.jax_helpers import assert_close, normal, precision, value_and_grads  # noqa: E402

ACT = {None: lambda z: z, "relu": jax.nn.relu, "relu6": jax.nn.relu6}


def _reference(x, rm, rv, w, b, training, activation, eps=1e-5):
    axes = (0, *range(2, x.ndim))
    mean, var = (x.mean(axes), x.var(axes)) if training else (rm, rv)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / jnp.sqrt(var.reshape(shape) + eps)
    return ACT[activation](y * w.reshape(shape) + b.reshape(shape))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "training, activation, shape",
    [(True, None, (4, 3, 5, 5)), (True, "relu", (7, 2)), (False, "relu6", (2, 3, 9))],
)
def test_batch_norm_matches_formula(training, activation, shape, dtype):
    rng = np.random.default_rng(len(shape))
    with precision(dtype):
        x = normal(rng, shape, dtype) * 2 + 1
        c = shape[1]
        rm, rv = normal(rng, (c,), dtype), jnp.asarray(rng.uniform(0.5, 2, c).astype(dtype))
        w, b = normal(rng, (c,), dtype), normal(rng, (c,), dtype)

        def ours(x, w, b):
            return fj.batch_norm(x, rm, rv, w, b, training, activation=activation)[0]

        def ref(x, w, b):
            return _reference(x, rm, rv, w, b, training, activation)

        y, grads = value_and_grads(ours, (x, w, b), (0, 1, 2))
        y_ref, grads_ref = value_and_grads(ref, (x, w, b), (0, 1, 2))
        assert_close(y, y_ref, dtype, scale=10)
        for g, g_ref in zip(grads, grads_ref):
            assert_close(g, g_ref, dtype, scale=100)
        _, new_mean, new_var = fj.batch_norm(x, rm, rv, w, b, training, 0.2)
        if training:
            axes = (0, *range(2, x.ndim))
            assert_close(new_mean, 0.8 * rm + 0.2 * x.mean(axes), dtype)
            assert_close(new_var, 0.8 * rv + 0.2 * x.var(axes, ddof=1), dtype)
        else:
            assert new_mean is rm and new_var is rv


def test_batch_norm_without_running_statistics_and_under_vmap():
    rng = np.random.default_rng(4)
    xs = normal(rng, (3, 5, 2, 4), "float32")
    ys = jax.vmap(lambda x: fj.batch_norm(x, training=True)[0])(xs)
    for x, y in zip(xs, ys):
        assert_close(y, _reference(x, None, None, jnp.ones(2), jnp.zeros(2), True, None), "float32")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"training": False}, "eval mode"),
        ({"training": True, "momentum": None}, "momentum=None"),
        ({"training": True, "eps": 0.0}, "eps must be > 0"),
        ({"training": True, "weight": jnp.ones(3)}, "weight must have shape"),
    ],
)
def test_batch_norm_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fj.batch_norm(jnp.ones((4, 2, 3)), **kwargs)
