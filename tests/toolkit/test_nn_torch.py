"""Whole models against PyTorch: the same weights and batch give the same outputs, loss,
parameter gradients and batch-norm running statistics.

The fastnn and torch models have the same structure, so their state dicts have the same
names: torch's weights are loaded into fastnn with ``load_state_dict``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnn.nn as nn
from tests.utils import HAS_TORCH, import_torch

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")

TOL = {np.float32: 2e-4, np.float64: 1e-10}


def _torch_residual():
    torch = import_torch()

    class Residual(torch.nn.Module):
        def __init__(self, body, shortcut=None):
            super().__init__()
            self.body = body
            self.shortcut = shortcut

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    return Residual


def _lenet(lib, residual):
    """A LeNet-5 with batch norm and a residual block, in fastnn or torch.nn."""
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2),
        lib.BatchNorm2d(6),
        lib.ReLU(),
        lib.MaxPool2d(2),
        residual(lib.Sequential(lib.Conv2d(6, 6, 3, padding=1), lib.Tanh())),
        lib.Conv2d(6, 16, 5),
        lib.ReLU(),
        lib.AvgPool2d(2),
        lib.Flatten(),
        lib.Linear(16, 12),
        lib.Sigmoid(),
        lib.Dropout(0.0),
        lib.Linear(12, 5),
    )


def _spectra_net(lib, residual):
    """A 1-D CNN for spectra, in fastnn or torch.nn."""
    return lib.Sequential(
        lib.Conv1d(1, 4, 7, padding=3),
        lib.BatchNorm1d(4),
        lib.ReLU(),
        lib.MaxPool1d(2),
        residual(
            lib.Sequential(lib.Conv1d(4, 8, 3, padding=1, stride=2), lib.BatchNorm1d(8)),
            lib.Conv1d(4, 8, 1, stride=2),
        ),
        lib.AvgPool1d(2),
        lib.Flatten(),
        lib.Linear(32, 6),
        lib.BatchNorm1d(6),
        lib.Tanh(),
        lib.Linear(6, 1),
    )


def _pair(builder, dtype, rng):
    torch = import_torch()
    torch.manual_seed(int(rng.integers(1 << 31)))
    reference = builder(torch.nn, _torch_residual()).to(
        torch.float64 if dtype == np.float64 else torch.float32
    )
    model = builder(nn, nn.Residual).to(dtype=dtype)
    model.load_state_dict(reference.state_dict())
    return model, reference


def _compare_grads(model, reference, tol, what):
    grads = dict(reference.named_parameters())
    names = [name for name, _ in model.named_parameters()]
    assert names == list(grads), f"{what}: parameter names differ"
    for name, param in model.named_parameters():
        want = grads[name].grad.detach().numpy()
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(param.grad, want, rtol=tol, atol=tol * scale, err_msg=name)


@pytest.mark.parametrize("training", [True, False])
def test_lenet_gradients_match_torch(rng, dtype, training):
    torch = import_torch()
    model, reference = _pair(_lenet, dtype, rng)
    model.train(training)
    reference.train(training)
    x = rng.standard_normal((4, 1, 14, 14)).astype(dtype)
    target = rng.integers(0, 5, 4)
    tol = TOL[dtype]
    for step in range(2):  # twice: the running statistics change in between
        criterion = nn.CrossEntropyLoss()
        loss = criterion(model(x), target)
        model.zero_grad()
        grad_input = model.backward(criterion.backward())
        tx = torch.tensor(x, requires_grad=True)
        want = torch.nn.functional.cross_entropy(reference(tx), torch.tensor(target))
        reference.zero_grad()
        want.backward()
        np.testing.assert_allclose(loss, want.item(), rtol=tol, err_msg=f"loss, step {step}")
        np.testing.assert_allclose(grad_input, tx.grad.numpy(), rtol=tol, atol=tol)
        _compare_grads(model, reference, tol, f"step {step}")
    for name, value in reference.state_dict().items():
        np.testing.assert_allclose(
            model.state_dict()[name], value.numpy(), rtol=tol, atol=tol, err_msg=name
        )


def test_spectra_net_matches_torch(rng, dtype):
    torch = import_torch()
    model, reference = _pair(_spectra_net, dtype, rng)
    x = rng.standard_normal((5, 1, 32)).astype(dtype)
    target = rng.standard_normal((5, 1)).astype(dtype)
    criterion = nn.MSELoss()
    out = model(x)
    loss = criterion(out, target)
    model.backward(criterion.backward(), need_input_grad=False)
    want_out = reference(torch.tensor(x))
    want = torch.nn.functional.mse_loss(want_out, torch.tensor(target))
    want.backward()
    tol = TOL[dtype]
    np.testing.assert_allclose(out, want_out.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(loss, want.item(), rtol=tol)
    _compare_grads(model, reference, tol, "spectra net")
    model.eval()
    reference.eval()
    np.testing.assert_allclose(
        model(x), reference(torch.tensor(x)).detach().numpy(), rtol=tol, atol=tol
    )


def test_bce_logistic_model_matches_torch(rng):
    torch = import_torch()
    model = nn.Sequential(nn.Linear(3, 1, dtype=np.float64, rng=rng), nn.Sigmoid())
    reference = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Sigmoid()).double()
    reference.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    x = rng.standard_normal((8, 3))
    t = rng.integers(0, 2, (8, 1)).astype(np.float64)
    criterion = nn.BCELoss(reduction="sum")
    loss = criterion(model(x), t)
    model.backward(criterion.backward())
    want = torch.nn.functional.binary_cross_entropy(
        reference(torch.tensor(x)), torch.tensor(t), reduction="sum"
    )
    want.backward()
    np.testing.assert_allclose(loss, want.item(), rtol=1e-12)
    _compare_grads(model, reference, 1e-10, "logistic regression")


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_running_statistics_match_torch(rng, momentum):
    torch = import_torch()
    layer = nn.BatchNorm2d(3, momentum=momentum, dtype=np.float64)
    reference = torch.nn.BatchNorm2d(3, momentum=momentum).double()
    for _ in range(3):
        x = rng.standard_normal((4, 3, 2, 5)) * 3 + 1
        np.testing.assert_allclose(
            layer(x), reference(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-10
        )
    for name, value in reference.state_dict().items():
        np.testing.assert_allclose(layer.state_dict()[name], value.numpy(), rtol=1e-12)


def test_losses_backward_match_torch(rng, reduction):
    torch = import_torch()
    functional = torch.nn.functional
    x = rng.standard_normal((6, 4))
    p = rng.uniform(0.05, 0.95, (6, 4))
    t = rng.uniform(0, 1, (6, 4))
    labels = rng.integers(0, 4, 6)
    cases = [
        (nn.MSELoss(reduction), x, t, functional.mse_loss, torch.tensor(t)),
        (nn.BCELoss(reduction), p, t, functional.binary_cross_entropy, torch.tensor(t)),
        (nn.CrossEntropyLoss(reduction), x, labels, functional.cross_entropy, torch.tensor(labels)),
    ]
    for criterion, value, target, torch_loss, torch_target in cases:
        loss = criterion(value, target)
        upstream = rng.standard_normal(np.shape(loss)) if reduction == "none" else 0.7
        got = criterion.backward(upstream)
        tv = torch.tensor(value, requires_grad=True)
        want = torch_loss(tv, torch_target, reduction=reduction)
        want.backward(torch.tensor(upstream, dtype=torch.float64))
        np.testing.assert_allclose(loss, want.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got, tv.grad.numpy(), rtol=1e-10, atol=1e-12)
