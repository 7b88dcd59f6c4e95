"""Higher-order gradients of every fastnn.torch function: torch.autograd.gradgradcheck in
float64 for each function and each option that changes the math, a third-order check of
linear + tanh, a small physics-informed network whose parameter gradients (through x'
and x'' with respect to the input) equal plain torch's, and checks that the first-order
backward keeps its fused, graph-free path while create_graph composes fastnn Functions."""

from __future__ import annotations

import numpy as np
import pytest

from tests.utils import import_torch

torch = import_torch()
F = torch.nn.functional

import fastnn.torch as ft  # noqa: E402

gradgradcheck = torch.autograd.gradgradcheck


pytestmark = pytest.mark.usefixtures("one_thread")


def _t(rng, *shape, scale=1.0, offset=0.0, dtype=torch.float64):
    values = rng.standard_normal(shape) * scale + offset
    return torch.tensor(values, dtype=dtype).requires_grad_()


# ---------------------------------------------------------------------------------------
# Dense and elementwise
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("input_shape", [(3,), (4, 3), (2, 3, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng, activation, input_shape, bias):
    x, w = _t(rng, *input_shape), _t(rng, 5, 3)
    args = (x, w, _t(rng, 5)) if bias else (x, w)
    fn = lambda x, w, b=None: ft.linear(x, w, b, activation=activation)  # noqa: E731
    assert gradgradcheck(fn, args)


def test_linear_non_contiguous(rng):
    x = _t(rng, 3, 4).detach().t().requires_grad_()  # (4, 3), strided
    w = _t(rng, 3, 5).detach().t().requires_grad_()  # (5, 3), strided
    assert gradgradcheck(lambda x, w: ft.linear(x, w, activation="tanh"), (x, w))


ELEMENTWISE = {
    "relu": ft.relu,
    "sigmoid": ft.sigmoid,
    "tanh": ft.tanh,
    "hardtanh": lambda x: ft.hardtanh(x, -0.5, 0.7),
    "relu6": lambda x: ft.relu6(x * 4),
    "leaky_relu": lambda x: ft.leaky_relu(x, 0.2),
    "leaky_relu_negative": lambda x: ft.leaky_relu(x, -0.3),
    "silu": ft.silu,
    "gelu": ft.gelu,
    "gelu_tanh": lambda x: ft.gelu(x, "tanh"),
    "relu_inplace": lambda x: ft.relu(x * 1, inplace=True),
    "hardtanh_inplace": lambda x: ft.hardtanh(x * 1, -0.5, 0.7, inplace=True),
    "leaky_relu_inplace": lambda x: ft.leaky_relu(x * 1, 0.2, inplace=True),
    "silu_inplace": lambda x: ft.silu(x * 1, inplace=True),
    "softmax_0": lambda x: ft.softmax(x, 0),
    "softmax_last": lambda x: ft.softmax(x, -1),
    "log_softmax_0": lambda x: ft.log_softmax(x, 0),
    "log_softmax_1": lambda x: ft.log_softmax(x, 1),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise(rng, name):
    x = _t(rng, 3, 4, 2, scale=2.0)
    assert gradgradcheck(ELEMENTWISE[name], (x,))


@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_add(rng, activation):
    a, b = _t(rng, 2, 3, 4, scale=3.0), _t(rng, 2, 3, 4, scale=3.0)
    assert gradgradcheck(lambda a, b: ft.add(a, b, activation=activation), (a, b))


def test_dropout(rng):
    x = _t(rng, 3, 4, 5)

    def fn(x):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(7)  # the same mask on every call
            return ft.dropout(x, 0.3)

    assert gradgradcheck(fn, (x,))


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------


def test_mse_loss(rng, reduction):
    x, target = _t(rng, 4, 3), _t(rng, 4, 3)
    assert gradgradcheck(lambda x, t: ft.mse_loss(x, t, reduction=reduction), (x, target))


def test_cross_entropy(rng, reduction):
    x = _t(rng, 5, 4)
    target = torch.tensor(rng.integers(0, 4, 5))
    assert gradgradcheck(lambda x: ft.cross_entropy(x, target, reduction=reduction), (x,))


# ---------------------------------------------------------------------------------------
# Convolutions and pooling
# ---------------------------------------------------------------------------------------

CONV_OPTIONS = [
    {},
    {"stride": 2, "padding": 1},
    {"dilation": 2},
    {"groups": 2},
    {"padding": "same"},
    {"activation": "relu"},
    {"activation": "relu6", "stride": 2},
]


@pytest.mark.parametrize("options", CONV_OPTIONS, ids=str)
def test_conv1d(rng, options):
    x, w, b = _t(rng, 2, 4, 7), _t(rng, 4, 4 // options.get("groups", 1), 3), _t(rng, 4)
    assert gradgradcheck(lambda x, w, b: ft.conv1d(x, w, b, **options), (x, w, b))


@pytest.mark.parametrize("options", CONV_OPTIONS, ids=str)
def test_conv2d(rng, options):
    x = _t(rng, 1, 2, 5, 4)
    w, b = _t(rng, 2, 2 // options.get("groups", 1), 3, 2), _t(rng, 2)
    assert gradgradcheck(lambda x, w, b: ft.conv2d(x, w, b, **options), (x, w, b))


def test_conv2d_unbatched_no_bias(rng):
    x, w = _t(rng, 2, 5, 5), _t(rng, 3, 2, 2, 2)
    assert gradgradcheck(lambda x, w: ft.conv2d(x, w, stride=(2, 1)), (x, w))


POOL_OPTIONS = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
]


@pytest.mark.parametrize("options", POOL_OPTIONS, ids=str)
@pytest.mark.parametrize("nd", [1, 2])
def test_pools(rng, nd, options):
    x = _t(rng, 2, 2, 7) if nd == 1 else _t(rng, 1, 2, 7, 6)
    max_pool, avg_pool = (
        (ft.max_pool1d, ft.avg_pool1d) if nd == 1 else (ft.max_pool2d, ft.avg_pool2d)
    )
    assert gradgradcheck(lambda x: max_pool(x, **options), (x,))
    assert gradgradcheck(lambda x: avg_pool(x, **options), (x,))


def test_pool_options(rng):
    x = _t(rng, 1, 2, 7, 6)
    assert gradgradcheck(lambda x: ft.max_pool2d(x, 2, dilation=2), (x,))
    assert gradgradcheck(lambda x: ft.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (x,))
    assert gradgradcheck(lambda x: ft.max_pool1d(x[0], 3, 1, 1), (x[:, 0],))


def test_adaptive_pools(rng):
    x1, x2 = _t(rng, 2, 3, 9), _t(rng, 1, 2, 7, 6)
    assert gradgradcheck(lambda x: ft.adaptive_avg_pool1d(x, 4), (x1,))
    assert gradgradcheck(lambda x: ft.adaptive_avg_pool2d(x, (3, None)), (x2,))
    assert gradgradcheck(lambda x: ft.adaptive_max_pool2d(x, (3, 4)), (x2,))
    assert gradgradcheck(lambda x: ft.adaptive_max_pool2d(x, 1, True)[0], (x2,))


# ---------------------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_batch_norm(rng, shape, training, activation):
    c = shape[1]
    x, w, b = _t(rng, *shape, scale=2.0), _t(rng, c, offset=1.0), _t(rng, c)
    mean, var = torch.tensor(rng.standard_normal(c)), torch.tensor(rng.random(c) + 0.5)

    def fn(x, w, b):
        mean_, var_ = mean.clone(), var.clone()
        return ft.batch_norm(x, mean_, var_, w, b, training, 0.1, 1e-3, activation=activation)

    assert gradgradcheck(fn, (x, w, b))


def test_batch_norm_without_affine_or_statistics(rng):
    x = _t(rng, 3, 2, 2, 2)
    assert gradgradcheck(lambda x: ft.batch_norm(x, None, None, training=True), (x,))


# ---------------------------------------------------------------------------------------
# Third order, and the physics-informed network
# ---------------------------------------------------------------------------------------


def _grad(y, x):
    return torch.autograd.grad(y, x, torch.ones_like(y), create_graph=True)[0]


def test_linear_tanh_third_order(rng):
    x, w, b = _t(rng, 4, 3), _t(rng, 5, 3), _t(rng, 5)

    def input_gradient(x, w, b):  # its gradgradcheck checks third derivatives
        return _grad(ft.linear(x, w, b, activation="tanh"), x)

    assert gradgradcheck(input_gradient, (x, w, b))

    w1, b1, w2 = _t(rng, 5, 1), _t(rng, 5), _t(rng, 5, 1).detach().t().requires_grad_()

    def third(linear, tanh):
        t = torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(-1, 1).requires_grad_()
        y = linear(tanh(linear(t, w1, b1)), w2)
        d3 = _grad(_grad(_grad(y, t), t), t)
        return d3, torch.autograd.grad(d3.pow(2).sum(), (w1, b1, w2))

    ours = third(ft.linear, ft.tanh)
    theirs = third(F.linear, torch.tanh)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-10, atol=1e-12)
    for a, e in zip(ours[1], theirs[1]):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


THIRD_ORDER = {
    "conv1d": lambda x, w: ft.conv1d(x, w, stride=2, padding=1, activation="relu"),
    "conv2d": lambda x, w: ft.conv2d(x.unsqueeze(-1), w.unsqueeze(-1), dilation=(2, 1)),
    "max_pool": lambda x, w: ft.max_pool1d(x * w.sum(), 3, 2),
    "avg_pool": lambda x, w: ft.adaptive_avg_pool1d(x * w.sum(), 3),
    "softmax": lambda x, w: ft.log_softmax(ft.softmax(x * w.sum(), 1), 2),
    "silu": lambda x, w: ft.gelu(ft.silu(x * w.sum()), "tanh"),
}


@pytest.mark.parametrize("name", sorted(THIRD_ORDER))
def test_third_order(rng, name):
    x, w = _t(rng, 2, 2, 7), _t(rng, 3, 2, 3)

    def input_gradient(x, w):  # its gradgradcheck checks third derivatives
        y = THIRD_ORDER[name](x, w)
        return torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)[0]

    assert gradgradcheck(input_gradient, (x, w))


def _pinn_loss(params, hidden, linear, mse_loss, t):
    """The damped oscillator x'' + g x' + w^2 x = 0, x(0) = 1, x'(0) = 0, for the network
    of ``hidden(h, weight, bias)`` layers and a ``linear`` output layer."""

    def net(t):
        h = t
        for w, b in params[:-1]:
            h = hidden(h, w, b)
        return linear(h, *params[-1])

    x = net(t)
    dx = _grad(x, t)
    d2x = _grad(dx, t)
    residual = d2x + 0.4 * dx + 4.0 * x
    zero = torch.zeros(1, 1, dtype=t.dtype, requires_grad=True)
    x0 = net(zero)
    initial = (x0 - 1) ** 2 + _grad(x0, zero) ** 2
    return mse_loss(residual, torch.zeros_like(residual)) + initial.sum()


def _ours(h, w, b):
    return ft.tanh(ft.linear(h, w, b))


def _ours_fused(h, w, b):  # tanh fused into the linear, as a trainer would
    return ft.linear(h, w, b, activation="tanh")


def _torch(h, w, b):
    return torch.tanh(F.linear(h, w, b))


def test_pinn_parameter_gradients_match_torch(rng):
    sizes = [1, 8, 8, 1]
    params = [(_t(rng, o, i, scale=0.8), _t(rng, o)) for i, o in zip(sizes, sizes[1:])]
    flat = [p for pair in params for p in pair]
    t = torch.tensor(rng.random((10, 1)), dtype=torch.float64).requires_grad_()
    expected_loss = _pinn_loss(params, _torch, F.linear, F.mse_loss, t)
    expected = torch.autograd.grad(expected_loss, flat)
    for hidden in (_ours, _ours_fused):
        loss = _pinn_loss(params, hidden, ft.linear, ft.mse_loss, t)
        torch.testing.assert_close(loss, expected_loss, rtol=1e-12, atol=0)
        for a, e in zip(torch.autograd.grad(loss, flat), expected):
            assert float((a - e).abs().max() / e.abs().max()) < 1e-10


def test_pinn_float32_close_to_torch(rng):
    sizes = [1, 6, 1]
    params = [
        (_t(rng, o, i, dtype=torch.float32), _t(rng, o, dtype=torch.float32))
        for i, o in zip(sizes, sizes[1:])
    ]
    flat = [p for pair in params for p in pair]
    t = torch.tensor(rng.random((7, 1)), dtype=torch.float32).requires_grad_()
    ours = torch.autograd.grad(_pinn_loss(params, _ours_fused, ft.linear, ft.mse_loss, t), flat)
    theirs = torch.autograd.grad(_pinn_loss(params, _torch, F.linear, F.mse_loss, t), flat)
    for a, e in zip(ours, theirs):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------
# The two backward paths
# ---------------------------------------------------------------------------------------


def test_first_order_backward_records_nothing(rng):
    x, w = _t(rng, 4, 3), _t(rng, 5, 3)
    y = ft.linear(x, w, activation="tanh")
    (gx,) = torch.autograd.grad(y.sum(), x)
    assert gx.grad_fn is None and not gx.requires_grad


def _node_names(tensor) -> set[str]:
    """The names of every autograd node ``tensor`` depends on."""
    names, stack, seen = set(), [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return names


def _conv_chain(x, w):
    return ft.conv1d(x.reshape(1, 1, 12), w.reshape(5, 1, 3), activation="relu")


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda x, w: ft.linear(x, w, activation="tanh"),
            {"LinearFunctionBackward", "PointwiseGradFunctionBackward"},
        ),
        (_conv_chain, {"ConvGradFunctionBackward", "PointwiseGradFunctionBackward"}),
    ],
    ids=["linear", "conv1d"],
)
def test_create_graph_composes_fastnn_functions(rng, build, expected):
    x, w = _t(rng, 4, 3), _t(rng, 5, 3)
    (gx,) = torch.autograd.grad(build(x, w).sum(), x, create_graph=True)
    assert expected <= _node_names(gx)


def test_second_derivative_values_match_torch(rng):
    x, w, b = _t(rng, 2, 3, 6), _t(rng, 4, 3, 3), _t(rng, 4)

    def second(conv, pool, softmax):
        y = softmax(pool(conv(x, w, b, padding=1), 2), 1)
        (gx,) = torch.autograd.grad((y * y.detach().flip(-1)).sum(), x, create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum(), (x, w, b))

    ours = second(ft.conv1d, ft.max_pool1d, ft.softmax)
    theirs = second(F.conv1d, F.max_pool1d, F.softmax)
    for a, e in zip(ours, theirs):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


def test_backward_values_identical_with_and_without_create_graph(rng):
    x, w, b = _t(rng, 2, 3, 6), _t(rng, 4, 3, 3), _t(rng, 4)
    y = ft.conv1d(x, w, b, activation="relu")
    fast = torch.autograd.grad(y.sum(), (x, w, b), retain_graph=True)
    slow = torch.autograd.grad(y.sum(), (x, w, b), create_graph=True)
    for a, e in zip(fast, slow):
        np.testing.assert_allclose(a.numpy(), e.detach().numpy(), rtol=1e-12, atol=1e-12)
