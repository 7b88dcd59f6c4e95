"""The CPU activations (relu, sigmoid, tanh) and activation_backward against the float64
reference backend and PyTorch: random and extreme values (+-inf, NaN, -0.0, tiny and
huge magnitudes), every shape from 0-d to 4-d, arrays large enough to run on several
threads, and every memory layout."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.utils import (
    FLOAT_DTYPES,
    assert_close,
    assert_layout_independent,
    import_torch,
    requires_torch,
)

NAMES = ["relu", "sigmoid", "tanh"]
SHAPES = [(), (0,), (1,), (17,), (3, 5), (2, 3, 4, 5), (70001,)]
_DEFAULT_THREADS = fastnn.get_num_threads()

EXTREMES = [
    0.0,
    -0.0,
    1e-30,
    -1e-30,
    1e-8,
    -1e-8,
    0.5,
    -0.5,
    1.0,
    -3.0,
    9.0,
    -9.0,
    20.0,
    -20.0,
    50.0,
    -88.0,
    89.0,
    -100.0,
    710.0,
    -750.0,
    1e30,
    -1e30,
    np.inf,
    -np.inf,
    np.nan,
]


def _forward(name):
    return getattr(fastnn, name)


def _values(rng, shape, dtype):
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    if x.size >= len(EXTREMES):
        x.reshape(-1)[: len(EXTREMES)] = np.array(EXTREMES).astype(dtype)
    return x


def _reference(name, x):
    """The float64-accurate reference's forward (overflow to inf is expected)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _forward(name)(x, backend="reference")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_reference(name, shape, dtype, rng):
    x = _values(rng, shape, dtype)
    want = _reference(name, x)
    got = _forward(name)(x)
    assert got.dtype == dtype and got.shape == x.shape and got.flags.c_contiguous
    assert_close(got, want, dtype)


@pytest.mark.parametrize("name", NAMES)
def test_extreme_values(name, dtype):
    x = np.array(EXTREMES, dtype=dtype)
    want = _reference(name, x)
    got = _forward(name)(x)
    assert_close(got, want, dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(x))
    if name != "relu":  # sigmoid and tanh saturate exactly
        lim = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}[name]
        assert got[EXTREMES.index(np.inf)] == lim[1] and got[EXTREMES.index(-np.inf)] == lim[0]


def test_tanh_keeps_relative_accuracy_near_zero(dtype):
    x = np.array([1e-30, -1e-20, 1e-10, 3e-5], dtype=dtype)
    np.testing.assert_allclose(fastnn.tanh(x), np.tanh(x), rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_reference(name, shape, dtype, rng):
    x = _values(rng, shape, dtype)
    y = _reference(name, x)
    gy = rng.standard_normal(shape).astype(dtype)
    want = fastnn.activation_backward(name, gy, y, backend="reference")
    got = fastnn.activation_backward(name, gy, y)
    assert got.dtype == dtype and got.shape == y.shape
    assert_close(got, want, dtype)


@pytest.mark.parametrize("name", NAMES)
def test_every_memory_layout(name, rng):
    x = rng.standard_normal((7, 9)).astype(np.float32)
    y = _forward(name)(x)
    gy = rng.standard_normal((7, 9)).astype(np.float32)
    assert_layout_independent(_forward(name), x, what=name)
    assert_layout_independent(
        lambda g, out: fastnn.activation_backward(name, g, out), gy, y, what=name
    )


def test_numpy_scalars_and_0d_arrays():
    assert fastnn.relu(np.float32(-2.0)).shape == ()
    assert float(fastnn.sigmoid(np.float64(0.0))) == 0.5
    assert fastnn.tanh(np.array(0.0, dtype=np.float32)).dtype == np.float32


@requires_torch
@pytest.mark.parametrize("name", NAMES)
def test_forward_and_backward_match_torch(name, rng):
    torch = import_torch()
    x = _values(rng, (40, 31), np.float64)
    x[np.isinf(x) | np.isnan(x)] = 0.0  # torch's gradients at inf differ in convention
    gy = rng.standard_normal(x.shape)
    t = torch.tensor(x, requires_grad=True)
    y = getattr(torch, name)(t)
    y.backward(torch.tensor(gy))
    for dtype in FLOAT_DTYPES:
        got = _forward(name)(x.astype(dtype))
        assert_close(got, y.detach().numpy(), dtype)
        grad = fastnn.activation_backward(name, gy.astype(dtype), got)
        assert_close(grad, t.grad.numpy(), dtype)


def test_relu_backward_passes_gradient_through_nan_output():
    """As PyTorch: the gradient is zeroed where y <= 0 only."""
    y = np.array([np.nan, 0.0, -1.0, 2.0])
    g = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(fastnn.activation_backward("relu", g, y), [1.0, 0.0, 0.0, 4.0])


def test_relu_streamed_path_on_large_arrays(dtype, rng):
    """Arrays far beyond the caches take the streaming-store path (any alignment of the
    result, any tail length): exact results, as the plain loop."""
    n = (1 << 20) + 37
    x = rng.standard_normal(n + 1).astype(dtype)[1:]  # misaligned start
    x[:3] = [np.nan, -0.0, np.inf]
    g = rng.standard_normal(n).astype(dtype)
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        try:
            np.testing.assert_array_equal(fastnn.relu(x), np.where(x < 0, 0, x))
            want = np.where(x <= 0, 0, g)
            np.testing.assert_array_equal(fastnn.activation_backward("relu", g, x), want)
        finally:
            fastnn.set_num_threads(_DEFAULT_THREADS)
