"""Module plumbing: parameters, modes, dtype and device moves, state dicts and .npz files."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
import fastnn.optim as optim
from tests.utils import HAS_TORCH, import_torch


def _model(rng, dtype=np.float32):
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, dtype=dtype, rng=rng),
        nn.BatchNorm2d(3, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, dtype=dtype, rng=rng))),
        nn.Flatten(),
        nn.Dropout(0.3, rng=rng),
        nn.Linear(12, 4, dtype=dtype, rng=rng),
    )


def test_names_and_counts(rng):
    model = _model(rng)
    names = [name for name, _ in model.named_parameters()]
    assert names == [
        "0.weight", "0.bias", "1.weight", "1.bias", "4.body.0.weight", "4.body.0.bias",
        "7.weight", "7.bias",
    ]  # fmt: skip
    assert model.num_parameters() == 27 + 3 + 3 + 3 + 81 + 3 + 48 + 4
    buffers = dict(model.named_buffers())
    assert set(buffers) == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert len(model) == 8 and isinstance(model[7], nn.Linear)
    assert isinstance(model[1:3], nn.Sequential) and len(model[1:3]) == 2
    assert "Residual" in repr(model) and "(body): Sequential" in repr(model)


def test_shared_parameters_appear_once_and_accumulate(rng):
    first = nn.Linear(3, 3, dtype=np.float64, rng=rng)
    second = nn.Linear(3, 3, dtype=np.float64, rng=rng)
    second.weight, second.bias = first.weight, first.bias
    model = nn.Sequential(first, nn.Tanh(), second)
    assert len(model.parameters()) == 2
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as in PyTorch
    model.load_state_dict(state)
    x = rng.standard_normal((2, 3))
    y = model(x)
    model.backward(np.ones_like(y))
    w, b = first.weight.data, first.bias.data
    h = np.tanh(x @ w.T + b)
    dh = np.ones_like(y) @ w * (1 - h**2)
    np.testing.assert_allclose(first.weight.grad, np.ones_like(y).T @ h + dh.T @ x)
    with pytest.raises(ValueError, match="twice"):
        nn.Sequential(first, nn.Tanh(), first)


def test_train_eval_modes(rng):
    model = _model(rng)
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    x = rng.standard_normal((4, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), model(x))  # eval: deterministic
    model.train()
    assert model[1].num_batches_tracked == 0
    model(x)
    assert model[1].num_batches_tracked == 1


def test_state_dict_round_trip_and_npz(rng, tmp_path):
    model = _model(rng).eval()
    x = rng.standard_normal((3, 1, 4, 4)).astype(np.float32)
    model.train()
    model(x)  # move the running statistics away from their start
    model.eval()
    want = model(x)
    path = tmp_path / "model.npz"
    model.save(path)
    other = _model(np.random.default_rng(99)).eval()
    assert not np.allclose(other(x), want)
    state = model.state_dict()
    other.load(path)
    np.testing.assert_array_equal(other(x), want)
    assert other[1].num_batches_tracked == 1
    third = _model(np.random.default_rng(5)).eval()
    third.load_state_dict(state)
    np.testing.assert_array_equal(third(x), want)
    state["0.weight"][...] = 0  # the state dict holds copies
    np.testing.assert_array_equal(model(x), want)


def test_load_state_dict_keeps_arrays_and_optimizers_valid(rng):
    model = _model(rng)
    opt = optim.SGD(model.parameters(), lr=0.1)
    arrays = [p.data for p in model.parameters()]
    model.load_state_dict(_model(np.random.default_rng(3)).state_dict())
    assert all(p.data is a for p, a in zip(model.parameters(), arrays))
    assert opt.param_groups[0]["params"][0] is model.parameters()[0]


def test_load_state_dict_errors(rng):
    model = _model(rng)
    state = model.state_dict()
    missing = dict(state)
    del missing["7.bias"]
    with pytest.raises(ValueError, match="missing keys \\['7.bias'\\]"):
        model.load_state_dict(missing)
    model.load_state_dict(missing, strict=False)
    with pytest.raises(ValueError, match="unexpected keys \\['extra'\\]"):
        model.load_state_dict({**state, "extra": np.zeros(1)})
    wrong = dict(state)
    wrong["7.weight"] = np.zeros((4, 13))
    with pytest.raises(ValueError, match="7.weight"):
        model.load_state_dict(wrong)
    with pytest.raises(TypeError):
        model.load_state_dict([("7.weight", np.zeros((4, 12)))])


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
def test_loads_torch_state_dicts(rng):
    torch = import_torch()
    reference = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model.load_state_dict(reference.state_dict())
    np.testing.assert_array_equal(model[0].weight.data, reference[0].weight.detach().numpy())


def test_to_dtype_converts_parameters_and_buffers(rng):
    model = _model(rng)
    model.to(dtype=np.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].running_mean.dtype == np.float64
    assert model(rng.standard_normal((2, 1, 4, 4))).dtype == np.float64
    assert model.to("cpu") is model and model.device == "cpu"
    with pytest.raises(TypeError, match="float32 or float64"):
        model.to(dtype=np.int32)
    with pytest.raises(ValueError, match="device"):
        model.to("tpu")


@pytest.mark.skipif(fastnn.backends()["cupy"][0], reason="a GPU with CuPy is available here")
def test_to_cuda_without_gpu_says_why(rng):
    model = _model(rng)
    reason = fastnn.backends()["cupy"][1]
    with pytest.raises(RuntimeError, match="cannot use device 'cuda'") as info:
        model.to("cuda")
    assert reason in str(info.value)
    assert model.device == "cpu"


def test_frozen_parameters_get_no_gradient(rng):
    model = _model(rng)
    model[0].weight.requires_grad = False
    y = model(rng.standard_normal((2, 1, 4, 4)).astype(np.float32))
    model.backward(np.ones_like(y))
    assert model[0].weight.grad is None
    assert model[0].bias.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_parameter_checks():
    with pytest.raises(TypeError):
        nn.Parameter([1.0, 2.0])
    with pytest.raises(TypeError):
        nn.Parameter(np.zeros(3, dtype=np.int64))
    p = nn.Parameter(np.zeros((2, 3), dtype=np.float32))
    assert p.shape == (2, 3) and p.size == 6 and "float32" in repr(p)


def test_dropout_statistics_and_reproducibility(rng):
    x = np.ones((200, 500), dtype=np.float32)
    layer = nn.Dropout(0.25, rng=np.random.default_rng(3))
    y = layer(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(layer.backward(x), y)
    again = nn.Dropout(0.25, rng=np.random.default_rng(3))(x)
    np.testing.assert_array_equal(again, y)
    assert np.array_equal(nn.Dropout(1.0)(x), np.zeros_like(x))
    assert nn.Dropout(0.5).eval()(x) is x
