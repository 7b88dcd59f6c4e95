"""fastnn.torch drop-in layers and patch(): same results and state_dicts as torch.nn,
fallback to torch for what fastnn cannot run, the patch report, and a small CNN that
trains the same with and without the patch."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.utils import assert_close, import_torch

torch = pytest.importorskip("torch")
import_torch()

#: torch warns that its own "same" padding with an even kernel copies the input.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning"),
    pytest.mark.usefixtures("one_thread"),
]

from torch import nn  # noqa: E402

import fastnn.torch as ft  # noqa: E402
from fastnn.torch import _modules  # noqa: E402

DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


#: (torch layer class, constructor arguments, input shape)
LAYERS = [
    (nn.Conv1d, dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1,
                     dilation=2, groups=2), (2, 4, 11)),
    (nn.Conv2d, dict(in_channels=3, out_channels=4, kernel_size=(3, 2), padding="same",
                     bias=False), (2, 3, 6, 5)),
    (nn.Conv2d, dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, padding=1),
     (3, 2, 7, 7)),
    (nn.Linear, dict(in_features=5, out_features=3), (2, 4, 5)),
    (nn.MaxPool1d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 10)),
    (nn.MaxPool2d, dict(kernel_size=2, dilation=(1, 2)), (2, 3, 6, 7)),
    (nn.AvgPool1d, dict(kernel_size=3, stride=2, padding=1, count_include_pad=False), (2, 3, 9)),
    (nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 8, 7)),
    (nn.ReLU, {}, (3, 4)),
    (nn.Sigmoid, {}, (3, 4)),
    (nn.Tanh, {}, (3, 4)),
    (nn.Softmax, dict(dim=1), (3, 4, 2)),
    (nn.LogSoftmax, dict(dim=-1), (3, 4)),
]  # fmt: skip


def _layer_id(entry) -> str:
    cls, kwargs, _ = entry
    return f"{cls.__name__}-{len(kwargs)}"


def _drop_in(cls):
    return getattr(ft, cls.__name__)


@pytest.mark.parametrize("entry", LAYERS, ids=_layer_id)
def test_drop_in_matches_torch_layer(entry, dtype, rng):
    cls, kwargs, shape = entry
    torch.manual_seed(0)
    theirs = cls(**kwargs).to(DTYPES[dtype])
    ours = _drop_in(cls)(**kwargs).to(DTYPES[dtype])
    assert isinstance(ours, cls)
    ours.load_state_dict(theirs.state_dict())
    x = torch.tensor(rng.standard_normal(shape), dtype=DTYPES[dtype], requires_grad=True)
    y_want, y_got = theirs(x), ours(x)
    assert_close(y_got.detach().numpy(), y_want.detach().numpy(), dtype, what="output")
    grad_output = torch.tensor(rng.standard_normal(tuple(y_want.shape)), dtype=DTYPES[dtype])
    want = torch.autograd.grad(y_want, [x, *theirs.parameters()], grad_output)
    got = torch.autograd.grad(y_got, [x, *ours.parameters()], grad_output)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g.numpy(), w.numpy(), dtype, what=f"gradient {i}")


@pytest.mark.parametrize(
    "entry", [e for e in LAYERS if e[0] in (nn.Conv1d, nn.Conv2d, nn.Linear)], ids=_layer_id
)
def test_state_dict_round_trip(entry):
    """A torch layer's state_dict loads into the drop-in (strict) and back."""
    cls, kwargs, _ = entry
    theirs, ours = cls(**kwargs), _drop_in(cls)(**kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    back = cls(**kwargs)
    back.load_state_dict(ours.state_dict(), strict=True)
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value)
        assert torch.equal(back.state_dict()[key], value)


def _forbid_fastnn(monkeypatch):
    """Make every fastnn.torch function the modules call raise: a forward that reaches
    one did not fall back."""

    def refuse(*args, **kwargs):
        raise AssertionError("fastnn was called; the layer should have fallen back to torch")

    for name in ("conv1d", "conv2d", "linear", "avg_pool2d", "relu", "softmax", "max_pool2d"):
        monkeypatch.setattr(_modules, name, refuse)


def test_fallback_to_torch(monkeypatch, rng):
    x = torch.tensor(rng.standard_normal((2, 3, 6, 6)), dtype=torch.float32)
    cases = [
        (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), x),
        (nn.AvgPool2d(2, divisor_override=3), x),
        (nn.ReLU(inplace=True), x.clone()),
        (nn.Softmax(dim=1), x.to(torch.bfloat16)),
        (nn.Linear(6, 2), x.to(torch.bfloat16)),
        (nn.MaxPool2d(2), x.to(torch.bfloat16)),
        (nn.Conv2d(3, 4, 3).double(), x),  # parameters of another dtype than the input
    ]
    expected = []
    for layer, inp in cases:
        try:
            expected.append(layer(inp.clone()))
        except RuntimeError as error:  # torch's own error for mixed dtypes
            expected.append(type(error))
    _forbid_fastnn(monkeypatch)
    for (layer, inp), want in zip(cases, expected):
        ours = copy.deepcopy(layer)
        ours.__class__ = _drop_in(type(layer))
        if isinstance(want, type):
            with pytest.raises(want):
                ours(inp.clone())
        else:
            torch.testing.assert_close(ours(inp.clone()), want)


