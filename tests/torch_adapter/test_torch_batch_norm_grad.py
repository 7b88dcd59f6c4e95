"""Batch norm's higher-order gradients (fastnn/torch/_norm_grad.py): gradgradcheck in
float64 of the three Functions and of batch_norm in training and eval, with and without
affine parameters, each fused activation and 2-D / 3-D / 4-D inputs; third derivatives
(gradgradcheck of a gradient, and values against torch's F.batch_norm to 1e-10); and the
create_graph graph, whose every node over the (N, C, *) tensors is a fastnn Function."""

from __future__ import annotations

import numpy as np
import pytest

from tests.utils import import_torch

torch = import_torch()
F = torch.nn.functional

import fastnn.torch as ft  # noqa: E402
from fastnn.torch._norm_grad import (  # noqa: E402
    ChannelSumsFunction,
    ElemtFunction,
    StatsFunction,
)

gradgradcheck = torch.autograd.gradgradcheck

SHAPES = [(5, 3), (2, 3, 4), (2, 3, 2, 3)]
ACTIVATIONS = [None, "relu", "relu6"]

#: The autograd nodes of fastnn's Functions that may touch (N, C, *) tensors.
FASTNN_NODES = {
    "BatchNormFunctionBackward",
    "ElemtFunctionBackward",
    "ChannelSumsFunctionBackward",
    "StatsFunctionBackward",
    "AddFunctionBackward",
    "PointwiseGradFunctionBackward",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _t(rng, *shape, scale=1.0, offset=0.0, dtype=torch.float64, grad=True):
    values = rng.standard_normal(shape) * scale + offset
    return torch.tensor(values, dtype=dtype).requires_grad_(grad)


def _strided(rng, *shape):
    """A float64 leaf of ``shape`` that is a non-contiguous view (every other column of
    the last dim)."""
    base = _t(rng, *shape[:-1], 2 * shape[-1], scale=2.0, grad=False)
    return base[..., ::2].requires_grad_()


def _running(rng, c):
    return torch.tensor(rng.standard_normal(c)), torch.tensor(rng.random(c) + 0.5)


def _bn(running, training, activation, eps=1e-3):
    """batch_norm of (x, weight=None, bias=None) with fresh copies of ``running``."""

    def fn(x, w=None, b=None):
        mean, var = (None, None) if running is None else (t.clone() for t in running)
        return ft.batch_norm(x, mean, var, w, b, training, 0.1, eps, activation=activation)

    return fn


def _torch_bn(running, training, eps=1e-3):
    def fn(x, w=None, b=None):
        mean, var = (None, None) if running is None else (t.clone() for t in running)
        return F.batch_norm(x, mean, var, w, b, training, 0.1, eps)

    return fn


# ---------------------------------------------------------------------------------------
# The three Functions
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_elemt_function(rng, shape, affine):
    c = shape[1]
    x, mean, invstd = _strided(rng, *shape), _t(rng, c), _t(rng, c, offset=1.0)
    args = (x, mean, invstd, _t(rng, c), _t(rng, c)) if affine else (x, mean, invstd)
    fn = lambda x, m, s, w=None, b=None: ElemtFunction.apply(x, m, s, w, b)  # noqa: E731
    assert gradgradcheck(fn, args)
    expected = (x - mean.reshape(1, c, *[1] * (x.dim() - 2))) * invstd.reshape(
        1, c, *[1] * (x.dim() - 2)
    )
    if affine:
        per_channel = [1, c, *[1] * (x.dim() - 2)]
        expected = expected * args[3].reshape(per_channel) + args[4].reshape(per_channel)
    torch.testing.assert_close(fn(*args), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_channel_sums_function(rng, shape):
    c = shape[1]
    g, x, mean = _strided(rng, *shape), _t(rng, *shape), _t(rng, c)
    assert gradgradcheck(ChannelSumsFunction.apply, (g, x, mean))
    total, centred = ChannelSumsFunction.apply(g, x, mean)
    dims = [0, *range(2, len(shape))]
    centred_x = x - mean.reshape(1, c, *[1] * (len(shape) - 2))
    torch.testing.assert_close(total, g.sum(dims), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(centred, (g * centred_x).sum(dims), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_stats_function(rng, shape):
    x = _strided(rng, *shape)
    fn = lambda x: StatsFunction.apply(x, 1e-3)  # noqa: E731
    assert gradgradcheck(fn, (x,))
    assert torch.autograd.gradcheck(fn, (x,))
    dims = [0, *range(2, len(shape))]
    mean, invstd = fn(x)
    torch.testing.assert_close(mean, x.mean(dims), rtol=1e-13, atol=1e-13)
    expected = (x.var(dims, unbiased=False) + 1e-3).rsqrt()
    torch.testing.assert_close(invstd, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# batch_norm: second order
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_batch_norm_gradgradcheck(rng, shape, training, affine, activation):
    c = shape[1]
    x = _t(rng, *shape, scale=2.0, offset=0.5)
    big = activation == "relu6" and affine  # weight and bias that take outputs above 6
    w, b = _t(rng, c, offset=4.0 if big else 1.0), _t(rng, c, offset=3.0 if big else 0.0)
    args = (x, w, b) if affine else (x,)
    running = _running(rng, c)
    if big:
        assert bool((_bn(running, training, None)(*args) > 6).any())
    assert gradgradcheck(_bn(running, training, activation), args)


def test_batch_norm_without_running_statistics(rng):
    x, w = _t(rng, 3, 2, 5), _t(rng, 2, offset=1.0)
    assert gradgradcheck(lambda x, w: _bn(None, True, None)(x, w), (x, w))


def test_batch_norm_non_contiguous(rng):
    x, w, b = _strided(rng, 3, 4, 5), _t(rng, 4, offset=1.0), _t(rng, 4)
    assert not x.is_contiguous()
    assert gradgradcheck(_bn(_running(rng, 4), True, "relu"), (x, w, b))


def _second(bn, x, w, b, v, u):
    """The Hessian-vector products of <bn(x, w, b), v> along ``u`` (one per input)."""
    gx, gw, gb = torch.autograd.grad(bn(x, w, b), (x, w, b), v, create_graph=True)
    scalar = (gx * u).sum() + gw.pow(2).sum() + (gb * gw).sum()
    return torch.autograd.grad(scalar, (x, w, b), materialize_grads=True)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_second_derivatives_match_torch(rng, training, shape):
    c = shape[1]
    x, w, b = _t(rng, *shape, scale=3.0, offset=5.0), _t(rng, c, offset=1.0), _t(rng, c)
    v, u = torch.tensor(rng.standard_normal(shape)), torch.tensor(rng.standard_normal(shape))
    running = _running(rng, c)
    ours = _second(_bn(running, training, None), x, w, b, v, u)
    theirs = _second(_torch_bn(running, training), x, w, b, v, u)
    for a, e in zip(ours, theirs):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def test_create_graph_values_equal_first_order(rng):
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        x = _t(rng, 4, 3, 6, dtype=dtype)
        w, b = _t(rng, 3, offset=1.0, dtype=dtype), _t(rng, 3, dtype=dtype)
        y = _bn(None, True, "relu")(x, w, b)
        v = torch.tensor(rng.standard_normal(y.shape), dtype=dtype)
        fast = torch.autograd.grad(y, (x, w, b), v, retain_graph=True)
        slow = torch.autograd.grad(y, (x, w, b), v, create_graph=True)
        for a, e in zip(fast, slow):
            assert a.dtype == e.dtype == dtype
            np.testing.assert_allclose(a.numpy(), e.detach().numpy(), rtol=tol, atol=tol)


def test_empty_batch_create_graph_equals_first_order(rng):
    x, w, b = torch.zeros(0, 3, 4, dtype=torch.float64, requires_grad=True), _t(rng, 3), _t(rng, 3)
    y = _bn(None, True, None)(x, w, b)
    fast = torch.autograd.grad(y, (x, w, b), torch.ones_like(y), retain_graph=True)
    slow = torch.autograd.grad(y, (x, w, b), torch.ones_like(y), create_graph=True)
    for a, e in zip(fast, slow):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e.detach(), rtol=0, atol=0)


def test_float32_second_order_close_to_torch(rng):
    x = _t(rng, 6, 4, 3, dtype=torch.float32)
    w, b = _t(rng, 4, offset=1.0, dtype=torch.float32), _t(rng, 4, dtype=torch.float32)
    v = torch.tensor(rng.standard_normal(x.shape), dtype=torch.float32)
    u = torch.tensor(rng.standard_normal(x.shape), dtype=torch.float32)
    ours = _second(_bn(None, True, None), x, w, b, v, u)
    theirs = _second(_torch_bn(None, True), x, w, b, v, u)
    for a, e in zip(ours, theirs):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------
# Third order
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_third_order_gradgradcheck(rng, training, activation):
    x, w, b = _t(rng, 3, 2, 4, scale=2.0), _t(rng, 2, offset=1.0), _t(rng, 2)
    v = torch.tensor(rng.standard_normal(x.shape))
    bn = _bn(_running(rng, 2), training, activation)

    def gradient(x, w, b):  # its gradgradcheck checks third derivatives
        gx, gw = torch.autograd.grad(bn(x, w, b), (x, w), v, create_graph=True)
        return gx, gw

    assert gradgradcheck(gradient, (x, w, b))


def _explicit_bn(x, w, b, eps=1e-3):
    """Training-mode batch norm written out in torch ops.  The reference for third
    derivatives: torch's own F.batch_norm fails gradgradcheck of its gradient (third
    order) in float64, its double backward not being differentiable again exactly."""
    dims, per_channel = [0, *range(2, x.dim())], [1, -1, *[1] * (x.dim() - 2)]
    mean = x.mean(dims, keepdim=True)
    var = (x - mean).pow(2).mean(dims, keepdim=True)
    return (x - mean) * (var + eps).rsqrt() * w.reshape(per_channel) + b.reshape(per_channel)


@pytest.mark.parametrize("shape", [(6, 2), (3, 2, 5), (2, 2, 3, 2)], ids=str)
def test_third_derivatives_match_torch(rng, shape):
    c = shape[1]
    x, w, b = _t(rng, *shape, scale=2.0, offset=-3.0), _t(rng, c, offset=1.0), _t(rng, c)
    v, u = torch.tensor(rng.standard_normal(shape)), torch.tensor(rng.standard_normal(shape))

    def third(bn):
        gx, gw = torch.autograd.grad(bn(x, w, b), (x, w), v, create_graph=True)
        hx, hw = torch.autograd.grad((gx * u).sum() + gw.pow(3).sum(), (x, w), create_graph=True)
        scalar = hx.pow(2).sum() + (hw * gw).sum()
        return torch.autograd.grad(scalar, (x, w, b), materialize_grads=True)

    ours, theirs = third(_bn(None, True, None)), third(_explicit_bn)
    for a, e in zip(ours, theirs):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------
# The graph: fastnn Functions over the big tensors, torch only on (C,) vectors
# ---------------------------------------------------------------------------------------


def _nodes(*tensors):
    """Every autograd node the ``tensors`` depend on."""
    stack, seen = [t.grad_fn for t in tensors], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return seen


def _torch_nodes_on(nodes, shape) -> set[str]:
    """The names of the nodes, other than fastnn Functions and leaves, that output a
    tensor of ``shape`` (their gradient's metadata is the forward output's)."""
    big = set()
    for node in nodes:
        name = type(node).__name__
        if name in FASTNN_NODES or name == "AccumulateGrad":
            continue
        if any(tuple(m.shape) == tuple(shape) for m in node._input_metadata):
            big.add(name)
    return big


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("activation", [None, "relu"], ids=str)
def test_create_graph_runs_on_fastnn_functions(rng, training, activation):
    shape = (4, 3, 5)
    x, w, b = _t(rng, *shape), _t(rng, 3, offset=1.0), _t(rng, 3)
    v, u = torch.tensor(rng.standard_normal(shape)), torch.tensor(rng.standard_normal(shape))
    y = _bn(_running(rng, 3), training, activation)(x, w, b)
    first = torch.autograd.grad(y, (x, w, b), v, create_graph=True)
    nodes = _nodes(*first)
    names = {type(n).__name__ for n in nodes}
    expected = {"ElemtFunctionBackward", "ChannelSumsFunctionBackward"}
    if training:
        expected |= {"StatsFunctionBackward", "AddFunctionBackward"}
    if activation:
        expected.add("PointwiseGradFunctionBackward")
    assert expected <= names
    assert _torch_nodes_on(nodes, shape) == set()
    # One order up: the backwards of those Functions compose them again.  Where several
    # contributions reach one tensor (x feeds the statistics, the sums and the affine
    # pass), autograd's engine sums them, recorded as AddBackward0 under create_graph.
    gx, gw, gb = first
    second = torch.autograd.grad(first, (x, w), (u, gw.detach(), gb.detach()),
                                 create_graph=True, allow_unused=True)  # fmt: skip
    nodes = _nodes(*(s for s in second if s is not None and s.requires_grad))
    if training:  # (in eval, batch norm is affine in x: its second derivatives constants)
        again = {"ElemtFunctionBackward", "ChannelSumsFunctionBackward", "StatsFunctionBackward"}
        assert again <= {type(n).__name__ for n in nodes}
    assert _torch_nodes_on(nodes, shape) <= {"AddBackward0"}


def test_graph_check_sees_torch_ops_on_big_tensors(rng):
    """The check above can fail: torch's own batch norm has big-tensor torch nodes."""
    shape = (4, 3, 5)
    x, w = _t(rng, *shape), _t(rng, 3, offset=1.0)
    y = F.batch_norm(x * 1, None, None, w, None, True)
    (gx,) = torch.autograd.grad(y, x, torch.ones(shape), create_graph=True)
    assert _torch_nodes_on(_nodes(gx), shape)
