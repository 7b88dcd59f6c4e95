"""Every layer's backward against finite differences of its own forward (float64).

For a layer ``y = f(x; params)`` and a random upstream gradient ``g``, ``backward(g)``
must return ``d sum(g * y) / dx`` and leave ``d sum(g * y) / dparam`` in each
``param.grad``; both are compared with central differences (tests/gradcheck.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnn.nn as nn
from tests.gradcheck import assert_grad_close, numerical_vjp
from tests.utils import layouts


def _check_layer(layer: nn.Module, x: np.ndarray, rng: np.random.Generator, reseed=None):
    """Compare the analytic gradients of ``layer`` at ``x`` with finite differences."""
    params = layer.parameters()
    originals = [p.data.copy() for p in params]

    def forward(x_value, *param_values):
        for param, value in zip(params, param_values):
            param.data[...] = value
        if reseed is not None:
            reseed()
        return layer.forward(x_value)

    if reseed is not None:
        reseed()
    y = layer.forward(x)
    g = rng.standard_normal(y.shape)
    layer.zero_grad()
    gx = layer.backward(g)
    numeric = numerical_vjp(forward, [x, *originals], grad_output=g)
    for param, value in zip(params, originals):
        param.data[...] = value
    assert_grad_close(gx, numeric[0], f"{type(layer).__name__}: grad input")
    for index, (param, want) in enumerate(zip(params, numeric[1:])):
        assert param.grad is not None, f"{type(layer).__name__}: param {index} has no grad"
        assert_grad_close(param.grad, want, f"{type(layer).__name__}: grad param {index}")


def _f64(*shape, rng):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
def test_linear(rng, activation):
    layer = nn.Linear(4, 3, activation=activation, dtype=np.float64, rng=rng)
    _check_layer(layer, _f64(5, 4, rng=rng), rng)


def test_linear_3d_input_and_no_bias(rng):
    layer = nn.Linear(3, 2, bias=False, dtype=np.float64, rng=rng)
    assert layer.bias is None and len(layer.parameters()) == 1
    _check_layer(layer, _f64(2, 3, 3, rng=rng), rng)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3},
        {"kernel_size": 2, "stride": 2, "padding": 1},
        {"kernel_size": 3, "dilation": 2, "padding": "same"},
        {"kernel_size": 3, "groups": 2, "padding": 1, "bias": False},
    ],
)
def test_conv1d(rng, kwargs):
    layer = nn.Conv1d(2, 4, dtype=np.float64, rng=rng, **kwargs)
    _check_layer(layer, _f64(2, 2, 7, rng=rng), rng)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3},
        {"kernel_size": (2, 3), "stride": (2, 1), "padding": (1, 0)},
        {"kernel_size": 2, "dilation": 2, "padding": "same"},
        {"kernel_size": 3, "groups": 2, "padding": 1},
    ],
)
def test_conv2d(rng, kwargs):
    layer = nn.Conv2d(2, 2, dtype=np.float64, rng=rng, **kwargs)
    _check_layer(layer, _f64(2, 2, 5, 4, rng=rng), rng)


@pytest.mark.parametrize(
    "layer",
    [
        nn.MaxPool1d(2),
        nn.MaxPool1d(3, stride=2, padding=1, dilation=1, ceil_mode=True),
        nn.AvgPool1d(3, stride=2, padding=1),
        nn.AvgPool1d(2, ceil_mode=True, count_include_pad=False),
    ],
    ids=repr,
)
def test_pool1d(rng, layer):
    _check_layer(layer, _f64(2, 3, 9, rng=rng), rng)


@pytest.mark.parametrize(
    "layer",
    [
        nn.MaxPool2d(2),
        nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 0)),
        nn.MaxPool2d(2, dilation=2),
        nn.AvgPool2d(2),
        nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
    ],
    ids=repr,
)
def test_pool2d(rng, layer):
    _check_layer(layer, _f64(2, 2, 6, 5, rng=rng), rng)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.Flatten()], ids=repr)
def test_parameterless(rng, layer):
    _check_layer(layer, _f64(2, 3, 4, rng=rng), rng)


def test_flatten_ranges(rng):
    x = _f64(2, 3, 4, 5, rng=rng)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(-2)(x).shape == (2, 3, 20)
    with pytest.raises(ValueError, match="start_dim"):
        nn.Flatten(3, 1)(x)
    with pytest.raises(ValueError, match="must be in"):
        nn.Flatten(5)(x)


def test_dropout_backward(rng):
    layer = nn.Dropout(0.4)

    def reseed():
        layer._rng = np.random.default_rng(7)

    _check_layer(layer, _f64(4, 6, rng=rng), rng, reseed=reseed)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm1d(rng, shape, training):
    layer = nn.BatchNorm1d(3, dtype=np.float64)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, 3)
    layer.bias.data[...] = rng.standard_normal(3)
    layer.running_mean[...] = rng.standard_normal(3)
    layer.running_var[...] = rng.uniform(0.5, 2.0, 3)
    layer.train(training)
    _check_layer(layer, _f64(*shape, rng=rng), rng)


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm2d(rng, affine):
    layer = nn.BatchNorm2d(2, affine=affine, track_running_stats=False, dtype=np.float64)
    _check_layer(layer, _f64(3, 2, 3, 2, rng=rng), rng)


def test_residual_and_sequential(rng):
    body = nn.Sequential(
        nn.Conv2d(2, 2, 3, padding=1, dtype=np.float64, rng=rng),
        nn.BatchNorm2d(2, dtype=np.float64),
        nn.Tanh(),
    )
    shortcut = nn.Conv2d(2, 2, 1, dtype=np.float64, rng=rng)
    model = nn.Sequential(
        nn.Residual(body),
        nn.Residual(nn.Linear(3, 3, dtype=np.float64, rng=rng), shortcut),
        nn.Flatten(),
        nn.Linear(18, 2, activation="sigmoid", dtype=np.float64, rng=rng),
    )
    _check_layer(model, _f64(2, 2, 3, 3, rng=rng), rng)


def test_residual_shape_mismatch(rng):
    block = nn.Residual(nn.Linear(3, 2, dtype=np.float64))
    with pytest.raises(ValueError, match="shortcut"):
        block(_f64(2, 3, rng=rng))


def test_need_input_grad_false_skips_work(rng):
    model = nn.Sequential(nn.Conv1d(1, 2, 3, dtype=np.float64, rng=rng), nn.ReLU(), nn.MaxPool1d(2))
    y = model(_f64(2, 1, 8, rng=rng))
    assert model.backward(np.ones_like(y), need_input_grad=False) is None
    assert all(p.grad is not None for p in model.parameters())


def test_layers_accept_any_layout(rng):
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, rng=rng),
        nn.BatchNorm2d(3, dtype=np.float64),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 2, dtype=np.float64, rng=rng),
    )
    x = _f64(3, 2, 4, 4, rng=rng)
    want = model(x)
    model.zero_grad()
    want_gx = model.backward(np.ones_like(want))
    want_grads = [p.grad for p in model.parameters()]
    for name, variant in layouts(x):
        model.zero_grad()
        got = model(variant)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(model.backward(np.ones_like(got)), want_gx, atol=1e-12)
        for p, w in zip(model.parameters(), want_grads):
            np.testing.assert_allclose(p.grad, w, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("batch", [0, 1])
def test_small_batches(rng, batch):
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, dtype=np.float64, rng=rng),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2, 3, dtype=np.float64, rng=rng),
    )
    y = model(_f64(batch, 1, 4, 4, rng=rng))
    assert y.shape == (batch, 3)
    gx = model.backward(np.ones_like(y))
    assert gx.shape == (batch, 1, 4, 4)
    for p in model.parameters():
        assert p.grad.shape == p.shape
        if batch == 0:
            assert not np.any(p.grad)


def test_batchnorm_small_batches(rng):
    layer = nn.BatchNorm1d(2)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(np.ones((1, 2), dtype=np.float32))
    empty = layer(np.ones((0, 2), dtype=np.float32))
    assert empty.shape == (0, 2) and layer.num_batches_tracked == 0
    assert layer.backward(np.ones((0, 2), dtype=np.float32)).shape == (0, 2)
    layer.eval()
    assert layer(np.ones((1, 2), dtype=np.float32)).shape == (1, 2)


def test_float32_layers_keep_dtype(rng):
    model = nn.Sequential(
        nn.Conv1d(1, 2, 3, rng=rng),
        nn.BatchNorm1d(2),
        nn.ReLU(),
        nn.Dropout(0.5, rng=rng),
        nn.Flatten(),
        nn.Linear(16, 2, rng=rng),
    )
    x = rng.standard_normal((4, 1, 10)).astype(np.float32)
    y = model(x)
    assert y.dtype == np.float32
    assert model.backward(np.ones_like(y)).dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: nn.Linear(0, 3), ValueError),
        (lambda: nn.Linear(2.5, 3), TypeError),
        (lambda: nn.Linear(2, 3, activation="gelu"), ValueError),
        (lambda: nn.Linear(2, 3, dtype=np.int32), TypeError),
        (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError),
        (lambda: nn.Conv2d(2, 4, 0), ValueError),
        (lambda: nn.Conv1d(2, 4, 3, stride=2, padding="same"), ValueError),
        (lambda: nn.Conv1d(2, 4, 3, padding="full"), ValueError),
        (lambda: nn.Conv1d(2, 4, 3, algo="fft"), ValueError),
        (lambda: nn.MaxPool2d(0), ValueError),
        (lambda: nn.Dropout(1.5), ValueError),
        (lambda: nn.BatchNorm2d(3, eps=0), ValueError),
        (lambda: nn.BatchNorm2d(3, momentum=2.0), ValueError),
        (lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError),
        (lambda: nn.MSELoss(reduction="avg"), ValueError),
    ],
)
def test_constructor_errors(make, error):
    with pytest.raises(error):
        make()


def test_forward_errors_name_the_problem(rng):
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(3, 2)(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="dtype"):
        nn.Linear(3, 2)(np.ones((2, 3), dtype=np.float64))
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(3)(np.ones((2, 2, 4, 4), dtype=np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Conv2d(1, 1, 1).backward(np.ones((1, 1, 1, 1), dtype=np.float32))
