"""fastnn.torch.patch on plain nn.Sequential models: each convolution or linear layer
directly followed by an activation it can fuse runs as one fastnn call (forward and
backward), with torch's float64 outputs and gradients; hooks, edited containers, layers
left to torch, Sequential subclasses and fuse=True keep their meaning."""

from __future__ import annotations

import copy

import pytest

from tests.utils import import_torch

torch = pytest.importorskip("torch")
import_torch()

from torch import nn  # noqa: E402

import fastnn.torch as ft  # noqa: E402
import fastnn.torch._modules as drop_ins  # noqa: E402


def _cnn() -> nn.Sequential:
    """Every fusable pair kind, activations that stay apart, and a trailing activation."""
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3), nn.ReLU6(),
        nn.MaxPool2d(2), nn.Conv2d(4, 3, 1), nn.Sigmoid(),  # conv + sigmoid: not fused
        nn.Flatten(),
        nn.Linear(27, 9), nn.Tanh(),
        nn.Linear(9, 7), nn.Sigmoid(),
        nn.Linear(7, 5), nn.ReLU(inplace=True),
        nn.Linear(5, 3), nn.Tanh(), nn.ReLU(),
    )  # fmt: skip


#: The activations _cnn's fused pairs apply, in order.
FUSED = ["relu", "relu6", "tanh", "sigmoid", "relu", "tanh"]


@pytest.fixture
def fused_calls(monkeypatch):
    """The activation of every fused call (convolution and linear drop-ins)."""
    seen: list[str] = []
    for name in ("conv1d", "conv2d", "linear"):
        real = getattr(drop_ins, name)

        def spy(*args, activation=None, _real=real, **kwargs):
            if activation is not None:
                seen.append(activation)
            return _real(*args, activation=activation, **kwargs)

        monkeypatch.setattr(drop_ins, name, spy)
    return seen


def _outputs_and_grads(model: nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape).to(out.dtype)).sum().backward()
    return out.detach(), x.grad, [p.grad.clone() for p in model.parameters()]


def _assert_same(got, want, tol: float) -> None:
    (y, gx, gp), (y0, gx0, gp0) = got, want
    torch.testing.assert_close(y, y0, rtol=tol, atol=tol)
    torch.testing.assert_close(gx, gx0, rtol=tol, atol=tol)
    for a, b in zip(gp, gp0):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_pairs_fused_with_torchs_outputs_and_gradients(dtype, tol, fused_calls):
    torch.manual_seed(0)
    model = _cnn().to(dtype)
    patched = copy.deepcopy(model)
    report = ft.patch(patched)
    assert [e.layer for e in report.blocks] == ["Sequential"]
    assert report.coverage == 1.0
    x = torch.randn(3, 2, 8, 8, dtype=dtype)
    _assert_same(_outputs_and_grads(patched, x), _outputs_and_grads(model, x), tol)
    assert fused_calls == FUSED


def test_conv1d_and_nested_sequentials(fused_calls):
    torch.manual_seed(1)
    inner = nn.Sequential(nn.Conv1d(3, 5, 3, stride=2), nn.ReLU())
    model = nn.Sequential(inner, nn.Flatten(), nn.Sequential(nn.Linear(25, 4), nn.Tanh()))
    model = model.double()
    patched = copy.deepcopy(model)
    report = ft.patch(patched)
    assert sorted(e.name for e in report.blocks) == ["0", "2"]
    x = torch.randn(2, 3, 11, dtype=torch.float64)
    _assert_same(_outputs_and_grads(patched, x), _outputs_and_grads(model, x), 1e-10)
    assert fused_calls == ["relu", "tanh"]


def test_hooks_keep_a_pair_apart(fused_calls):
    """A hook on either layer of a pair (or a global one) must fire: that pair runs as
    two calls; the other pairs stay fused."""
    torch.manual_seed(2)
    model = _cnn().double()
    ft.patch(model)
    fired = []
    handle = model[1].register_forward_hook(lambda m, i, o: fired.append(o.shape))
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    model(x)
    assert fired == [torch.Size([1, 4, 8, 8])]
    assert fused_calls == FUSED[1:]
    handle.remove()
    fused_calls.clear()
    handle = model[8].register_forward_pre_hook(lambda m, i: fired.append("pre"))
    model(x)
    assert fired[-1] == "pre" and fused_calls == ["relu", "relu6", "sigmoid", "relu", "tanh"]
    handle.remove()
    fused_calls.clear()
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        model(x)
    finally:
        handle.remove()
    assert fused_calls == []


def test_edited_container_and_layers_left_to_torch(fused_calls):
    """Pairs are found at each call: a layer replaced after the patch, a layer fastnn
    left alone (padding_mode) and a folded activation all run as written."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 4), nn.ReLU(),
    ).double()  # fmt: skip
    reference = copy.deepcopy(model)
    report = ft.patch(model)
    assert [e.layer for e in report.left_alone] == ["Conv2d"]
    x = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    _assert_same(_outputs_and_grads(model, x), _outputs_and_grads(reference, x), 1e-10)
    assert fused_calls == ["relu", "relu"]
    model[3] = nn.Identity()
    reference[3] = nn.Identity()
    model.zero_grad(), reference.zero_grad()
    fused_calls.clear()
    _assert_same(_outputs_and_grads(model, x), _outputs_and_grads(reference, x), 1e-10)
    assert fused_calls == ["relu"]


def test_subclasses_are_left_alone_and_unpatch_restores():
    class Custom(nn.Sequential):
        def forward(self, x):
            return super().forward(x) * 2

    model = nn.Sequential(Custom(nn.Linear(3, 3), nn.ReLU()), nn.Linear(3, 2), nn.ReLU())
    report = ft.patch(model)
    assert [e.name for e in report.blocks] == [""]
    assert type(model[0]) is Custom
    ft.unpatch(model)
    assert type(model) is nn.Sequential and type(model[1]) is nn.Linear


def test_fused_inference_of_a_sequential():
    """fuse=True folds batch norm into the convolution and its ReLU into the write-out;
    the Sequential's own pairing then leaves the folded ReLU alone."""
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 3, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(48, 4), nn.ReLU(),
    ).eval()  # fmt: skip
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 2, 6, 6)
    with torch.no_grad():
        want = model(x)
        fused = copy.deepcopy(model)
        ft.patch(fused, fuse=True)
        torch.testing.assert_close(fused(x), want, rtol=1e-4, atol=1e-5)
        ft.unpatch(fused)
        torch.testing.assert_close(fused(x), want, rtol=0, atol=0)
