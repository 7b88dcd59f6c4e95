"""The reference sensitivity recursion (BP1-BP4) against PyTorch autograd and finite
differences.

Notation of the course notes, rows are samples: ``u^m = y^{m-1} @ W^m.T + b^m``,
``y^m = f^m(u^m)``, ``delta^m = dJ/du^m``.  BP1 is :func:`fastnn.output_sensitivity`, BP2
:func:`fastnn.sensitivity`, BP3/BP4 :func:`fastnn.dense_grads`; :func:`fastnn.mlp_backward`
runs the whole recursion.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from tests.gradcheck import assert_grad_close, numerical_vjp
from tests.utils import (
    ACTIVATIONS,
    FLOAT_DTYPES,
    REDUCTIONS,
    assert_close,
    assert_layout_independent,
    import_torch,
    requires_torch,
)

NUMPY_ACTIVATION = {
    None: lambda u: u,
    "relu": lambda u: np.maximum(u, 0.0),
    "sigmoid": lambda u: 1.0 / (1.0 + np.exp(-u)),
    "tanh": np.tanh,
}


def _torch_activation(name: str | None, u):
    """f(u) in PyTorch; "softmax" is over the classes (dim 1)."""
    torch = import_torch()
    if name is None:
        return u
    if name == "softmax":
        return torch.softmax(u, dim=1)
    return getattr(torch, name)(u)


def _torch_loss(loss: str, y, target, reduction: str, logits: bool):
    """J for the output y; cross-entropy takes logits, or probabilities when not ``logits``."""
    torch = import_torch()
    functional = torch.nn.functional
    if loss == "mse":
        return functional.mse_loss(y, target, reduction=reduction)
    if loss == "binary_cross_entropy":
        return functional.binary_cross_entropy(y, target, reduction=reduction)
    if logits:
        return functional.cross_entropy(y, target, reduction=reduction)
    return functional.nll_loss(torch.log(y), target, reduction=reduction)


# ---------------------------------------------------------------------------------------
# BP1: output_sensitivity
# ---------------------------------------------------------------------------------------

BP1_CASES = [
    (loss, act, red)
    for loss, acts in [
        ("mse", ACTIVATIONS),
        ("binary_cross_entropy", ACTIVATIONS),
        ("cross_entropy", [None, "softmax"]),
    ]
    for act in acts
    for red in REDUCTIONS
]


def _bp1_data(loss: str, activation, shape, rng):
    """(preact u, output y = f(u), target) in float64; for BCE, u keeps f(u) inside (0, 1)."""
    n, c = shape
    if loss == "cross_entropy":
        u = rng.standard_normal(shape) * 2
        y = u if activation is None else np.exp(u) / np.exp(u).sum(axis=1, keepdims=True)
        return u, y, rng.integers(0, c, n)
    if loss == "binary_cross_entropy":
        low, high = {None: (0.02, 0.98), "relu": (-1.0, 0.98), "tanh": (0.02, 2.0)}.get(
            activation, (-4.0, 4.0)
        )
        u = rng.uniform(low, high, shape)
        target = rng.random(shape)
    else:
        u = rng.standard_normal(shape) * 2
        target = rng.standard_normal(shape)
    return u, NUMPY_ACTIVATION[activation](u), target


@requires_torch
@pytest.mark.parametrize("shape", [(4, 3), (1, 5)], ids=str)
@pytest.mark.parametrize(("loss", "activation", "reduction"), BP1_CASES, ids=str)
def test_output_sensitivity_matches_torch_autograd(loss, activation, reduction, shape, rng):
    """delta^M equals dJ/du of J = loss(f(u), target) by PyTorch autograd ("none": the
    gradient of the sum of the per-element losses)."""
    torch = import_torch()
    u, y, target = _bp1_data(loss, activation, shape, rng)
    ut = torch.tensor(u, requires_grad=True)
    J = _torch_loss(
        loss,
        _torch_activation(activation, ut),
        torch.tensor(target),
        reduction,
        logits=activation is None,
    )
    J.sum().backward()
    for dtype in FLOAT_DTYPES:
        t = target if loss == "cross_entropy" else target.astype(dtype)
        delta = fastnn.output_sensitivity(
            y.astype(dtype), t, u.astype(dtype), activation, loss, reduction, backend="reference"
        )
        assert delta.dtype == dtype and delta.shape == shape
        assert_close(delta, ut.grad.numpy(), dtype, what=f"{loss} {activation} {reduction}")


def test_output_sensitivity_is_the_notes_formula_for_summed_mse(activation, rng):
    """BP1 of the notes: delta^M = -2 f'(u^M) (t - y^M) for J = sum (t - y)^2."""
    u = rng.standard_normal((5, 3))
    u[np.abs(u) < 1e-3] = 0.5
    y = NUMPY_ACTIVATION[activation](u)
    t = rng.standard_normal(u.shape)
    slope = {
        None: np.ones_like(u),
        "relu": (u > 0).astype(float),
        "sigmoid": y * (1 - y),
        "tanh": 1 - y**2,
    }[activation]
    delta = fastnn.output_sensitivity(y, t, u, activation, "mse", "sum", backend="reference")
    assert_close(delta, -2.0 * slope * (t - y))


