"""fastnn.torch's adaptive pooling, dropout and residual add: against torch (values,
indices, autograd gradients), gradcheck in float64, torch.library.opcheck of the custom
ops, torch.compile(fullgraph=True) of a small model, dropout's reproducibility under
torch.manual_seed and its eval / p = 0 / p = 1 / inplace paths, and the drop-in layers
(including their fall back to torch for inputs fastnn cannot run)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.utils import assert_close, import_torch

torch = pytest.importorskip("torch")
import_torch()

import fastnn  # noqa: E402
from fastnn.torch import (  # noqa: E402
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    Dropout,
    Flatten,
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    add,
    dropout,
)

F = torch.nn.functional
ops = torch.ops.fastnn
DTYPES = [torch.float32, torch.float64]


def _t(*shape, dtype=torch.float64, grad=False, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(shape, dtype=dtype, generator=g).requires_grad_(grad)


def _sizes(rng):
    for _ in range(12):
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                 *(int(v) for v in rng.integers(1, 12, 2)))  # fmt: skip
        size = tuple(int(v) for v in rng.integers(1, 14, 2))
        yield shape, size


# ---------------------------------------------------------------------------------------
# Adaptive pooling
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_pooling_matches_torch_with_gradients(rng, dtype):
    for shape, size in _sizes(rng):
        x = _t(*shape, dtype=dtype, seed=int(rng.integers(100)))
        for ours, theirs in (
            (adaptive_avg_pool2d, F.adaptive_avg_pool2d),
            (adaptive_max_pool2d, F.adaptive_max_pool2d),
        ):
            a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
            y, want = ours(a, size), theirs(b, size)
            assert_close(y.detach().numpy(), want.detach().numpy(), np.dtype(str(dtype)[6:]))
            g = torch.randn_like(y)
            y.backward(g)
            want.backward(g)
            assert_close(a.grad.numpy(), b.grad.numpy(), np.dtype(str(dtype)[6:]))
        y, idx = adaptive_max_pool2d(x, size, return_indices=True)
        want, want_idx = F.adaptive_max_pool2d(x, size, return_indices=True)
        assert torch.equal(idx, want_idx) and torch.equal(y, want)
        a, b = x[:, :, 0].clone().requires_grad_(), x[:, :, 0].clone().requires_grad_()
        y, want = adaptive_avg_pool1d(a, size[1]), F.adaptive_avg_pool1d(b, size[1])
        torch.testing.assert_close(y, want)
        y.sum().backward()
        want.sum().backward()
        torch.testing.assert_close(a.grad, b.grad)


def test_adaptive_pooling_unbatched_none_and_noncontiguous():
    x = _t(3, 9, 7)
    torch.testing.assert_close(
        adaptive_avg_pool2d(x, (None, 2)), F.adaptive_avg_pool2d(x, (None, 2))
    )
    y, idx = adaptive_max_pool2d(x, 4, return_indices=True)
    want, want_idx = F.adaptive_max_pool2d(x, 4, return_indices=True)
    assert torch.equal(y, want) and torch.equal(idx, want_idx)
    torch.testing.assert_close(adaptive_avg_pool1d(x[0], 5), F.adaptive_avg_pool1d(x[0], 5))
    v = _t(2, 3, 8, 10).transpose(2, 3)[..., ::1]  # non-contiguous
    torch.testing.assert_close(adaptive_avg_pool2d(v, (3, 3)), F.adaptive_avg_pool2d(v, (3, 3)))
    flipped = _t(2, 3, 8, 10).flip(-1)
    torch.testing.assert_close(adaptive_max_pool2d(flipped, 3), F.adaptive_max_pool2d(flipped, 3))


def test_adaptive_pooling_gradcheck():
    x = _t(2, 3, 7, 5, grad=True)
    assert torch.autograd.gradcheck(lambda t: adaptive_avg_pool2d(t, (3, 2)), (x,))
    assert torch.autograd.gradcheck(lambda t: adaptive_avg_pool2d(t, 1), (x,))
    assert torch.autograd.gradcheck(lambda t: adaptive_max_pool2d(t, (4, 6)), (x,))
    assert torch.autograd.gradcheck(
        lambda t: adaptive_avg_pool1d(t, 3), (x[:, :, 0].detach().requires_grad_(),)
    )


def test_adaptive_pooling_bad_sizes():
    x = _t(1, 2, 5, 5)
    with pytest.raises(ValueError, match="output_size"):
        adaptive_avg_pool2d(x, (1, 2, 3))
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        adaptive_max_pool2d(x, 0)
    with pytest.raises(TypeError, match="output_size"):
        adaptive_avg_pool2d(x, (1.5, 2))


# ---------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------


def test_dropout_is_reproducible_under_manual_seed():
    x = _t(50, 40)
    torch.manual_seed(3)
    a, b = dropout(x, 0.3), dropout(x, 0.3)
    torch.manual_seed(3)
    c, d = dropout(x, 0.3), dropout(x, 0.3)
    assert torch.equal(a, c) and torch.equal(b, d) and not torch.equal(a, b)
    kept = a != 0
    torch.testing.assert_close(a[kept], x[kept] / 0.7)
    assert abs(kept.double().mean().item() - 0.7) < 0.05


def test_dropout_uses_the_seed_drawn_from_torch():
    x = _t(7, 9)
    torch.manual_seed(5)
    y = dropout(x, 0.4)
    torch.manual_seed(5)
    seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
    want, _ = fastnn.dropout(x.numpy(), 0.4, generator=seed)
    np.testing.assert_array_equal(y.numpy(), want)


def test_dropout_eval_p_zero_p_one():
    x = _t(4, 5)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    for p in (-0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="between 0 and 1"):
            dropout(x, p)


def test_dropout_backward_and_gradcheck():
    x = _t(6, 7, grad=True)
    torch.manual_seed(1)
    y = dropout(x, 0.25)
    g = torch.randn_like(y)
    y.backward(g)
    mask = (y != 0).double()
    torch.testing.assert_close(x.grad, g * mask / 0.75)

    def seeded(t):
        torch.manual_seed(9)  # the same mask in every evaluation gradcheck makes
        return dropout(t, 0.4)

    assert torch.autograd.gradcheck(seeded, (x,))


def test_dropout_inplace():
    x = _t(5, 6)
    before = x.clone()
    torch.manual_seed(2)
    y = dropout(x, 0.5, inplace=True)
    assert y is x
    torch.manual_seed(2)
    torch.testing.assert_close(y, dropout(before, 0.5))
    leaf = _t(3, 4, grad=True)
    z = leaf * 2
    torch.manual_seed(4)
    out = dropout(z, 0.5, inplace=True)
    out.sum().backward()
    torch.testing.assert_close(leaf.grad, 2 * (out != 0).double() / 0.5)


# ---------------------------------------------------------------------------------------
# Residual add
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_add_matches_torch(dtype, activation):
    a, b = _t(3, 4, 5, dtype=dtype) * 5, _t(3, 4, 5, dtype=dtype, seed=1) * 5
    a[0, 0, :2] = torch.tensor([6.0, 0.0], dtype=dtype) - b[0, 0, :2]  # the kinks
    ref = {None: lambda s: s, "relu": F.relu, "relu6": F.relu6}[activation]
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    y, want = add(a1, b1, activation=activation), ref(a2 + b2)
    torch.testing.assert_close(y, want)
    g = torch.randn_like(y)
    y.backward(g)
    want.backward(g)
    torch.testing.assert_close(a1.grad, a2.grad)
    torch.testing.assert_close(b1.grad, b2.grad)


def test_add_gradcheck_and_errors():
    a = (_t(4, 5) * 3).requires_grad_()
    b = (_t(4, 5, seed=2) * 3).requires_grad_()
    for act in (None, "relu", "relu6"):
        assert torch.autograd.gradcheck(lambda u, v, f=act: add(u, v, activation=f), (a, b))
    with pytest.raises(ValueError, match="same shape"):
        add(_t(4, 5), _t(1, 5))
    with pytest.raises(ValueError, match="activation"):
        add(a, b, activation="tanh")


# ---------------------------------------------------------------------------------------
# Custom ops and torch.compile
# ---------------------------------------------------------------------------------------

CHEAP = ("test_schema", "test_autograd_registration", "test_faketensor")
FULL = (*CHEAP, "test_aot_dispatch_dynamic")


def _opcheck_cases():
    x, x1 = _t(2, 3, 7, 5, grad=True), _t(2, 3, 9, grad=True)
    y, idx = ops.adaptive_max_pool2d(x.detach(), [3, 2])
    seed = torch.tensor(1234)
    _, mask = ops.dropout(x.detach(), seed, 0.3)
    return [
        (ops.adaptive_avg_pool1d, (x1, [4]), CHEAP),
        (ops.adaptive_avg_pool2d, (x, [3, 4]), FULL),
        (ops.adaptive_max_pool2d, (x, [3, 2]), FULL),
        (ops.adaptive_avg_pool1d_backward, (_t(2, 3, 4), x1.detach()), CHEAP),
        (ops.adaptive_avg_pool2d_backward, (_t(2, 3, 3, 4), x.detach()), CHEAP),
        (ops.adaptive_max_pool2d_backward, (_t(2, 3, 3, 2), x.detach(), idx), CHEAP),
        (ops.dropout, (x, seed, 0.3), FULL),
        (ops.dropout_backward, (_t(2, 3, 7, 5), mask, 0.3), CHEAP),
        (ops.add, (x, _t(2, 3, 7, 5, grad=True, seed=3), "relu6"), FULL),
        (ops.add_backward, ("relu", _t(2, 3, 7, 5), x.detach().relu()), CHEAP),
    ]


@pytest.mark.parametrize("case", range(10))
def test_opcheck(case):
    op, args, utils = _opcheck_cases()[case]
    torch.library.opcheck(op, args, test_utils=utils)


class _Head(torch.nn.Module):
    """A residual block's tail and a classifier head, all of this file's ops."""

    def __init__(self):
        super().__init__()
        self.pool = AdaptiveAvgPool2d(1)
        self.maxpool = AdaptiveMaxPool2d((2, 3))
        self.drop = Dropout(0.2)
        self.flat = Flatten()

    def forward(self, x, skip):
        h = add(x, skip, activation="relu")
        m = self.maxpool(h)
        return self.drop(self.flat(self.pool(h))), adaptive_avg_pool1d(m.flatten(2), 2)


def test_torch_compile_fullgraph_matches_eager():
    model = _Head().double()
    x, skip = _t(2, 4, 6, 5, grad=True), _t(2, 4, 6, 5, seed=7)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    for training in (False, True):
        model.train(training)
        torch.manual_seed(0)
        want = model(x, skip)
        torch.manual_seed(0)
        got = compiled(x, skip)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)
        grads = torch.autograd.grad(sum(t.sum() for t in got), x)
        grads_eager = torch.autograd.grad(sum(t.sum() for t in want), x)
        torch.testing.assert_close(grads[0], grads_eager[0])


# ---------------------------------------------------------------------------------------
# Drop-in layers
# ---------------------------------------------------------------------------------------


def test_drop_ins_match_their_torch_parents():
    x = _t(2, 3, 9, 7)
    pairs = [
        (AdaptiveAvgPool2d((4, None)), torch.nn.AdaptiveAvgPool2d((4, None))),
        (AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1)),
        (AdaptiveMaxPool2d(3), torch.nn.AdaptiveMaxPool2d(3)),
        (Flatten(), torch.nn.Flatten()),
    ]
    for ours, theirs in pairs:
        assert isinstance(ours, type(theirs)) and type(ours).unsupported(ours) is None
        torch.testing.assert_close(ours(x), theirs(x))
    y, idx = AdaptiveMaxPool2d(3, return_indices=True)(x)
    want, want_idx = torch.nn.AdaptiveMaxPool2d(3, return_indices=True)(x)
    assert torch.equal(y, want) and torch.equal(idx, want_idx)
    seq = x[:, :, 0]
    torch.testing.assert_close(AdaptiveAvgPool1d(4)(seq), torch.nn.AdaptiveAvgPool1d(4)(seq))
    assert Dropout(0.5).eval()(x) is x
    assert vars(AdaptiveAvgPool2d(2)).keys() == vars(torch.nn.AdaptiveAvgPool2d(2)).keys()


def test_flatten_stays_a_view():
    x = _t(2, 3, 4, 5)
    y = Flatten()(x)
    assert y.shape == (2, 60) and y.data_ptr() == x.data_ptr()


def test_drop_ins_fall_back_to_torch_for_other_dtypes():
    x = _t(2, 3, 6, 5).to(torch.bfloat16)
    torch.testing.assert_close(AdaptiveAvgPool2d(2)(x), F.adaptive_avg_pool2d(x, 2))
    torch.testing.assert_close(AdaptiveMaxPool2d(2)(x), F.adaptive_max_pool2d(x, 2))
    torch.testing.assert_close(
        AdaptiveAvgPool1d(2)(x[:, :, 0]), F.adaptive_avg_pool1d(x[:, :, 0], 2)
    )
    assert Dropout(0.5)(x).dtype == torch.bfloat16
