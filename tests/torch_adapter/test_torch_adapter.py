"""fastnn.torch functions against torch.nn.functional: forward values, gradients (float32
and float64), torch.autograd.gradcheck in float64, non-contiguous tensors, and backward
computing only the gradients autograd asks for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from tests.utils import assert_close, import_torch

torch = pytest.importorskip("torch")
import_torch()  # one thread: the tensors are tiny

#: torch warns that its own "same" padding with an even kernel copies the input.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning"),
    pytest.mark.usefixtures("one_thread"),
]

import torch.nn.functional as F  # noqa: E402

import fastnn.torch as ft  # noqa: E402
from fastnn.torch import _conv, _dense  # noqa: E402

DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


@dataclass(frozen=True)
class Case:
    """``ours(*tensors)`` should equal ``theirs(*tensors)``.  ``shapes`` gives one float
    tensor per entry; ``target`` ``(shape, classes)`` adds an int64 class-index tensor
    after them (never differentiated)."""

    name: str
    ours: Callable
    theirs: Callable
    shapes: tuple
    target: tuple | None = None

    def __str__(self) -> str:
        return self.name


def _act(name):
    return {None: lambda y: y, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[name]


def _conv_case(name, nd, x, w, bias=True, **kw):
    ours, theirs = (ft.conv1d, F.conv1d) if nd == 1 else (ft.conv2d, F.conv2d)
    shapes = (x, w, (w[0],)) if bias else (x, w)
    return Case(
        name,
        lambda *t: ours(*t, **kw),
        lambda *t: theirs(*t, **kw),
        shapes,
    )


def _linear_case(name, x, w, bias=True, activation=None):
    shapes = (x, w, (w[0],)) if bias else (x, w)
    return Case(
        name,
        lambda *t: ft.linear(*t, activation=activation),
        lambda *t: _act(activation)(F.linear(*t)),
        shapes,
    )


CASES = [
    _conv_case("conv1d-s2-p1-d2-g2", 1, (2, 4, 9), (6, 2, 3),
               stride=2, padding=1, dilation=2, groups=2),
    _conv_case("conv1d-same-even-nobias", 1, (1, 3, 8), (2, 3, 4), bias=False, padding="same"),
    _conv_case("conv1d-valid", 1, (3, 2, 5), (3, 2, 5), padding="valid"),
    _conv_case("conv2d-s21-p10-d12-g2", 2, (2, 4, 7, 6), (6, 2, 3, 2),
               stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
    _conv_case("conv2d-same-d21", 2, (2, 3, 6, 5), (4, 3, 2, 3), padding="same", dilation=(2, 1)),
    _conv_case("conv2d-depthwise", 2, (2, 4, 6, 6), (4, 1, 3, 3), padding=1, groups=4),
    _conv_case("conv2d-batch0", 2, (0, 3, 5, 5), (4, 3, 3, 3), padding=1),
    _conv_case("conv2d-batch1-unbatched", 2, (3, 5, 6), (2, 3, 3, 3), stride=2),
    Case("max_pool1d-s2-p1-d2-ceil", lambda x: ft.max_pool1d(x, 3, 2, 1, 2, True),
         lambda x: F.max_pool1d(x, 3, 2, 1, 2, True), ((2, 3, 11),)),
    Case("max_pool1d-default-stride", lambda x: ft.max_pool1d(x, 2),
         lambda x: F.max_pool1d(x, 2), ((1, 2, 9),)),
    Case("max_pool2d-s21-p1-d12-ceil", lambda x: ft.max_pool2d(x, (3, 2), (2, 1), 1, (1, 2), True),
         lambda x: F.max_pool2d(x, (3, 2), (2, 1), 1, (1, 2), True), ((2, 3, 9, 8),)),
    Case("max_pool2d-batch0", lambda x: ft.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2),
         ((0, 2, 4, 4),)),
    Case("max_pool2d-unbatched", lambda x: ft.max_pool2d(x, 3, 2, 1),
         lambda x: F.max_pool2d(x, 3, 2, 1), ((2, 7, 6),)),
    Case("avg_pool1d-s3-p2-ceil-nopad", lambda x: ft.avg_pool1d(x, 4, 3, 2, True, False),
         lambda x: F.avg_pool1d(x, 4, 3, 2, True, False), ((2, 3, 10),)),
    Case("avg_pool2d-s2-p1-ceil", lambda x: ft.avg_pool2d(x, 3, 2, 1, True),
         lambda x: F.avg_pool2d(x, 3, 2, 1, True), ((2, 3, 9, 8),)),
    Case("avg_pool2d-k32-nopad", lambda x: ft.avg_pool2d(x, (3, 2), 1, (1, 1), False, False),
         lambda x: F.avg_pool2d(x, (3, 2), 1, (1, 1), False, False), ((1, 2, 5, 6),)),
    Case("avg_pool1d-unbatched", lambda x: ft.avg_pool1d(x, 2),
         lambda x: F.avg_pool1d(x, 2), ((3, 8),)),
    _linear_case("linear", (5, 7), (4, 7)),
    _linear_case("linear-3d-relu-nobias", (2, 3, 7), (4, 7), bias=False, activation="relu"),
    _linear_case("linear-sigmoid", (5, 6), (3, 6), activation="sigmoid"),
    _linear_case("linear-tanh-1d", (6,), (3, 6), activation="tanh"),
    _linear_case("linear-batch0", (0, 6), (3, 6)),
    Case("relu", ft.relu, F.relu, ((3, 4, 5),)),
    Case("sigmoid", ft.sigmoid, torch.sigmoid, ((3, 4, 5),)),
    Case("tanh", ft.tanh, torch.tanh, ((3, 4, 5),)),
    Case("softmax-dim1", lambda x: ft.softmax(x, 1), lambda x: F.softmax(x, 1), ((3, 4, 5),)),
    Case("softmax-dim0", lambda x: ft.softmax(x, 0), lambda x: F.softmax(x, 0), ((3, 4),)),
    Case("log_softmax", lambda x: ft.log_softmax(x, -1), lambda x: F.log_softmax(x, -1),
         ((3, 4, 5),)),
    Case("cross_entropy-mean", ft.cross_entropy, F.cross_entropy, ((6, 5),), ((6,), 5)),
    Case("cross_entropy-sum", lambda x, t: ft.cross_entropy(x, t, reduction="sum"),
         lambda x, t: F.cross_entropy(x, t, reduction="sum"), ((6, 5),), ((6,), 5)),
    Case("cross_entropy-none", lambda x, t: ft.cross_entropy(x, t, reduction="none"),
         lambda x, t: F.cross_entropy(x, t, reduction="none"), ((6, 5),), ((6,), 5)),
    Case("mse_loss-mean", ft.mse_loss, F.mse_loss, ((4, 3), (4, 3))),
    Case("mse_loss-sum", lambda x, t: ft.mse_loss(x, t, reduction="sum"),
         lambda x, t: F.mse_loss(x, t, reduction="sum"), ((2, 3, 2), (2, 3, 2))),
    Case("mse_loss-none", lambda x, t: ft.mse_loss(x, t, reduction="none"),
         lambda x, t: F.mse_loss(x, t, reduction="none"), ((4, 3), (4, 3))),
]  # fmt: skip


def _inputs(case: Case, rng: np.random.Generator, dtype) -> tuple[list, list]:
    """(float tensors, all tensors in call order) for ``case``, requiring grad."""
    floats = [
        torch.tensor(rng.standard_normal(shape), dtype=DTYPES[dtype], requires_grad=True)
        for shape in case.shapes
    ]
    if case.target is None:
        return floats, floats
    shape, classes = case.target
    return floats, [*floats, torch.tensor(rng.integers(0, classes, shape))]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_torch(case, dtype, rng):
    floats, args = _inputs(case, rng, dtype)
    theirs = case.theirs(*args)
    ours = case.ours(*args)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert_close(ours.detach().numpy(), theirs.detach().numpy(), dtype, what=f"{case} forward")
    grad_output = torch.tensor(rng.standard_normal(tuple(theirs.shape)), dtype=theirs.dtype)
    want = torch.autograd.grad(theirs, floats, grad_output)
    got = torch.autograd.grad(ours, floats, grad_output)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g.numpy(), w.numpy(), dtype, what=f"{case} gradient {i}")


#: Cases gradcheck can take: it refuses empty inputs (their strides are 0).
GRADCHECK_CASES = [c for c in CASES if all(0 not in shape for shape in c.shapes)]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=str)
def test_gradcheck(case, rng):
    """Numerical vs analytical gradients in float64.  The full Jacobian is compared for
    small cases; for larger ones (convolutions) gradcheck's fast mode compares random
    projections of it, as any wrong entry shows in them."""
    floats, args = _inputs(case, rng, np.float64)
    targets = args[len(floats) :]
    size = sum(f.numel() for f in floats) + case.ours(*args).numel()
    fn = lambda *f: case.ours(*f, *targets)  # noqa: E731
    assert torch.autograd.gradcheck(fn, floats, fast_mode=size > 150)


def _noncontiguous(t: torch.Tensor, how: str) -> torch.Tensor:
    """The values of ``t`` in another memory layout (a view, never contiguous when
    ``t`` has two dimensions of size > 1)."""
    if how == "transposed":
        return t.transpose(-1, -2).contiguous().transpose(-1, -2) if t.dim() > 1 else t
    if how == "strided":
        big = torch.zeros(*(2 * s for s in t.shape), dtype=t.dtype)
        view = big[tuple(slice(None, None, 2) for _ in t.shape)]
        view.copy_(t)
        return view
    if how == "channels_last":
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
    raise ValueError(how)


LAYOUT_CASES = [c for c in CASES if c.name in (
    "conv1d-s2-p1-d2-g2", "conv2d-s21-p10-d12-g2", "max_pool2d-s21-p1-d12-ceil",
    "avg_pool2d-s2-p1-ceil", "linear-3d-relu-nobias", "softmax-dim1", "cross_entropy-none",
    "mse_loss-none",
)]  # fmt: skip


@pytest.mark.parametrize("how", ["transposed", "strided", "channels_last"])
@pytest.mark.parametrize("case", LAYOUT_CASES, ids=str)
def test_noncontiguous_tensors(case, how, rng):
    """Strided views cross as strided arrays: same results as contiguous tensors."""
    floats, args = _inputs(case, rng, np.float64)
    targets = args[len(floats) :]
    views = [_noncontiguous(f.detach(), how).requires_grad_() for f in floats]
    want = case.ours(*floats, *targets)
    got = case.ours(*views, *targets)
    assert got.is_contiguous()
    np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
    grad_output = torch.tensor(rng.standard_normal(tuple(want.shape)))
    grad_output = _noncontiguous(grad_output, how)
    for g, w in zip(
        torch.autograd.grad(got, views, grad_output), torch.autograd.grad(want, floats, grad_output)
    ):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-14, atol=1e-14)


def test_sum_backward_with_expanded_gradient(rng):
    """``y.sum().backward()`` hands the backward a stride-0 gradient."""
    x = torch.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = torch.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    ft.max_pool2d(ft.relu(ft.conv2d(x, w, padding=1)), 2).sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2).sum().backward()
    assert_close(gx.numpy(), x.grad.numpy(), np.float64)
    assert_close(gw.numpy(), w.grad.numpy(), np.float64)


@pytest.mark.parametrize("nd", [1, 2])
def test_max_pool_return_indices(nd, rng):
    shape = (2, 3, 9) if nd == 1 else (2, 3, 7, 8)
    x = torch.tensor(rng.standard_normal(shape), requires_grad=True)
    ours = ft.max_pool1d if nd == 1 else ft.max_pool2d
    theirs = F.max_pool1d if nd == 1 else F.max_pool2d
    y, idx = ours(x, 3, 2, 1, 1, True, return_indices=True)
    y_want, idx_want = theirs(x, 3, 2, 1, 1, True, return_indices=True)
    assert idx.dtype == torch.int64 and not idx.requires_grad
    torch.testing.assert_close(idx, idx_want, rtol=0, atol=0)
    torch.testing.assert_close(y, y_want, rtol=0, atol=0)
    y.sum().backward()
    gx = x.grad.clone()
    x.grad = None
    y_want.sum().backward()
    torch.testing.assert_close(gx, x.grad, rtol=0, atol=0)


def test_no_grad_forward(rng):
    x = torch.tensor(rng.standard_normal((2, 3, 6, 6)), dtype=torch.float32)
    w = torch.tensor(rng.standard_normal((4, 3, 3, 3)), dtype=torch.float32, requires_grad=True)
    with torch.no_grad():
        y = ft.max_pool2d(ft.conv2d(x, w), 2)
    assert not y.requires_grad
    assert_close(y.numpy(), F.max_pool2d(F.conv2d(x, w), 2).detach().numpy(), np.float32)


def test_softmax_dtype_casts_first(rng):
    x = torch.tensor(rng.standard_normal((3, 5)), dtype=torch.float32, requires_grad=True)
    y = ft.softmax(x, 1, dtype=torch.float64)
    assert y.dtype == torch.float64
    y.sum().backward()
    assert x.grad.dtype == torch.float32
    assert_close(y.detach().numpy(), F.softmax(x.double(), 1).detach().numpy(), np.float64)


# ---------------------------------------------------------------------------------------
# Backward computes only what autograd needs
# ---------------------------------------------------------------------------------------


def _spy(monkeypatch, table, key):
    """Replace ``table[key]`` (a fastnn backward op) by a wrapper that records the
    output_mask it was given."""
    masks = []
    real = table[key]

    def spy(*args, output_mask, **kwargs):
        masks.append(tuple(output_mask))
        return real(*args, output_mask=output_mask, **kwargs)

    monkeypatch.setitem(table, key, spy)
    return masks


@pytest.mark.parametrize(
    "needs",
    [(True, False, False), (False, True, False), (False, False, True), (True, True, True)],
)
def test_conv_backward_output_mask(needs, monkeypatch, rng):
    masks = _spy(monkeypatch, _conv._BACKWARD, 2)
    x, w, b = (
        torch.tensor(rng.standard_normal(s), requires_grad=r)
        for s, r in zip(((2, 3, 5, 5), (4, 3, 3, 3), (4,)), needs)
    )
    ft.conv2d(x, w, b).sum().backward()
    assert masks == [needs]
    for t, need in zip((x, w, b), needs):
        assert (t.grad is not None) == need


def test_linear_backward_output_mask(monkeypatch, rng):
    import fastnn

    masks = []
    real = fastnn.linear_backward

    def spy(*args, output_mask, **kwargs):
        masks.append(tuple(output_mask))
        return real(*args, output_mask=output_mask, **kwargs)

    monkeypatch.setattr(_dense.fastnn, "linear_backward", spy)
    x = torch.tensor(rng.standard_normal((4, 5)))
    w = torch.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    ft.linear(x, w, None, activation="tanh").sum().backward()
    assert masks == [(False, True, False)]


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


def test_unsupported_dtypes_raise_type_error():
    for dtype in (torch.float16, torch.bfloat16, torch.int64):
        x = torch.ones(2, 3, 5, 5, dtype=dtype)
        with pytest.raises(TypeError, match=r"fastnn.torch.conv2d: input .*float32 or float64"):
            ft.conv2d(x, torch.ones(4, 3, 3, 3, dtype=dtype))
        with pytest.raises(TypeError, match="fastnn.torch.relu: input"):
            ft.relu(x)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        ft.relu(np.ones(3))


def test_mixed_dtypes_and_bad_arguments_raise():
    x = torch.ones(2, 3, 5, 5)
    with pytest.raises(TypeError):
        ft.conv2d(x, torch.ones(4, 3, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="stride"):
        ft.conv2d(x, torch.ones(4, 3, 3, 3), stride=0)
    with pytest.raises(ValueError, match="divisor_override"):
        ft.avg_pool2d(x, 2, divisor_override=3)
    with pytest.raises(ValueError, match="label smoothing"):
        ft.cross_entropy(torch.ones(2, 3), torch.zeros(2, dtype=torch.int64), label_smoothing=0.1)
    with pytest.raises(ValueError, match="target"):
        ft.cross_entropy(torch.ones(2, 3), torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="dim must be an int"):
        ft.softmax(torch.ones(2, 3), None)


def test_unsupported_device_raises():
    x = torch.ones(2, 3, 5, 5, device="meta")
    with pytest.raises(RuntimeError, match="device meta"):
        ft.relu(x)
