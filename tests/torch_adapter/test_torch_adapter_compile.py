"""The custom ops ``torch.ops.fastnn.*``: torch.library.opcheck on every forward and
backward op, and fastnn.torch functions and patched layers under torch.compile (the
"aot_eager" backend: graphs traced and differentiated by the compiler, no code generated,
so it stays quick)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.utils import assert_close, import_torch

torch = pytest.importorskip("torch")
import_torch()

import fastnn.torch as ft  # noqa: E402

ops = torch.ops.fastnn

#: opcheck's cheap tests; the aot_dispatch one (compiles with dynamic shapes, seconds per
#: op) runs on the ops whose autograd formulas are the most involved.
CHEAP = ("test_schema", "test_autograd_registration", "test_faketensor")
FULL = (*CHEAP, "test_aot_dispatch_dynamic")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _t(*shape, grad=False, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(shape, dtype=torch.float64, generator=g).requires_grad_(grad)


def _forward_cases():
    x1, w1 = _t(2, 4, 9, grad=True), _t(6, 2, 3, grad=True)
    x2, w2 = _t(2, 3, 7, 6, grad=True), _t(4, 3, 3, 2, grad=True)
    b, target = _t(4, grad=True), torch.tensor([0, 2, 1, 2, 0])
    return [
        ("conv1d", ops.conv1d, (x1, w1, None, [2], [1], "", [2], 2, "auto"), CHEAP),
        ("conv2d", ops.conv2d, (x2, w2, b, [1, 1], [0, 0], "same", [1, 2], 1, "auto"), FULL),
        ("conv2d-s2", ops.conv2d, (x2, w2, b, [2, 1], [1, 0], "", [1, 1], 1, "im2col"), CHEAP),
        ("max_pool1d", ops.max_pool1d, (x1, [3], [2], [1], [1], True), CHEAP),
        ("max_pool2d", ops.max_pool2d, (x2, [3, 2], [], [1, 1], [1, 1], True), FULL),
        ("avg_pool1d", ops.avg_pool1d, (x1, [2], [2], [1], False, False), CHEAP),
        ("avg_pool2d", ops.avg_pool2d, (x2, [3, 3], [2, 2], [1, 1], True, True), CHEAP),
        ("linear", ops.linear, (_t(5, 7, grad=True), _t(3, 7, grad=True), b[:3], "tanh"), FULL),
        ("linear-none", ops.linear, (_t(2, 5, 7, grad=True), _t(3, 7), None, ""), CHEAP),
        ("relu", ops.relu, (x2,), CHEAP),
        ("sigmoid", ops.sigmoid, (x2,), CHEAP),
        ("tanh", ops.tanh, (x2,), CHEAP),
        ("softmax", ops.softmax, (x2, 1), CHEAP),
        ("log_softmax", ops.log_softmax, (x2, -1), CHEAP),
        ("cross_entropy", ops.cross_entropy, (_t(5, 3, grad=True), target, "mean"), CHEAP),
        ("cross_entropy-none", ops.cross_entropy, (_t(5, 3, grad=True), target, "none"), CHEAP),
        ("mse_loss", ops.mse_loss, (_t(4, 3, grad=True), _t(4, 3, grad=True), "sum"), CHEAP),
    ]


def _backward_cases():
    x1, w1, x2, w2 = _t(2, 4, 9), _t(6, 2, 3), _t(2, 3, 7, 6), _t(4, 3, 3, 2)
    y2 = _t(2, 3, 4, 6)
    indices = ft.max_pool2d(x2, 2, 2, 1, return_indices=True)[1]
    target = torch.tensor([0, 2, 1, 2, 0])
    p = ([2], [1], "", [2], 2, "auto")
    return [
        ("conv1d_backward", ops.conv1d_backward, (_t(2, 6, 4), x1, w1, *p, [True, False, True])),
        (
            "conv2d_backward",
            ops.conv2d_backward,
            (_t(2, 4, 7, 6), x2, w2, [1, 1], [0, 0], "same", [1, 1], 1, "auto", [True] * 3),
        ),
        (
            "max_pool1d_backward",
            ops.max_pool1d_backward,
            (
                _t(2, 4, 5),
                x1,
                ft.max_pool1d(x1, 2, 2, 1, return_indices=True)[1],
                [2],
                [2],
                [1],
                [1],
                False,
            ),
        ),  # fmt: skip
        (
            "max_pool2d_backward",
            ops.max_pool2d_backward,
            (_t(2, 3, 4, 4), x2, indices, [2, 2], [2, 2], [1, 1], [1, 1], False),
        ),
        (
            "avg_pool1d_backward",
            ops.avg_pool1d_backward,
            (_t(2, 4, 4), x1, [2], [], [0], False, True),
        ),
        (
            "avg_pool2d_backward",
            ops.avg_pool2d_backward,
            (_t(2, 3, 4, 3), x2, [2, 2], [], [1, 0], True, False),
        ),
        (
            "linear_backward",
            ops.linear_backward,
            (_t(5, 3), _t(5, 7), _t(3, 7), _t(5, 3).sigmoid(), "sigmoid", [False, True, True]),
        ),
        ("activation_backward", ops.activation_backward, ("tanh", y2, y2.tanh())),
        ("softmax_backward", ops.softmax_backward, (y2, y2.softmax(1), 1)),
        ("log_softmax_backward", ops.log_softmax_backward, (y2, y2.log_softmax(-1), -1)),
        (
            "cross_entropy_backward",
            ops.cross_entropy_backward,
            (_t(5), _t(5, 3), target, "none"),
        ),
        ("mse_loss_backward", ops.mse_loss_backward, (_t(), _t(4, 3), _t(4, 3), "mean")),
    ]


# The cases are built inside the tests (not at collection), so these lists name them.
FORWARD_NAMES = [
    "conv1d", "conv2d", "conv2d-s2", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "linear", "linear-none", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
    "cross_entropy", "cross_entropy-none", "mse_loss",
]  # fmt: skip
BACKWARD_NAMES = [
    "conv1d_backward", "conv2d_backward", "max_pool1d_backward", "max_pool2d_backward",
    "avg_pool1d_backward", "avg_pool2d_backward", "linear_backward", "activation_backward",
    "softmax_backward", "log_softmax_backward", "cross_entropy_backward", "mse_loss_backward",
]  # fmt: skip


#: The custom ops of the later families, each opcheck-ed in its family's test file.
CHECKED_ELSEWHERE = {
    "test_torch_batchnorm.py": ("batch_norm", "batch_norm_backward"),
    "test_torch_activation_extra.py": (
        "pointwise", "pointwise_", "pointwise_backward", "silu", "silu_backward", "gelu",
        "gelu_backward",
    ),
    "test_torch_adaptive_dropout_add.py": (
        "adaptive_avg_pool1d", "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d",
        "adaptive_avg_pool2d_backward", "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
        "dropout", "dropout_backward", "add", "add_backward",
    ),
}  # fmt: skip


def test_every_custom_op_is_checked():
    """Every op registered in the fastnn namespace has an opcheck case: here, or in the
    test file of its family (which must run opcheck and name the op)."""
    checked = {name.split("-")[0] for name in FORWARD_NAMES + BACKWARD_NAMES}
    here = Path(__file__).parent
    for filename, names in CHECKED_ELSEWHERE.items():
        text = (here / filename).read_text()
        assert "torch.library.opcheck(" in text, filename
        for name in names:
            assert re.search(rf"\bops(\.fastnn)?\.{name}\b|[\"']{name}[\"']", text), name
        checked.update(names)
    registered = {
        name
        for name in dir(ops)
        if isinstance(getattr(ops, name, None), torch._ops.OpOverloadPacket)
    }
    assert checked == registered


@pytest.mark.parametrize("name", FORWARD_NAMES)
def test_opcheck_forward(name):
    _, op, args, utils = next(case for case in _forward_cases() if case[0] == name)
    torch.library.opcheck(op, args, test_utils=utils)


@pytest.mark.parametrize("name", BACKWARD_NAMES)
def test_opcheck_backward(name):
    _, op, args = next(case for case in _backward_cases() if case[0] == name)
    torch.library.opcheck(op, args, test_utils=CHEAP)


def _recording_backend(graphs):
    """A torch.compile backend that keeps each graph Dynamo captured, then runs it
    through aot_eager (AOT autograd's forward and backward graphs, run eagerly)."""
    aot_eager = torch._dynamo.lookup_backend("aot_eager")

    def backend(gm, example_inputs):
        graphs.append(gm)
        return aot_eager(gm, example_inputs)

    return backend


def _loss(image, signal, target, w1, b1, w2, w3, w4):
    """A small network touching every fastnn.torch function."""
    h = ft.max_pool2d(ft.relu(ft.conv2d(image, w1, b1, padding=1)), 2)
    h = ft.avg_pool2d(ft.conv2d(h, w2, stride=1, padding="same"), 2, ceil_mode=True)
    s = ft.avg_pool1d(ft.sigmoid(ft.conv1d(signal, w3, padding=2, dilation=2)), 2)
    s = ft.max_pool1d(ft.tanh(s), 3, 2, 1)
    features = torch.cat([h.flatten(1), s.flatten(1)], dim=1)
    logits = ft.linear(features, w4, activation="tanh")
    probabilities = ft.softmax(logits, 1)
    return (
        ft.cross_entropy(logits, target)
        + ft.mse_loss(probabilities, torch.full_like(probabilities, 0.25))
        - ft.log_softmax(logits, -1).mean()
    )


def test_compiled_functions_match_eager(rng):
    shapes = [(3, 2, 8, 8), (3, 1, 12), None, (4, 2, 3, 3), (4,), (3, 4, 3, 3), (2, 1, 3)]
    tensors = [
        None if s is None else torch.tensor(rng.standard_normal(s), requires_grad=True)
        for s in shapes
    ]
    tensors[2] = torch.tensor([0, 3, 1])
    flat = 3 * 2 * 2 + 2 * 3
    tensors.append(torch.tensor(rng.standard_normal((4, flat)), requires_grad=True))
    params = [t for t in tensors if t.requires_grad]

    want = _loss(*tensors)
    want_grads = torch.autograd.grad(want, params)
    graphs = []
    compiled = torch.compile(_loss, backend=_recording_backend(graphs), fullgraph=True)
    got = compiled(*tensors)
    got_grads = torch.autograd.grad(got, params)

    assert_close(got.detach().numpy(), want.detach().numpy(), np.float64, what="loss")
    for i, (g, w) in enumerate(zip(got_grads, want_grads)):
        assert_close(g.numpy(), w.numpy(), np.float64, what=f"gradient {i}")
    targets = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    for name in ("conv2d", "conv1d", "max_pool2d", "avg_pool1d", "linear", "cross_entropy"):
        assert f"fastnn.{name}.default" in targets, name


def test_compiled_patched_model_matches_eager(rng):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2)
    ).double()
    ft.patch(model)
    x = torch.tensor(rng.standard_normal((2, 1, 4, 4)))
    want = model(x).square().sum()
    want_grads = torch.autograd.grad(want, list(model.parameters()))
    graphs = []
    compiled = torch.compile(model, backend=_recording_backend(graphs), fullgraph=True)
    got = compiled(x).square().sum()
    got_grads = torch.autograd.grad(got, list(model.parameters()))
    assert_close(got.detach().numpy(), want.detach().numpy(), np.float64)
    for g, w in zip(got_grads, want_grads):
        assert_close(g.numpy(), w.numpy(), np.float64)
    targets = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    assert {"fastnn.conv2d.default", "fastnn.linear.default"} <= targets
