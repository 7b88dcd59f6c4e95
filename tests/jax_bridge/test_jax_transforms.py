"""fastnn.jax under jax's transformations and routes: check_grads, vmap (folded into the
batch, or one call per mapped element), the three call routes, trace-time argument errors,
and jax staying optional."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="pip install 'fastnn[jax]' (CI installs it)")

import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import fastnn.jax as fj  # noqa: E402
from fastnn.jax import _ffi  # noqa: E402
from tests.jax_bridge.jax_helpers import assert_close, normal, precision  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def test_check_grads_order_one(rng):
    with precision("float64"):
        x = normal(rng, (2, 3, 7, 6), "float64")
        w = normal(rng, (4, 3, 3, 2), "float64")
        b = normal(rng, (4,), "float64")
        check_grads(lambda x, w, b: fj.conv2d(x, w, b, 2, 1, (1, 2)), (x, w, b), order=1,
                    modes=["rev"])  # fmt: skip
        check_grads(lambda x: fj.max_pool2d(x, 3, 2, 1), (x,), order=1, modes=["rev"])
        check_grads(lambda x: fj.avg_pool1d(x[:, :, 0], 2), (x,), order=1, modes=["rev"])
        v = normal(rng, (5, 6), "float64")
        m = normal(rng, (3, 6), "float64")
        check_grads(lambda v, m: fj.linear(v, m, None, "tanh"), (v, m), order=1, modes=["rev"])
        check_grads(lambda v: fj.log_softmax(fj.gelu(v)), (v,), order=1, modes=["rev"])
        t = jnp.asarray([0, 3, 2, 1, 5])
        check_grads(lambda v: fj.cross_entropy(v, t), (v,), order=1, modes=["rev"])


def _callbacks(fn, *args) -> int:
    """How many kernel calls (callbacks or FFI calls) the traced program makes."""
    text = str(jax.make_jaxpr(fn)(*args))
    return sum(text.count(p) for p in ("buffer_callback[", "pure_callback[", "ffi_call["))


def test_vmap_folds_the_mapped_axis_into_the_batch(rng):
    x = normal(rng, (3, 2, 4, 9, 8), "float32")
    w = normal(rng, (5, 4, 3, 3), "float32")
    conv = lambda x: fj.max_pool2d(fj.relu(fj.conv2d(x, w, None, 1, 1)), 2)  # noqa: E731
    y = jax.jit(jax.vmap(conv))(x)
    assert_close(y, jnp.stack([conv(xi) for xi in x]), "float32")
    assert _callbacks(jax.vmap(conv), x) == 3  # one call each, on (3 * 2, ...) arrays
    logits = normal(rng, (4, 6, 10), "float32")
    labels = jnp.asarray(rng.integers(0, 10, (4, 6)).astype(np.int32))
    per_task = jax.vmap(lambda z, t: fj.cross_entropy(fj.softmax(z), t, "sum"))(logits, labels)
    expected = [fj.cross_entropy(fj.softmax(z), t, "sum") for z, t in zip(logits, labels)]
    assert_close(per_task, jnp.stack(expected), "float32")


def test_vmap_over_weights_and_per_example_gradients(rng):
    """A mapped weight cannot fold into the batch: one kernel call per element."""
    x = normal(rng, (2, 3, 6, 6), "float32")
    ws = normal(rng, (4, 5, 3, 3, 3), "float32")
    ys = jax.jit(jax.vmap(lambda w: fj.conv2d(x, w)))(ws)
    assert_close(ys, jnp.stack([fj.conv2d(x, w) for w in ws]), "float32")
    v = normal(rng, (7, 4), "float32")
    m = normal(rng, (3, 4), "float32")
    per_example = jax.vmap(jax.grad(lambda m, v: jnp.sum(fj.linear(v, m, None, "relu") ** 2)),
                           in_axes=(None, 0))(m, v)  # fmt: skip
    for i in range(7):
        one = jax.grad(lambda m, vi=v[i]: jnp.sum(jax.nn.relu(vi @ m.T) ** 2))(m)
        assert_close(per_example[i], one, "float32")


@pytest.mark.parametrize("route", ["buffer_callback", "pure_callback", "ffi"])
def test_routes_agree(route, rng):
    if route == "ffi" and _ffi.library() is None:
        pytest.fail(f"the FFI handler must build here: {_ffi.unavailable_reason()}")
    before = fj.get_route()
    x = normal(rng, (3, 8), "float32")
    w = normal(rng, (5, 8), "float32")
    f = lambda x, w: fj.log_softmax(fj.linear(fj.tanh(x), w, None, "sigmoid"))  # noqa: E731
    g = jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), (0, 1))
    try:
        fj.set_route(route)
        text = str(jax.make_jaxpr(g)(x, w))
        values = jax.jit(f)(x, w), *jax.jit(g)(x, w)
    finally:
        fj.set_route(before)
    assert {"ffi": "ffi_call[", "buffer_callback": "buffer_callback[",
            "pure_callback": "pure_callback["}[route] in text  # fmt: skip
    ref = lambda x, w: jax.nn.log_softmax(jax.nn.sigmoid(jnp.tanh(x) @ w.T))  # noqa: E731
    g_ref = jax.grad(lambda x, w: jnp.sum(ref(x, w) ** 2), (0, 1))
    for ours, theirs in zip(values, (ref(x, w), *g_ref(x, w))):
        assert_close(ours, theirs, "float32", scale=10)


def test_ffi_runs_float64_and_empty_batches(rng):
    with precision("float64"):
        x = normal(rng, (0, 6), "float64")
        w = normal(rng, (3, 6), "float64")
        gw = jax.grad(lambda w: jnp.sum(fj.linear(x, w, None, "relu")))(w)
        assert gw.dtype == jnp.float64 and not np.any(np.asarray(gw))
        z = normal(rng, (4, 6), "float64")
        assert_close(jax.jit(fj.softmax)(z), jax.nn.softmax(z), "float64")


def test_set_route_retraces_functions_already_jitted():
    relu = jax.jit(fj.relu)
    x = jnp.ones(8)
    before = fj.get_route()
    try:
        fj.set_route("buffer_callback")
        first = relu.lower(x).as_text()
        fj.set_route("pure_callback")
        second = relu.lower(x).as_text()
    finally:
        fj.set_route(before)
    assert "buffer_python_cpu_callback" in first
    assert "buffer_python_cpu_callback" not in second and "python_cpu_callback" in second


def test_set_route_rejects_unknown_names():
    with pytest.raises(ValueError, match="route must be one of"):
        fj.set_route("numba")


ERRORS = [
    (lambda: fj.conv2d(jnp.ones((1, 3, 5, 5)), jnp.ones((2, 4, 3, 3))), ValueError,
     r"conv2d: weight.shape\[1\] must be input channels // groups = 3"),
    (lambda: fj.conv2d(jnp.ones((3, 5, 5)), jnp.ones((2, 3, 3, 3))), ValueError, "input"),
    (lambda: fj.conv1d(jnp.ones((1, 2, 5), jnp.int32), jnp.ones((2, 2, 3), jnp.int32)),
     TypeError, "conv1d: input must be a float32 or float64 array"),
    (lambda: fj.conv2d(jnp.ones((1, 2, 5, 5)), jnp.ones((2, 2, 3, 3)), stride=0), ValueError,
     "stride"),
    (lambda: fj.conv2d(jnp.ones((1, 2, 5, 5)), jnp.ones((2, 2, 3, 3)), jnp.ones(3)),
     ValueError, "bias"),
    (lambda: fj.max_pool2d(jnp.ones((1, 2, 5, 5)), 3, padding=2), ValueError, "padding"),
    (lambda: fj.avg_pool1d(jnp.ones((1, 2, 5)), 0), ValueError, "kernel_size"),
    (lambda: fj.linear(jnp.ones((2, 4)), jnp.ones((3, 5))), ValueError, "in_features"),
    (lambda: fj.linear(jnp.ones((2, 4)), jnp.ones((3, 4)), None, "gelu"), ValueError,
     "activation must be one of"),
    (lambda: fj.softmax(jnp.ones((2, 4)), 2), ValueError, "dim must be in"),
    (lambda: fj.cross_entropy(jnp.ones((2, 4)), jnp.ones(3, jnp.int32)), ValueError, "target"),
    (lambda: fj.cross_entropy(jnp.ones((2, 4)), jnp.ones(2)), TypeError, "integer"),
    (lambda: fj.mse_loss(jnp.ones(3), jnp.ones(3), "avg"), ValueError, "reduction"),
    (lambda: fj.hardtanh(jnp.ones(3), 1.0, -1.0), ValueError, "max_val"),
    (lambda: fj.relu(jnp.ones(3, jnp.int32)), TypeError, "relu: input must be a float32"),
]  # fmt: skip


@pytest.mark.parametrize("index", range(len(ERRORS)))
def test_bad_arguments_raise_fastnns_errors_at_trace_time(index):
    call, kind, match = ERRORS[index]
    with pytest.raises(kind, match=match):
        jax.jit(call).trace()  # tracing alone raises: nothing runs


def test_without_the_ffi_handler_auto_falls_back_and_ffi_says_why():
    code = """
import jax, jax.numpy as jnp, fastnn.jax as fj
text = jax.jit(fj.relu).lower(jnp.ones(4)).as_text()
print("fastnn_activation" in text, "buffer_python_cpu_callback" in text)
fj.set_route("ffi")
try:
    jax.jit(fj.relu).lower(jnp.ones(4))
except RuntimeError as error:
    print(error)
"""
    env = {**os.environ, "FASTNN_JAX_FFI": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "False True"
    assert "route 'ffi' asked for" in lines[1] and "FASTNN_JAX_FFI=0" in lines[1]


def test_import_fastnn_does_not_import_jax():
    code = "import sys, fastnn; fastnn.conv2d; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