def test_output_sensitivity_sigmoid_bce_is_exact_when_saturated(reduction):
    """After a sigmoid, BCE's delta is y - t computed directly (divided by the element count
    for "mean"), so it stays right where y rounds to 0 or 1; PyTorch's autograd through a
    saturated sigmoid gives 0 there instead."""
    u = np.array([[40.0, -40.0, 800.0, -800.0, 0.0]])
    y = fastnn.sigmoid(u, backend="reference")
    t = np.array([[0.0, 1.0, 0.25, 0.5, 1.0]])
    delta = fastnn.output_sensitivity(
        y, t, u, "sigmoid", "binary_cross_entropy", reduction, backend="reference"
    )
    scale = 1 / u.size if reduction == "mean" else 1.0
    assert_close(delta, (y - t) * scale)


@pytest.mark.parametrize(("loss", "activation", "reduction"), BP1_CASES, ids=str)
def test_output_sensitivity_matches_finite_differences(loss, activation, reduction, rng):
    """delta^M against a central difference of J(u) = loss(f(u)) built from fastnn's own
    forward ops."""
    u, y, target = _bp1_data(loss, activation, (2, 3), rng)
    if activation == "relu":  # keep the step off relu's kink
        u[np.abs(u) < 1e-3] = 0.5
        y = NUMPY_ACTIVATION["relu"](u)

    def objective(u_):
        if loss == "cross_entropy":  # NLL of softmax(u) is the cross-entropy of logits u
            return fastnn.cross_entropy(u_, target, reduction, backend="reference")
        y_ = u_ if activation is None else getattr(fastnn, activation)(u_, backend="reference")
        fn = fastnn.mse_loss if loss == "mse" else fastnn.binary_cross_entropy
        return fn(y_, target, reduction, backend="reference")

    (numeric,) = numerical_vjp(objective, [u])
    delta = fastnn.output_sensitivity(
        y, target, u, activation, loss, reduction, backend="reference"
    )
    assert_grad_close(delta, numeric, f"{loss} {activation} {reduction}")


# ---------------------------------------------------------------------------------------
# BP2-BP4 and the whole recursion, against autograd of a real network
# ---------------------------------------------------------------------------------------


def _network(sizes, activations, batch, loss, rng):
    """A dense network run forward in PyTorch, its mean loss backpropagated by autograd.

    Returns a dict of float64 numpy arrays: per layer the "inputs" y^{m-1}, "preacts" u^m,
    "weights" W^m, autograd's "deltas" dJ/du^m and "grads" (dJ/dW^m, dJ/db^m); and the
    network's "output" and "target"."""
    torch = import_torch()
    layers = len(sizes) - 1
    weights = [
        torch.tensor(
            rng.standard_normal((sizes[i + 1], sizes[i])) / np.sqrt(sizes[i]), requires_grad=True
        )
        for i in range(layers)
    ]
    biases = [
        torch.tensor(rng.standard_normal(sizes[i + 1]), requires_grad=True) for i in range(layers)
    ]
    h = torch.tensor(rng.standard_normal((batch, sizes[0])))
    inputs, preacts = [], []
    for i in range(layers):
        inputs.append(h.detach().numpy().copy())
        u = torch.nn.functional.linear(h, weights[i], biases[i])
        u.retain_grad()
        preacts.append(u)
        h = _torch_activation(activations[i], u)
    if loss == "cross_entropy":
        target = torch.tensor(rng.integers(0, sizes[-1], batch))
    elif loss == "binary_cross_entropy":
        target = torch.tensor(rng.random((batch, sizes[-1])))
    else:
        target = torch.tensor(rng.standard_normal((batch, sizes[-1])))
    _torch_loss(loss, h, target, "mean", logits=True).backward()
    return {
        "inputs": inputs,
        "preacts": [u.detach().numpy() for u in preacts],
        "weights": [w.detach().numpy() for w in weights],
        "deltas": [u.grad.numpy() for u in preacts],
        "grads": [(w.grad.numpy(), b.grad.numpy()) for w, b in zip(weights, biases)],
        "output": h.detach().numpy(),
        "target": target.numpy(),
    }