def test_algo_attribute(rng):
    layer = ft.Conv2d(2, 3, 3, padding=1).double()
    x = torch.tensor(rng.standard_normal((1, 2, 5, 5)))
    want = layer(x)
    layer.algo = "direct"
    torch.testing.assert_close(layer(x), want)
    assert ft.Conv2d.algo == "auto"


# ---------------------------------------------------------------------------------------
# patch()
# ---------------------------------------------------------------------------------------


class MyLinear(nn.Linear):
    """A user's subclass: its forward may differ, so patch leaves it alone."""


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular")
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.conv(x)) + x


def _model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        Block(),
        nn.MaxPool2d(2),
        nn.AvgPool2d(2, divisor_override=2),
        nn.Flatten(),
        MyLinear(16, 3),
        nn.Hardswish(),
        nn.Linear(3, 2),
        nn.LogSoftmax(dim=1),
    )


def test_patch_swaps_in_place_and_reports(rng):
    model = _model()
    calls = []
    model[0].register_forward_hook(lambda *args: calls.append("hook"))
    params_before = [id(p) for p in model.parameters()]
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.tensor(rng.standard_normal((2, 1, 8, 8)), dtype=torch.float32)
    model.eval()
    want = model(x)

    report = ft.patch(model)

    swapped = {e.name: e.layer for e in report.swapped}
    assert swapped == {
        "0": "Conv2d",
        "1": "BatchNorm2d",
        "2": "ReLU",
        "3.act": "ReLU",
        "4": "MaxPool2d",
        "6": "Flatten",
        "9": "Linear",
        "10": "LogSoftmax",
    }
    reasons = {e.name: e.detail for e in report.left_alone}
    assert set(reasons) == {"3.conv", "5", "7", "8"}
    assert "padding_mode='circular'" in reasons["3.conv"]
    assert "divisor_override=2" in reasons["5"]
    assert "subclass of torch.nn.Linear" in reasons["7"]
    assert "no drop-in for torch.nn.Hardswish" in reasons["8"]

    assert type(model[0]) is ft.Conv2d and type(model[2]) is ft.ReLU
    assert type(model[3].conv) is nn.Conv2d and type(model[7]) is MyLinear
    assert [id(p) for p in model.parameters()] == params_before
    assert all(torch.equal(v, state_before[k]) for k, v in model.state_dict().items())
    calls.clear()
    torch.testing.assert_close(model(x), want)
    assert calls == ["hook"]

    text = str(report)
    assert text.splitlines()[0] == (
        "fastnn.torch.patch: 8 layer(s) swapped to fastnn, 4 left alone (67% of leaf layers)"
    )
    assert "3.conv" in text and "-> fastnn.torch.Conv2d" in text
    assert "8 layer(s) swapped" in repr(report)

    again = ft.patch(model)
    assert not again.swapped and "already a fastnn.torch layer" in again.left_alone[0].detail
    assert ft.unpatch(model) == 8
    assert type(model[0]) is nn.Conv2d and type(model[10]) is nn.LogSoftmax


def test_patch_a_single_layer():
    layer = nn.Conv2d(1, 2, 3)
    report = ft.patch(layer)
    assert type(layer) is ft.Conv2d
    assert [(e.name, e.swapped) for e in report.entries] == [("", True)]
    assert "(model)" in str(report)


# ---------------------------------------------------------------------------------------
# Training with and without the patch
# ---------------------------------------------------------------------------------------


def _cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 5),
    )  # fmt: skip


def _train(model, x, y, steps):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_patched_cnn_trains_like_the_original(dtype, rng):
    torch.manual_seed(0)
    original = _cnn().to(DTYPES[dtype])
    patched = copy.deepcopy(original)
    report = ft.patch(patched)
    assert len(report.swapped) == 8 and not report.left_alone
    x = torch.tensor(rng.standard_normal((8, 1, 12, 12)), dtype=DTYPES[dtype])
    y = torch.tensor(rng.integers(0, 5, 8))
    want = _train(original, x, y, steps=6)
    got = _train(patched, x, y, steps=6)
    assert want[-1] < want[0]  # it learns
    assert_close(np.array(got), np.array(want), dtype, rtol=1e-4 if dtype == np.float32 else 1e-9)
    for p, q in zip(patched.parameters(), original.parameters()):
        assert_close(
            p.detach().numpy(),
            q.detach().numpy(),
            dtype,
            rtol=1e-4 if dtype == np.float32 else 1e-9,
        )
