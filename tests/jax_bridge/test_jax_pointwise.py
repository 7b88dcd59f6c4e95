"""fastnn.jax activations, softmax, linear and losses against jax.nn / jnp: values and
gradients under jit, float32 and float64, odd sizes and batch 1."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="pip install 'fastnn[jax]' (CI installs it)")

import jax.numpy as jnp  # noqa: E402

import fastnn.jax as fj  # noqa: E402
from tests.jax_bridge.jax_helpers import assert_close, normal, precision, value_and_grads  # noqa: E402

DTYPES = ("float32", "float64")
#: Odd sizes, batch 1, 1-d: each activation runs on one of them (in turn, by name).
SHAPES = [(1, 7), (3, 5, 33), (17,)]

ACTIVATIONS = {
    "relu": (fj.relu, jax.nn.relu),
    "sigmoid": (fj.sigmoid, jax.nn.sigmoid),
    "tanh": (fj.tanh, jnp.tanh),
    "relu6": (fj.relu6, jax.nn.relu6),
    "silu": (fj.silu, jax.nn.silu),
    "gelu": (fj.gelu, lambda x: jax.nn.gelu(x, approximate=False)),
    "gelu_tanh": (lambda x: fj.gelu(x, "tanh"), lambda x: jax.nn.gelu(x, approximate=True)),
    "hardtanh": (lambda x: fj.hardtanh(x, -0.5, 1.5), lambda x: jnp.clip(x, -0.5, 1.5)),
    "leaky_relu": (lambda x: fj.leaky_relu(x, 0.1), lambda x: jax.nn.leaky_relu(x, 0.1)),
    "leaky_relu_negative": (
        lambda x: fj.leaky_relu(x, -0.3),
        lambda x: jax.nn.leaky_relu(x, -0.3),
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_jax(name, dtype):
    ours, ref = ACTIVATIONS[name]
    index = sorted(ACTIVATIONS).index(name)
    shape = SHAPES[index % len(SHAPES)]
    rng = np.random.default_rng(index)
    with precision(dtype):
        x = normal(rng, shape, dtype) * 3
        y, (g,) = value_and_grads(ours, (x,), (0,))
        y_ref, (g_ref,) = value_and_grads(ref, (x,), (0,))
        assert y.dtype == x.dtype
        scale = 1e5 if dtype == "float64" and name.startswith("gelu") else 1
        assert_close(y, y_ref, dtype, scale=scale)
        assert_close(g, g_ref, dtype, scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_matches_jax(name, axis, dtype):
    rng = np.random.default_rng(5)
    with precision(dtype):
        x = normal(rng, (3, 11, 4), dtype) * 4
        y, (g,) = value_and_grads(lambda x: getattr(fj, name)(x, axis), (x,), (0,))
        y_ref, (g_ref,) = value_and_grads(lambda x: getattr(jax.nn, name)(x, axis), (x,), (0,))
        assert_close(y, y_ref, dtype)
        assert_close(g, g_ref, dtype)


_JAX_ACT = {None: lambda z: z, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
def test_linear_matches_jax(activation, bias, dtype):
    index = [None, "relu", "sigmoid", "tanh"].index(activation)
    lead = [(1,), (5,), (2, 3), ()][index]  # batch 1, a batch, extra leading axes, 1-d
    rng = np.random.default_rng(index * 2 + bias)
    with precision(dtype):
        x = normal(rng, (*lead, 13), dtype)
        w = normal(rng, (6, 13), dtype)
        b = normal(rng, (6,), dtype)
        act = _JAX_ACT[activation]
        argnums = (0, 1, 2) if bias else (0, 1)

        def ours(x, w, b):
            return fj.linear(x, w, b if bias else None, activation)

        def ref(x, w, b):
            return act(jnp.matmul(x, w.T, precision="highest") + (b if bias else 0))

        y, grads = value_and_grads(ours, (x, w, b), argnums)
        y_ref, grads_ref = value_and_grads(ref, (x, w, b), argnums)
        assert y.shape == (*lead, 6)
        assert_close(y, y_ref, dtype, scale=10)
        for g, g_ref in zip(grads, grads_ref):
            assert_close(g, g_ref, dtype, scale=10)


def _reduce(losses, reduction):
    return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda v: v}[reduction](losses)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_jax(reduction, dtype):
    n = {"mean": 9, "sum": 1, "none": 6}[reduction]
    rng = np.random.default_rng(n)
    with precision(dtype):
        x = normal(rng, (n, 5), dtype) * 3
        t = jnp.asarray(rng.integers(0, 5, n).astype(np.int32))

        def ref(x):
            picked = jnp.take_along_axis(jax.nn.log_softmax(x), t[:, None], axis=1)[:, 0]
            return _reduce(-picked, reduction)

        y, (g,) = value_and_grads(lambda x: fj.cross_entropy(x, t, reduction), (x,), (0,))
        y_ref, (g_ref,) = value_and_grads(ref, (x,), (0,))
        assert y.shape == y_ref.shape
        assert_close(y, y_ref, dtype)
        assert_close(g, g_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_jax(reduction, dtype):
    rng = np.random.default_rng(8)
    with precision(dtype):
        x, t = normal(rng, (4, 7), dtype), normal(rng, (4, 7), dtype)
        y, grads = value_and_grads(lambda x, t: fj.mse_loss(x, t, reduction), (x, t), (0, 1))
        y_ref, grads_ref = value_and_grads(
            lambda x, t: _reduce((x - t) ** 2, reduction), (x, t), (0, 1)
        )
        assert_close(y, y_ref, dtype)
        for g, g_ref in zip(grads, grads_ref):
            assert_close(g, g_ref, dtype)