def _mlp_cases():
    rng = np.random.default_rng(31)
    cases = []
    for layers, loss in itertools.product(
        (2, 3, 4), ("mse", "binary_cross_entropy", "cross_entropy")
    ):
        for _ in range(2):
            sizes = tuple(int(v) for v in rng.integers(1, 7, layers + 1))
            hidden = tuple(ACTIVATIONS[int(i)] for i in rng.integers(0, 4, layers - 1))
            last = {
                "mse": ACTIVATIONS[int(rng.integers(4))],
                "binary_cross_entropy": "sigmoid",
                "cross_entropy": None,
            }[loss]
            cases.append((sizes, hidden + (last,), int(rng.choice([1, 2, 5])), loss))
    return cases


MLP_CASES = _mlp_cases()


def _mlp_id(case) -> str:
    sizes, acts, batch, loss = case
    return f"{loss}-n{batch}-sizes{sizes}-{'/'.join(str(a) for a in acts)}".replace(" ", "")


@requires_torch
@pytest.mark.parametrize("case", MLP_CASES, ids=_mlp_id)
def test_recursion_matches_torch_autograd(case, rng):
    """BP1 from the output, BP2 layer by layer, BP3/BP4 at every layer, and mlp_backward in
    one call, all equal to autograd's gradients of every W and b (and dJ/du^m)."""
    sizes, activations, batch, loss = case
    net = _network(sizes, activations, batch, loss, rng)
    layers = len(net["weights"])
    delta = fastnn.output_sensitivity(
        net["output"],
        net["target"],
        net["preacts"][-1],
        activations[-1],
        loss,
        "mean",
        backend="reference",
    )
    assert_close(delta, net["deltas"][-1], what="BP1")
    for m in range(layers - 1, -1, -1):
        gw, gb = fastnn.dense_grads(delta, net["inputs"][m], backend="reference")
        assert_close(gw, net["grads"][m][0], what=f"BP4 layer {m}")
        assert_close(gb, net["grads"][m][1], what=f"BP3 layer {m}")
        if m > 0:
            delta = fastnn.sensitivity(
                delta,
                net["weights"][m],
                net["preacts"][m - 1],
                activations[m - 1],
                backend="reference",
            )
            assert_close(delta, net["deltas"][m - 1], what=f"BP2 layer {m - 1}")
    for dtype in FLOAT_DTYPES:
        cast = {k: [a.astype(dtype) for a in net[k]] for k in ("inputs", "preacts", "weights")}
        grads = fastnn.mlp_backward(
            cast["inputs"],
            cast["preacts"],
            cast["weights"],
            net["deltas"][-1].astype(dtype),
            list(activations),
            backend="reference",
        )
        assert len(grads) == layers
        for m, ((gw, gb), (want_w, want_b)) in enumerate(zip(grads, net["grads"])):
            assert gw.dtype == gb.dtype == dtype
            assert_close(gw, want_w, dtype, what=f"mlp_backward dW layer {m}")
            assert_close(gb, want_b, dtype, what=f"mlp_backward db layer {m}")


@pytest.mark.parametrize("activations", [("tanh", "relu", None), ("sigmoid", "tanh", "sigmoid")])
def test_recursion_matches_finite_differences(activations, rng):
    """mlp_backward against central differences of J(W^1, b^1, ..., W^3, b^3), the summed
    MSE of a 3-layer network run forward with fastnn.linear."""
    sizes = (3, 4, 3, 2)
    params = []
    for i in range(3):
        params += [rng.standard_normal((sizes[i + 1], sizes[i])), rng.standard_normal(sizes[i + 1])]
    x = rng.standard_normal((4, sizes[0]))
    target = rng.standard_normal((4, sizes[-1]))

    def forward(*flat):
        h, inputs, preacts = x, [], []
        for i in range(3):
            inputs.append(h)
            preacts.append(fastnn.linear(h, flat[2 * i], flat[2 * i + 1], backend="reference"))
            h = (
                preacts[-1]
                if activations[i] is None
                else getattr(fastnn, activations[i])(preacts[-1], backend="reference")
            )
        return h, inputs, preacts

    def objective(*flat):
        return fastnn.mse_loss(forward(*flat)[0], target, "sum", backend="reference")

    y, inputs, preacts = forward(*params)
    if activations[1] == "relu":
        assert np.min(np.abs(preacts[1])) > 1e-4  # no kink within the step
    delta = fastnn.output_sensitivity(
        y, target, preacts[-1], activations[-1], "mse", "sum", backend="reference"
    )
    grads = fastnn.mlp_backward(
        inputs, preacts, params[0::2], delta, list(activations), backend="reference"
    )
    numeric = numerical_vjp(objective, params)
    for m, (gw, gb) in enumerate(grads):
        assert_grad_close(gw, numeric[2 * m], f"dW layer {m}")
        assert_grad_close(gb, numeric[2 * m + 1], f"db layer {m}")


