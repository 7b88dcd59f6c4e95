"""fastnn.nn's ReLU6, Hardtanh, LeakyReLU, SiLU and GELU: analytic gradients against
finite differences (as the other activation layers in test_nn_layers.py), forward
against fastnn's ops, argument checks and repr."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
from tests.toolkit.test_nn_layers import _check_layer

LAYERS = [
    nn.ReLU6(),
    nn.Hardtanh(),
    nn.Hardtanh(-0.5, 2.0),
    nn.LeakyReLU(),
    nn.LeakyReLU(0.3),
    nn.LeakyReLU(-0.4),
    nn.SiLU(),
    nn.GELU(),
    nn.GELU("tanh"),
]


def _away_from_kinks(x: np.ndarray) -> np.ndarray:
    """Values at least 0.05 from every kink (0, +-1, -0.5, 2, 6): finite differences
    straddling a kink would see two slopes."""
    for kink in (0.0, 1.0, -1.0, -0.5, 2.0, 6.0):
        near = np.abs(x - kink) < 0.05
        x[near] = kink + 0.1
    return x


@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_gradients_match_finite_differences(rng, layer):
    x = _away_from_kinks(4 * rng.standard_normal((2, 3, 5)))
    _check_layer(layer, x, rng)


def test_forward_is_the_op(rng, dtype):
    x = (4 * rng.standard_normal((3, 7))).astype(dtype)
    np.testing.assert_array_equal(nn.ReLU6()(x), fastnn.relu6(x))
    np.testing.assert_array_equal(nn.Hardtanh(-2, 3)(x), fastnn.hardtanh(x, -2, 3))
    np.testing.assert_array_equal(nn.LeakyReLU(0.2)(x), fastnn.leaky_relu(x, 0.2))
    np.testing.assert_array_equal(nn.SiLU()(x), fastnn.silu(x))
    np.testing.assert_array_equal(nn.GELU("tanh")(x), fastnn.gelu(x, "tanh"))
    for layer in LAYERS:
        y = layer(x)
        assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype


def test_backward_before_forward_and_without_input_grad(rng):
    for layer in LAYERS:
        with pytest.raises(RuntimeError, match="before forward"):
            type(layer)().backward(np.ones(3))
        layer(np.ones(3))
        assert layer.backward(np.ones(3), need_input_grad=False) is None


def test_arguments_are_checked_and_shown():
    with pytest.raises(ValueError, match="max_val"):
        nn.Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match="finite"):
        nn.LeakyReLU(float("inf"))
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("exact")
    assert "min_val=-0.5, max_val=2.0" in repr(nn.Hardtanh(-0.5, 2.0))
    assert "negative_slope=0.3" in repr(nn.LeakyReLU(0.3))
    assert "approximate='tanh'" in repr(nn.GELU("tanh"))
    assert repr(nn.ReLU6()).startswith("ReLU6")
