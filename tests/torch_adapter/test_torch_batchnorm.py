"""fastnn.torch.batch_norm and the drop-in BatchNorm1d / BatchNorm2d against torch:
forward (float64 to rounding, float32 close), running statistics after several training
steps, gradients (gradcheck in float64, training and eval), torch.library.opcheck of the
custom ops, and torch.compile(fullgraph=True) of a tiny model."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.utils import assert_close, import_torch

torch = import_torch()
F = torch.nn.functional

from fastnn.torch._norm import batch_norm  # noqa: E402
from fastnn.torch._norm_modules import BatchNorm1d, BatchNorm2d  # noqa: E402

ops = torch.ops.fastnn
ACTS = {None: lambda t: t, "relu": F.relu, "relu6": F.relu6}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _t(rng, *shape, dtype=torch.float64, grad=False, offset=0.0):
    t = torch.tensor(rng.standard_normal(shape) + offset, dtype=dtype)
    return t.requires_grad_(grad)


@pytest.mark.parametrize("shape", [(4, 3), (5, 2, 7), (2, 3, 4, 5)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_function_matches_torch(rng, shape, training, activation, dtype):
    c = shape[1]
    x = _t(rng, *shape, dtype=dtype, grad=True, offset=2.0)
    w, b = _t(rng, c, dtype=dtype, grad=True), _t(rng, c, dtype=dtype, grad=True)
    rm, rv = _t(rng, c, dtype=dtype), torch.rand(c, dtype=dtype) + 0.5
    rm2, rv2 = rm.clone(), rv.clone()
    g = _t(rng, *shape, dtype=dtype)
    y = batch_norm(x, rm, rv, w, b, training, 0.2, 1e-4, activation=activation)
    grads = torch.autograd.grad(y, (x, w, b), g)
    x2, w2, b2 = (t.detach().clone().requires_grad_() for t in (x, w, b))
    want = ACTS[activation](F.batch_norm(x2, rm2, rv2, w2, b2, training, 0.2, 1e-4))
    want_grads = torch.autograd.grad(want, (x2, w2, b2), g)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert_close(y.detach().numpy(), want.detach().numpy(), rtol=tol)
    assert_close(rm.numpy(), rm2.numpy(), rtol=tol)
    assert_close(rv.numpy(), rv2.numpy(), rtol=tol)
    for got, expected in zip(grads, want_grads):
        assert_close(got.numpy(), expected.numpy(), rtol=tol)


def test_function_without_running_stats_or_affine(rng):
    x = _t(rng, 6, 3, 2, grad=True)
    y = batch_norm(x, None, None, training=True)
    assert_close(y.detach().numpy(), F.batch_norm(x, None, None, training=True).detach().numpy())
    (gx,) = torch.autograd.grad(y.sum() + (y * y).sum(), (x,))
    (want,) = torch.autograd.grad(
        (lambda t: t.sum() + (t * t).sum())(F.batch_norm(x, None, None, training=True)), (x,)
    )
    assert_close(gx.numpy(), want.numpy(), rtol=1e-10)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("activation", [None, "relu6"])
def test_gradcheck(rng, training, activation):
    x = _t(rng, 3, 2, 4, grad=True)
    w, b = _t(rng, 2, grad=True), _t(rng, 2, grad=True)
    rm, rv = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)

    def fn(x, w, b):
        return batch_norm(x, rm, rv, w, b, training, activation=activation)

    assert torch.autograd.gradcheck(fn, (x, w, b))


@pytest.mark.parametrize(
    "cls, torch_cls, shape",
    [
        (BatchNorm1d, torch.nn.BatchNorm1d, (6, 4)),
        (BatchNorm1d, torch.nn.BatchNorm1d, (5, 4, 7)),
        (BatchNorm2d, torch.nn.BatchNorm2d, (3, 4, 5, 6)),
    ],
)
@pytest.mark.parametrize(
    "options",
    [{}, {"momentum": None}, {"affine": False}, {"track_running_stats": False},
     {"momentum": 0.5, "eps": 1e-3}],
)  # fmt: skip
def test_drop_ins_match_torch_over_several_steps(rng, cls, torch_cls, shape, options):
    want = torch_cls(shape[1], dtype=torch.float64, **options)
    if want.affine:
        with torch.no_grad():
            want.weight.copy_(torch.tensor(rng.standard_normal(shape[1])))
            want.bias.copy_(torch.tensor(rng.standard_normal(shape[1])))
    got = cls(shape[1], dtype=torch.float64, **options)
    got.load_state_dict(want.state_dict())
    assert vars(got).keys() == vars(want).keys()  # nothing added to the instance
    for step in range(4):
        x = _t(rng, *shape, offset=step)
        x2 = x.clone().requires_grad_()
        x.requires_grad_()
        y, y2 = got(x), want(x2)
        assert_close(y.detach().numpy(), y2.detach().numpy(), rtol=1e-10)
        g = _t(rng, *shape)
        params = [x, *got.parameters()]
        params2 = [x2, *want.parameters()]
        for a, e in zip(torch.autograd.grad(y, params, g), torch.autograd.grad(y2, params2, g)):
            assert_close(a.numpy(), e.numpy(), rtol=1e-10)
    for key, value in want.state_dict().items():
        assert_close(got.state_dict()[key].numpy(), value.numpy(), rtol=1e-10, what=key)
    got.eval()
    want.eval()
    batch = 1 if want.track_running_stats else 2  # batch 1 in eval, with running stats
    x = _t(rng, batch, *shape[1:])
    assert_close(got(x).detach().numpy(), want(x).detach().numpy(), rtol=1e-10)


def test_drop_in_float32_and_fallbacks(rng):
    layer = BatchNorm2d(3)
    ref = torch.nn.BatchNorm2d(3)
    x = _t(rng, 4, 3, 5, 5, dtype=torch.float32, offset=100.0)
    assert_close(layer(x).detach().numpy(), ref(x).detach().numpy(), rtol=1e-4)
    assert_close(layer.running_var.numpy(), ref.running_var.numpy(), rtol=1e-5)
    assert BatchNorm2d.unsupported(layer) is None
    half = x.to(torch.bfloat16)
    assert layer(half).dtype == torch.bfloat16  # torch's own forward ran
    with pytest.raises(ValueError, match="expected 4D input"):
        layer(x[0])
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm1d(3)(_t(rng, 1, 3, dtype=torch.float32))


def test_custom_op_opcheck(rng):
    x = _t(rng, 3, 2, 4, grad=True)
    w, b = _t(rng, 2, grad=True), _t(rng, 2, grad=True)
    rm, rv = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    torch.library.opcheck(ops.batch_norm, (x, w, b, rm, rv, True, 0.1, 1e-5, "relu"))
    torch.library.opcheck(ops.batch_norm, (x, None, b, rm, rv, False, 0.1, 1e-5, ""))
    torch.library.opcheck(ops.batch_norm, (x, w, None, None, None, True, 0.1, 1e-5, "relu6"))
    w0, b0 = w.detach(), b.detach()
    y, mean, invstd, _, _ = ops.batch_norm(x.detach(), w0, b0, None, None, True, 0.1, 1e-5, "relu")
    g = _t(rng, 3, 2, 4)
    cheap = ("test_schema", "test_autograd_registration", "test_faketensor")
    args = (g, x.detach(), w.detach(), mean, invstd, y, True, "relu", [True, True, True])
    torch.library.opcheck(ops.batch_norm_backward, args, test_utils=cheap)
    args = (g, x.detach(), None, mean, invstd, None, False, "", [False, False, True])
    torch.library.opcheck(ops.batch_norm_backward, args, test_utils=cheap)


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
        self.gamma = torch.nn.Parameter(torch.linspace(0.5, 1.5, 3, dtype=torch.float64))
        self.beta = torch.nn.Parameter(torch.linspace(-0.2, 0.2, 3, dtype=torch.float64))
        self.register_buffer("rm", torch.zeros(3, dtype=torch.float64))
        self.register_buffer("rv", torch.ones(3, dtype=torch.float64))

    def forward(self, x):
        h = batch_norm(
            self.conv(x),
            self.rm,
            self.rv,
            self.gamma,
            self.beta,
            self.training,
            0.3,
            activation="relu",
        )
        return h.mean(dim=(2, 3))


def test_torch_compile_fullgraph_matches_eager(rng):
    eager = _Tiny()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, fullgraph=True, backend="aot_eager")
    for step in range(2):
        x = _t(rng, 4, 2, 5, 5, offset=step)
        want = eager(x)
        got = compiled(x)
        assert_close(got.detach().numpy(), want.detach().numpy(), rtol=1e-10)
        grads = torch.autograd.grad(got.sum(), list(compiled_model.parameters()))
        want_grads = torch.autograd.grad(want.sum(), list(eager.parameters()))
        for a, e in zip(grads, want_grads):
            assert_close(a.numpy(), e.numpy(), rtol=1e-10)
    assert_close(compiled_model.rm.numpy(), eager.rm.numpy(), rtol=1e-12)
    assert_close(compiled_model.rv.numpy(), eager.rv.numpy(), rtol=1e-12)
    assert not np.allclose(eager.rm.numpy(), 0)
    eager.eval()
    compiled_model.eval()
    x = _t(rng, 2, 2, 5, 5)
    assert_close(compiled(x).detach().numpy(), eager(x).detach().numpy(), rtol=1e-10)