def test_sensitivity_and_dense_grads_match_finite_differences(activation, rng):
    """One layer u' = f(u) @ W.T + b seen from above through delta' = dJ/du': BP2 is the
    gradient of sum(delta' * u') with respect to u, BP3/BP4 with respect to b and W."""
    u = rng.standard_normal((3, 4))
    u[np.abs(u) < 1e-3] = 0.5  # off relu's kink
    w, b = rng.standard_normal((2, 4)), rng.standard_normal(2)
    delta_next = rng.standard_normal((3, 2))

    def layer(u_, w_, b_):
        y = u_ if activation is None else getattr(fastnn, activation)(u_, backend="reference")
        return fastnn.linear(y, w_, b_, backend="reference")

    numeric_u, numeric_w, numeric_b = numerical_vjp(layer, [u, w, b], delta_next)
    delta = fastnn.sensitivity(delta_next, w, u, activation, backend="reference")
    assert_grad_close(delta, numeric_u, f"BP2 {activation}")
    y = u if activation is None else NUMPY_ACTIVATION[activation](u)
    gw, gb = fastnn.dense_grads(delta_next, y, backend="reference")
    assert_grad_close(gw, numeric_w, "BP4")
    assert_grad_close(gb, numeric_b, "BP3")


def test_empty_batch(rng):
    """No rows: sensitivities are (0, n), parameter gradients are zeros."""
    w = rng.standard_normal((3, 4))
    delta = fastnn.sensitivity(np.zeros((0, 3)), w, np.zeros((0, 4)), "tanh", backend="reference")
    assert delta.shape == (0, 4)
    gw, gb = fastnn.dense_grads(np.zeros((0, 3)), np.zeros((0, 4)), backend="reference")
    np.testing.assert_array_equal(gw, np.zeros((3, 4)))
    np.testing.assert_array_equal(gb, np.zeros(3))
    grads = fastnn.mlp_backward(
        [np.zeros((0, 4))], [np.zeros((0, 3))], [w], np.zeros((0, 3)), ["relu"], backend="reference"
    )
    np.testing.assert_array_equal(grads[0][0], np.zeros((3, 4)))


def test_layouts_give_identical_results(dtype, rng):
    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    u, y, t = arr(4, 3), rng.uniform(0.1, 0.9, (4, 3)).astype(dtype), arr(4, 3)
    for loss, act in [("mse", "tanh"), ("binary_cross_entropy", None)]:
        assert_layout_independent(
            lambda y_, t_, u_, l=loss, a=act: fastnn.output_sensitivity(
                y_, t_, u_, a, l, "mean", backend="reference"
            ),
            y,
            t,
            u,
            what=f"output_sensitivity {loss}",
        )
    labels = rng.integers(0, 3, 4)
    assert_layout_independent(
        lambda y_, t_, u_: fastnn.output_sensitivity(
            y_, t_, u_, None, "cross_entropy", "sum", backend="reference"
        ),
        u,
        labels,
        u,
        what="output_sensitivity cross_entropy",
    )
    d, w, x = arr(4, 5), arr(5, 3), arr(4, 2)
    assert_layout_independent(
        lambda d_, w_, u_: fastnn.sensitivity(d_, w_, u_, "sigmoid", backend="reference"),
        d,
        w,
        u,
        what="sensitivity",
    )
    assert_layout_independent(
        lambda d_, x_: fastnn.dense_grads(d_, x_, backend="reference"), d, x, what="dense_grads"
    )
    w0, u0 = arr(3, 2), arr(4, 3)
    assert_layout_independent(
        lambda x0, u0_, w0_, x1, u1, w1, d_: fastnn.mlp_backward(
            [x0, x1], [u0_, u1], [w0_, w1], d_, ["relu", "tanh"], backend="reference"
        ),
        x,
        u0,
        w0,
        u,
        d,
        w,
        d,
        what="mlp_backward",
    )
