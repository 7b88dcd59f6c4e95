"""Activations, softmax / log_softmax and their backward on the numba-cuda backend
(simulator), against the reference backend."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.cudasim.devices import check, dev, device_layouts

pytestmark = [
    pytest.mark.cudasim,
    # the simulator computes with numpy scalars, which warn where a GPU silently gives NaN
    pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning"),
]

F32 = np.float32
ACTIVATIONS = ["relu", "sigmoid", "tanh"]


def _special(rng, shape, dtype=F32):
    """Random values with NaN, +-inf, +-0 and large magnitudes mixed in."""
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    flat = x.reshape(-1)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0]
    flat[: len(specials)] = specials
    return x


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward(rng, name):
    x = _special(rng, (3, 4, 5))
    want = getattr(fastnn, name)(x, backend="reference")
    for layout, d in device_layouts(x):
        check(getattr(fastnn, name)(d), want, f"{name} {layout}")


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward(rng, name):
    gy = _special(rng, (4, 6))
    y = getattr(fastnn, name)(rng.standard_normal((4, 6)).astype(F32), backend="reference")
    y[0, 0] = np.nan  # relu passes the gradient where the output is NaN
    want = fastnn.activation_backward(name, gy, y, backend="reference")
    check(fastnn.activation_backward(name, dev(gy), dev(y)), want, name)


def test_activation_float64_empty_and_zero_d(rng):
    x = rng.standard_normal((2, 3))
    check(fastnn.tanh(dev(x)), np.tanh(x), "float64")
    check(fastnn.relu(dev(np.zeros((0, 3), F32))), np.zeros((0, 3), F32), "empty")
    check(fastnn.sigmoid(dev(np.array(0.5, F32))), np.array(1 / (1 + np.exp(-0.5)), F32), "0-d")


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_any_dim(rng, log, dim):
    name = "log_softmax" if log else "softmax"
    x = (rng.standard_normal((3, 4, 5)) * 4).astype(F32)
    x[1, 2, 3] = np.nan  # its rows become NaN
    x[2, 0, :] = -np.inf  # a row of -inf along dim -1: NaN
    want = getattr(fastnn, name)(x, dim, backend="reference")
    for layout, d in device_layouts(x):
        check(getattr(fastnn, name)(d, dim), want, f"{name} dim={dim} {layout}")
    g = rng.standard_normal(x.shape).astype(F32)
    y = getattr(fastnn, name)(rng.standard_normal(x.shape).astype(F32), dim, backend="reference")
    backward = getattr(fastnn, f"{name}_backward")
    check(backward(dev(g), dev(y), dim), backward(g, y, dim, backend="reference"), "backward")


@pytest.mark.parametrize("length", [9, 100])
def test_softmax_long_rows_use_teams(rng, length):
    """Rows long enough for teams of 4 and 32 threads."""
    x = (rng.standard_normal((2, length)) * 10).astype(F32)
    check(fastnn.log_softmax(dev(x)), fastnn.log_softmax(x, backend="reference"), "long")
    g = rng.standard_normal(x.shape).astype(F32)
    y = fastnn.softmax(x, backend="reference")
    want = fastnn.softmax_backward(g, y, backend="reference")
    check(fastnn.softmax_backward(dev(g), dev(y)), want, "long backward")


def test_softmax_empty_zero_d_and_float64(rng):
    x = np.zeros((2, 0, 3), F32)
    check(fastnn.softmax(dev(x), 1), x, "empty dim")
    check(fastnn.softmax(dev(np.zeros((0, 4), F32))), np.zeros((0, 4), F32), "no rows")
    check(fastnn.log_softmax(dev(np.array(3.0, F32))), np.array(0.0, F32), "0-d")
    x = rng.standard_normal((3, 7))
    check(fastnn.softmax(dev(x), 0), fastnn.softmax(x, 0, backend="reference"), "float64")
