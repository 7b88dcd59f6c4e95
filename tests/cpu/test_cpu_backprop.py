"""The CPU sensitivity recursion (BP1-BP4) against the float64 reference backend and a
PyTorch autograd MLP: output_sensitivity for every loss, activation and reduction,
sensitivity (the GEMM with its derivative epilogue) on both GEMM engines, dense_grads,
and mlp_backward over stacks of layers; odd sizes, 0 and 1 rows, every memory layout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from tests.utils import (
    ACTIVATIONS,
    FLOAT_DTYPES,
    REDUCTIONS,
    assert_close,
    assert_layout_independent,
    import_torch,
    requires_torch,
)

ROWS = [0, 1, 37]


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy"])
def test_output_sensitivity_pointwise_losses(loss, rows, dtype, rng):
    u = (3 * rng.standard_normal((rows, 9))).astype(dtype)
    t = rng.random((rows, 9)).astype(dtype)
    for activation, reduction in itertools.product(ACTIVATIONS, REDUCTIONS):
        y = fastnn.sigmoid(u) if activation in (None, "sigmoid") else rng.random(u.shape)
        y = y.astype(dtype)
        if y.size:
            # BCE's clamped denominator (x 1e12): where f'(u) is well conditioned, since
            # the reference's 1 - tanh(u)^2 loses digits that 1e12 would magnify
            y.reshape(-1)[0] = 0.0
            u.reshape(-1)[0] = 0.25
        args = (y, t, u, activation, loss, reduction)
        with np.errstate(invalid="ignore"):
            want = fastnn.output_sensitivity(*args, backend="reference")
        got = fastnn.output_sensitivity(*args)
        assert got.dtype == dtype and got.shape == want.shape
        assert_close(got, want, dtype, what=f"{activation} {reduction}")


@pytest.mark.parametrize("rows", ROWS)
def test_output_sensitivity_cross_entropy(rows, dtype, rng):
    logits = (3 * rng.standard_normal((rows, 6))).astype(dtype)
    target = rng.integers(0, 6, rows)
    for activation, reduction in itertools.product([None, "softmax"], REDUCTIONS):
        y = logits if activation is None else fastnn.softmax(logits, 1)
        args = (y, target, logits, activation, "cross_entropy", reduction)
        with np.errstate(invalid="ignore"):
            want = fastnn.output_sensitivity(*args, backend="reference")
        assert_close(fastnn.output_sensitivity(*args), want, dtype)


@pytest.mark.parametrize("rows", ROWS)
def test_sensitivity_matches_reference(activation, rows, dtype, gemm_engine, rng):
    for n_next, n in [(1, 1), (5, 13), (300, 40)]:
        delta_next = rng.standard_normal((rows, n_next)).astype(dtype)
        w_next = rng.standard_normal((n_next, n)).astype(dtype)
        u = (3 * rng.standard_normal((rows, n))).astype(dtype)
        want = fastnn.sensitivity(delta_next, w_next, u, activation, backend="reference")
        got = fastnn.sensitivity(delta_next, w_next, u, activation)
        assert got.dtype == dtype and got.shape == (rows, n)
        assert_close(got, want, dtype)


@pytest.mark.parametrize("rows", ROWS)
def test_dense_grads_match_reference(rows, dtype, gemm_engine, rng):
    delta = rng.standard_normal((rows, 11)).astype(dtype)
    x = rng.standard_normal((rows, 23)).astype(dtype)
    for got, want in zip(
        fastnn.dense_grads(delta, x), fastnn.dense_grads(delta, x, backend="reference")
    ):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


def _mlp(rng, sizes, rows, activations, dtype):
    """Forward through a stack of dense layers: (inputs, preacts, weights)."""
    x = rng.standard_normal((rows, sizes[0])).astype(dtype)
    inputs, preacts, weights = [], [], []
    for i, act in enumerate(activations):
        w = (rng.standard_normal((sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])).astype(dtype)
        u = fastnn.linear(x, w)
        inputs.append(x)
        preacts.append(u)
        weights.append(w)
        x = u if act is None else getattr(fastnn, act)(u)
    return inputs, preacts, weights, x


@pytest.mark.parametrize("rows", ROWS)
def test_mlp_backward_matches_reference(rows, dtype, gemm_engine, rng):
    for activations in (["relu"], ["tanh", "sigmoid", None], ["relu", "relu", "tanh", "sigmoid"]):
        sizes = [int(s) for s in rng.integers(1, 40, len(activations) + 1)]
        inputs, preacts, weights, y = _mlp(rng, sizes, rows, activations, dtype)
        delta_out = rng.standard_normal(y.shape).astype(dtype)
        want = fastnn.mlp_backward(
            inputs, preacts, weights, delta_out, activations, backend="reference"
        )
        got = fastnn.mlp_backward(inputs, preacts, weights, delta_out, activations)
        assert len(got) == len(want)
        for (gw, gb), (rw, rb) in zip(got, want):
            assert gw.dtype == gb.dtype == dtype
            assert_close(gw, rw, dtype)
            assert_close(gb, rb, dtype)


def test_every_memory_layout(rng):
    delta_next = rng.standard_normal((8, 5)).astype(np.float32)
    w_next = rng.standard_normal((5, 7)).astype(np.float32)
    u = rng.standard_normal((8, 7)).astype(np.float32)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    for act in ACTIVATIONS:
        assert_layout_independent(
            lambda d, w, p, a=act: fastnn.sensitivity(d, w, p, a), delta_next, w_next, u
        )
    assert_layout_independent(fastnn.dense_grads, delta_next, x)
    t = rng.random((8, 7)).astype(np.float32)
    y = fastnn.sigmoid(u)
    assert_layout_independent(
        lambda a, b, c: fastnn.output_sensitivity(a, b, c, "tanh", "mse", "sum"), y, t, u
    )


@requires_torch
@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy", "cross_entropy"])
def test_full_backward_pass_matches_torch_autograd(loss, rng):
    """BP1 then mlp_backward give the gradients torch's autograd gives for a whole MLP."""
    torch = import_torch()
    F = torch.nn.functional
    sizes, rows = [13, 17, 9, 5], 21
    hidden = ["relu", "tanh"]
    last = {"mse": "tanh", "binary_cross_entropy": "sigmoid", "cross_entropy": None}[loss]
    activations = [*hidden, last]
    x = rng.standard_normal((rows, sizes[0]))
    ws = [rng.standard_normal((sizes[i + 1], sizes[i])) / np.sqrt(sizes[i]) for i in range(3)]
    bs = [rng.standard_normal(sizes[i + 1]) for i in range(3)]
    target = (
        rng.integers(0, sizes[-1], rows)
        if loss == "cross_entropy"
        else rng.random((rows, sizes[-1]))
    )

    tw = [torch.tensor(w, requires_grad=True) for w in ws]
    tb = [torch.tensor(b, requires_grad=True) for b in bs]
    acts = {None: lambda v: v, "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    h = torch.tensor(x)
    for w, b, act in zip(tw, tb, activations):
        h = acts[act](F.linear(h, w, b))
    torch_loss = {
        "mse": F.mse_loss,
        "binary_cross_entropy": F.binary_cross_entropy,
        "cross_entropy": F.cross_entropy,
    }[loss]
    torch_loss(h, torch.tensor(target)).backward()

    for dtype in FLOAT_DTYPES:
        inputs, preacts, h_np = [], [], x.astype(dtype)
        for w, b, act in zip(ws, bs, activations):
            u = fastnn.linear(h_np, w.astype(dtype), b.astype(dtype))
            inputs.append(h_np)
            preacts.append(u)
            h_np = u if act is None else getattr(fastnn, act)(u)
        t = target if loss == "cross_entropy" else target.astype(dtype)
        delta = fastnn.output_sensitivity(h_np, t, preacts[-1], last, loss, "mean")
        grads = fastnn.mlp_backward(
            inputs, preacts, [w.astype(dtype) for w in ws], delta, activations
        )
        for (gw, gb), w, b in zip(grads, tw, tb):
            assert_close(gw, w.grad.numpy(), dtype)
            assert_close(gb, b.grad.numpy(), dtype)
