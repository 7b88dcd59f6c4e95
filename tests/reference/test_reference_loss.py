"""The reference losses (MSE, binary cross-entropy, cross-entropy over logits) and their
gradients against PyTorch and finite differences, for every reduction."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.gradcheck import assert_grad_close, numerical_vjp
from tests.utils import assert_close, assert_layout_independent, import_torch, requires_torch

SHAPES = [(), (1,), (7,), (3, 4), (2, 3, 2), (0,), (0, 3)]


def _torch_loss(name: str, x: np.ndarray, target: np.ndarray, reduction: str):
    """PyTorch's loss and d(sum of loss)/d input."""
    torch = import_torch()
    xt = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(target)
    loss = getattr(torch.nn.functional, name)(xt, tt, reduction=reduction)
    if xt.numel():
        loss.sum().backward()
    grad = xt.grad.numpy() if xt.grad is not None else np.zeros_like(x)
    return loss.detach().numpy(), grad


def _check(name: str, x, target, reduction: str, dtype, probabilities: bool = False):
    """fastnn's loss and its backward in ``dtype`` equal PyTorch's float64 ones."""
    want, want_grad = _torch_loss(name, x, target, reduction)
    forward = getattr(fastnn, name)
    backward = getattr(fastnn, f"{name}_backward")
    t = target if target.dtype.kind == "i" else target.astype(dtype)
    loss = forward(x.astype(dtype), t, reduction, backend="reference")
    assert loss.dtype == dtype
    assert loss.shape == (want.shape if reduction == "none" else ())
    assert_close(loss, want, dtype, what=f"{name} {reduction}")
    grad = backward(x.astype(dtype), t, reduction, backend="reference")
    assert grad.dtype == dtype and grad.shape == x.shape
    if probabilities and dtype == np.float32:
        # (p - t) / max(p (1 - p), 1e-12) amplifies the float32 rounding of p near 0 and 1
        want_grad = _torch_loss(name, x.astype(dtype).astype(np.float64), target, reduction)[1]
    assert_close(grad, want_grad, dtype, what=f"{name} backward {reduction}")


@requires_torch
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_mse_loss_matches_torch(shape, reduction, dtype, rng):
    _check("mse_loss", rng.standard_normal(shape), rng.standard_normal(shape), reduction, dtype)


@requires_torch
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_binary_cross_entropy_matches_torch(shape, reduction, dtype, rng):
    """Random probabilities with exact 0s and 1s (the logs clamp at -100, the gradient's
    denominator at 1e-12) and soft as well as hard targets."""
    p = rng.random(shape)
    p[rng.random(shape) < 0.2] = 0.0
    p[rng.random(shape) < 0.2] = 1.0
    target = rng.random(shape)
    hard = rng.random(shape) < 0.5
    target[hard] = np.round(target[hard])
    _check("binary_cross_entropy", p, target, reduction, dtype, probabilities=True)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_binary_cross_entropy_at_zero_and_one_is_finite(reduction):
    """log(0) is clamped at -100: a confident wrong answer costs 100, a right one 0."""
    p = np.array([0.0, 1.0, 0.0, 1.0])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    loss = fastnn.binary_cross_entropy(p, t, reduction, backend="reference")
    np.testing.assert_array_equal(loss, [100.0, 100.0, 0.0, 0.0] if reduction == "none" else 200)
    grad = fastnn.binary_cross_entropy_backward(p, t, reduction, backend="reference")
    assert np.all(np.isfinite(grad))


@requires_torch
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 3), (6, 1), (0, 4)], ids=str)
@pytest.mark.parametrize("scale", [1.0, 1e4], ids=["unit", "huge"])
def test_cross_entropy_matches_torch(shape, reduction, dtype, scale, rng):
    logits = rng.standard_normal(shape) * scale
    target = rng.integers(0, shape[1], shape[0])
    _check("cross_entropy", logits, target, reduction, dtype)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64, np.uint8])
def test_cross_entropy_accepts_any_integer_targets(index_dtype, rng):
    logits = rng.standard_normal((4, 3))
    target = np.array([0, 2, 1, 2])
    want = fastnn.cross_entropy(logits, target, "none", backend="reference")
    got = fastnn.cross_entropy(logits, target.astype(index_dtype), "none", backend="reference")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy", "cross_entropy"])
def test_backward_matches_finite_differences(name, reduction, rng):
    if name == "cross_entropy":
        x, target = rng.standard_normal((3, 4)), rng.integers(0, 4, 3)
    elif name == "binary_cross_entropy":  # keep p + step inside (0, 1)
        x, target = rng.uniform(0.05, 0.95, (2, 3)), rng.random((2, 3))
    else:
        x, target = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    forward = getattr(fastnn, name)
    (numeric,) = numerical_vjp(
        lambda x_: forward(x_, target, reduction, backend="reference"), [x], wrt=[0]
    )
    got = getattr(fastnn, f"{name}_backward")(x, target, reduction, backend="reference")
    assert_grad_close(got, numeric, f"{name} {reduction}")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy"])
def test_mean_of_nothing_is_nan(name, reduction):
    """As in PyTorch: the mean over zero elements is NaN, the sum 0."""
    x = np.zeros((0, 3))
    loss = getattr(fastnn, name)(x, x, reduction, backend="reference")
    assert loss.shape == ()
    assert np.isnan(loss) if reduction == "mean" else loss == 0.0


def test_layouts_give_identical_results(reduction, dtype, rng):
    x = rng.uniform(0.01, 0.99, (3, 4)).astype(dtype)
    t = rng.random((3, 4)).astype(dtype)
    target = rng.integers(0, 4, 3)
    for name in ["mse_loss", "binary_cross_entropy"]:
        for suffix in ["", "_backward"]:
            fn = getattr(fastnn, name + suffix)
            assert_layout_independent(
                lambda x_, t_, f=fn: f(x_, t_, reduction, backend="reference"),
                x,
                t,
                what=name + suffix,
            )
    for fn in (fastnn.cross_entropy, fastnn.cross_entropy_backward):
        assert_layout_independent(
            lambda x_, t_, f=fn: f(x_, t_, reduction, backend="reference"),
            x,
            target,
            what=fn.__name__,
        )
