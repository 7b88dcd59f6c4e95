"""fastnn.init: the distributions have the documented bounds and spread, fans follow
PyTorch, draws are reproducible, and Parameters are filled in place."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastnn import init
from fastnn.nn import Conv2d, Linear, Parameter


def test_fans():
    assert init.fans((20, 10)) == (10, 20)
    assert init.fans((16, 6, 5, 5)) == (150, 400)
    assert init.fans((8, 4, 3)) == (12, 24)
    assert init.fans((7,)) == (7, 7)
    with pytest.raises(ValueError):
        init.fans(())


def test_xavier_uniform_bounds_and_spread():
    shape = (300, 200)
    w = init.xavier_uniform(shape, gain=2.0, rng=0)
    bound = 2.0 * math.sqrt(6.0 / 500)
    assert w.shape == shape and w.dtype == np.float32
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.02)
    assert abs(w.mean()) < 0.01 * bound


def test_xavier_normal_std_is_the_course_formula():
    w = init.xavier_normal((64, 32, 3, 3), gain=1.5, rng=1, dtype=np.float64)
    fan_in, fan_out = 32 * 9, 64 * 9
    np.testing.assert_allclose(w.std(), 1.5 * math.sqrt(2.0 / (fan_in + fan_out)), rtol=0.02)
    assert w.dtype == np.float64


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh", "leaky_relu"])
def test_kaiming(mode, nonlinearity):
    shape = (128, 64, 3, 3)
    fan = 64 * 9 if mode == "fan_in" else 128 * 9
    std = init.calculate_gain(nonlinearity, 0.1) / math.sqrt(fan)
    normal = init.kaiming_normal(shape, a=0.1, mode=mode, nonlinearity=nonlinearity, rng=2)
    np.testing.assert_allclose(normal.std(), std, rtol=0.02)
    uniform = init.kaiming_uniform(shape, a=0.1, mode=mode, nonlinearity=nonlinearity, rng=3)
    assert np.abs(uniform).max() <= math.sqrt(3) * std * (1 + 1e-6)
    np.testing.assert_allclose(uniform.std(), std, rtol=0.02)


def test_gains():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(1 / 3)
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain("swish")


def test_reproducible_with_seeds_and_generators():
    a = init.xavier_uniform((5, 4), rng=42)
    b = init.xavier_uniform((5, 4), rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, init.xavier_uniform((5, 4), rng=43))
    init.manual_seed(7)
    first = Linear(3, 4).weight.data.copy()
    init.manual_seed(7)
    np.testing.assert_array_equal(Linear(3, 4).weight.data, first)
    np.testing.assert_array_equal(
        Conv2d(1, 2, 3, rng=5).weight.data, Conv2d(1, 2, 3, rng=5).weight.data
    )


def test_default_layer_init_matches_pytorch_bounds():
    layer = Linear(50, 400, rng=0)
    bound = 1 / math.sqrt(50)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.98 * bound
    assert np.abs(layer.bias.data).max() <= bound


def test_parameter_is_filled_in_place():
    param = Parameter(np.zeros((6, 3), dtype=np.float64))
    data = param.data
    assert init.kaiming_normal(param, rng=0) is param
    assert param.data is data and param.data.dtype == np.float64 and np.any(data != 0)
    init.zeros(param)
    assert not np.any(data)
    init.normal(param, 3.0, 0.0)
    np.testing.assert_array_equal(data, 3.0)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: init.xavier_uniform((3, 4), gain=-1), ValueError),
        (lambda: init.kaiming_normal((3, 4), mode="fan"), ValueError),
        (lambda: init.kaiming_normal((3, 0)), ValueError),
        (lambda: init.uniform((3,), 1.0, 0.0), ValueError),
        (lambda: init.normal((3,), std=-1.0), ValueError),
        (lambda: init.xavier_normal((3, 4), dtype=np.int32), TypeError),
        (lambda: init.xavier_normal("3x4"), TypeError),
        (lambda: init.xavier_normal((3, -4)), ValueError),
        (lambda: init.xavier_normal((3, 4), rng=-1), ValueError),
        (lambda: init.xavier_normal((3, 4), rng=1.5), TypeError),
    ],
)
def test_errors(call, error):
    with pytest.raises(error):
        call()
