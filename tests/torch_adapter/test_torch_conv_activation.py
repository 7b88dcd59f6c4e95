"""fastnn.torch.conv1d / conv2d with a fused ``activation`` ("relu", "relu6"): forward
and backward against torch's conv followed by F.relu / F.relu6 (float32 and float64,
bias or not, every CPU algorithm, non-contiguous and unbatched inputs, NaN), autograd's
gradcheck in float64, torch.library.opcheck on the custom ops with the activation,
and torch.compile(fullgraph=True)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.utils import assert_close, import_torch

torch = pytest.importorskip("torch")
import_torch()

import torch.nn.functional as F  # noqa: E402

import fastnn  # noqa: E402
import fastnn.torch as ft  # noqa: E402
from fastnn.torch import _conv  # noqa: E402

ops = torch.ops.fastnn
TORCH_ACT = {"relu": F.relu, "relu6": F.relu6}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d}
FT_CONV = {1: ft.conv1d, 2: ft.conv2d}
#: (nd, input shape, weight shape, stride, padding, dilation, groups, algo)
CASES = [
    (2, (2, 3, 7, 6), (5, 3, 3, 2), 1, 1, 1, 1, "im2col"),
    (2, (1, 4, 9, 8), (18, 2, 3, 3), (2, 1), (1, 0), 1, 2, "direct"),  # blocked kernel
    (2, (2, 3, 6, 7), (4, 3, 3, 3), 1, 1, 1, 1, "direct"),  # row kernel
    (2, (2, 5, 8, 7), (6, 5, 3, 3), 1, 1, 1, 1, "winograd"),
    (2, (2, 4, 7, 7), (8, 1, 3, 3), 1, "same", 1, 4, "direct"),  # depthwise
    (1, (2, 4, 11), (6, 2, 3), 2, 2, 2, 2, "auto"),
    (1, (1, 3, 9), (20, 3, 4), 1, "same", 1, 1, "direct"),
]


def _tensors(rng, case, dtype, bias=True):
    nd, xs, ws = case[:3]
    x = torch.tensor(rng.standard_normal(xs) * 2, dtype=dtype, requires_grad=True)
    w = torch.tensor(rng.standard_normal(ws), dtype=dtype, requires_grad=True)
    b = torch.tensor(rng.standard_normal(ws[0]) * 3, dtype=dtype, requires_grad=True)
    return x, w, (b if bias else None)


def _both(case, x, w, b, act):
    """(fastnn's output, torch's output) of one case."""
    nd, _, _, stride, padding, dilation, groups, algo = case
    got = FT_CONV[nd](x, w, b, stride, padding, dilation, groups, algo=algo, activation=act)
    want = TORCH_ACT[act](TORCH_CONV[nd](x, w, b, stride, padding, dilation, groups))
    return got, want


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("act", ["relu", "relu6"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_forward_and_backward_match_torch(rng, case, act, dtype):
    case = CASES[case]
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    for bias in (True, False):
        tensors = _tensors(rng, case, dtype, bias)
        got, want = _both(case, *tensors, act)
        assert_close(got.detach().numpy(), want.detach().numpy(), np_dtype, what="forward")
        assert (want == 0).any() and (act == "relu" or (want == 6).any())
        gy = torch.tensor(rng.standard_normal(want.shape), dtype=dtype)
        params = [t for t in tensors if t is not None]
        got_grads = torch.autograd.grad(got, params, gy)
        want_grads = torch.autograd.grad(want, params, gy)
        for name, g, w in zip("xwb", got_grads, want_grads):
            assert_close(g.numpy(), w.numpy(), np_dtype, what=f"grad {name} bias={bias}")


@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_non_contiguous_unbatched_and_nan(rng, act):
    """A transposed input, an unbatched input, and NaN in the input: the forward keeps
    NaN where torch has it; the gradient passes where the output is NaN (as torch's)."""
    case = CASES[0]
    x, w, b = _tensors(rng, case, torch.float64)
    xt = x.detach().transpose(2, 3).contiguous().transpose(2, 3).requires_grad_(True)
    assert not xt.is_contiguous()
    got, want = _both(case, xt, w, b, act)
    assert_close(got.detach().numpy(), want.detach().numpy(), np.float64)
    got, want = _both(case, x[0], w, b, act)  # unbatched
    assert got.shape == want.shape
    assert_close(got.detach().numpy(), want.detach().numpy(), np.float64)
    xn = x.detach().clone()
    xn[0, 1, 3, 2] = float("nan")
    xn.requires_grad_(True)
    got, want = _both(case, xn, w, b, act)
    assert torch.equal(torch.isnan(got), torch.isnan(want)) and torch.isnan(got).any()
    g = torch.ones_like(got)
    got_grads = torch.autograd.grad(got, (w, b), g)
    want_grads = torch.autograd.grad(want, (w, b), g)
    for gg, ww in zip(got_grads, want_grads):
        assert torch.equal(torch.isnan(gg), torch.isnan(ww))


def test_backward_goes_through_fastnns_relu_backward(rng, monkeypatch):
    """relu's gradient is fastnn.activation_backward("relu", ...) on the saved output."""
    seen = []
    real = fastnn.activation_backward

    def spy(name, gy, y, *args, **kwargs):
        seen.append(name)
        return real(name, gy, y, *args, **kwargs)

    monkeypatch.setattr(fastnn, "activation_backward", spy)
    x, w, b = _tensors(rng, CASES[0], torch.float64)
    ft.conv2d(x, w, b, padding=1, activation="relu").sum().backward()
    assert seen == ["relu"] and x.grad is not None


@pytest.mark.parametrize("act", ["relu", "relu6"])
@pytest.mark.parametrize("case", [0, 1, 5])
def test_gradcheck(rng, case, act):
    """Away from the kinks (|u| and |u - 6| not tiny), the fused gradient is exact."""
    nd, _, _, stride, padding, dilation, groups, algo = CASES[case]

    def fn(x, w, b):
        return FT_CONV[nd](x, w, b, stride, padding, dilation, groups, algo=algo, activation=act)

    for _ in range(100):  # inputs whose pre-activations stay clear of the kinks
        x, w, b = _tensors(rng, CASES[case], torch.float64)
        u = TORCH_CONV[nd](x, w, b, stride, padding, dilation, groups).detach()
        if (u.abs() > 1e-3).all() and ((u - 6).abs() > 1e-3).all():
            break
    else:
        raise AssertionError("no draw clear of the kinks")
    assert (u < 0).any() and (act == "relu" or (u > 6).any())
    assert torch.autograd.gradcheck(fn, (x, w, b), fast_mode=True)


def test_bad_activation_is_refused(rng):
    x, w, b = _tensors(rng, CASES[0], torch.float32)
    for bad in ("sigmoid", "ReLU", 3):
        with pytest.raises(ValueError, match="activation"):
            ft.conv2d(x, w, b, activation=bad)


def _t(*shape, grad=False):
    g = torch.Generator().manual_seed(sum(shape))
    return (torch.randn(shape, dtype=torch.float64, generator=g) * 2).requires_grad_(grad)


@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_opcheck(act):
    x2, w2, b = _t(2, 3, 7, 6, grad=True), _t(4, 3, 3, 2, grad=True), _t(4, grad=True)
    x1, w1 = _t(2, 4, 9, grad=True), _t(6, 2, 3, grad=True)
    full = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(
        ops.conv2d, (x2, w2, b, [1, 1], [1, 0], "", [1, 1], 1, "auto", act),
        test_utils=(*full, "test_aot_dispatch_dynamic"),
    )  # fmt: skip
    torch.library.opcheck(ops.conv1d, (x1, w1, None, [2], [1], "", [2], 2, "auto", act),
                          test_utils=full)  # fmt: skip
    y = ops.conv2d(x2, w2, b, [1, 1], [1, 0], "", [1, 1], 1, "auto", act).detach()
    gy = _t(*y.shape)
    args = (gy, x2.detach(), w2.detach(), [1, 1], [1, 0], "", [1, 1], 1, "auto",
            [True, True, True], y, act)  # fmt: skip
    torch.library.opcheck(ops.conv2d_backward, args, test_utils=full)


def test_compiled_matches_eager(rng):
    """torch.compile(fullgraph=True): the custom op with its activation in the graph,
    forward and gradients as in eager mode."""

    def loss(x, w1, b1, w2, s, w3):
        h = ft.conv2d(x, w1, b1, padding=1, activation="relu")
        h = ft.conv2d(h, w2, None, stride=2, activation="relu6")
        return h.square().mean() + ft.conv1d(s, w3, padding=1, activation="relu").mean()

    shapes = [(2, 3, 8, 8), (4, 3, 3, 3), (4,), (5, 4, 3, 3), (2, 2, 9), (3, 2, 3)]
    tensors = [torch.tensor(rng.standard_normal(s) * 2, requires_grad=True) for s in shapes]
    want = loss(*tensors)
    want_grads = torch.autograd.grad(want, tensors)
    graphs = []
    aot_eager = torch._dynamo.lookup_backend("aot_eager")

    def backend(gm, example_inputs):
        graphs.append(gm)
        return aot_eager(gm, example_inputs)

    compiled = torch.compile(loss, backend=backend, fullgraph=True)
    got = compiled(*tensors)
    got_grads = torch.autograd.grad(got, tensors)
    assert_close(got.detach().numpy(), want.detach().numpy(), np.float64, what="loss")
    for i, (g, w) in enumerate(zip(got_grads, want_grads)):
        assert_close(g.numpy(), w.numpy(), np.float64, what=f"gradient {i}")
    calls = [
        node.args for gm in graphs for node in gm.graph.nodes if "fastnn.conv" in str(node.target)
    ]
    assert sorted(str(args[-1]) for args in calls) == ["relu", "relu", "relu6"]


@pytest.mark.parametrize("through_fastnn", [True, False])
def test_activation_grad_helper_matches_torch(monkeypatch, through_fastnn):
    """The gradient through the activation from its output: relu passes it where y > 0,
    relu6 where 0 < y < 6, both where y is NaN (as torch's threshold_backward and
    hardtanh_backward) -- through fastnn.activation_backward, and for relu6 also through
    the torch-ops fallback used where fastnn's activation_backward lacks relu6."""
    if not through_fastnn:
        monkeypatch.setattr(_conv, "_FASTNN_BACKWARD", frozenset({"relu"}))
    u = torch.tensor([-1.0, 0.0, 0.5, 6.0, 7.0, float("nan")], requires_grad=True)
    g = torch.arange(1.0, 7.0)
    for act, fn in TORCH_ACT.items():
        y = fn(u)
        (want,) = torch.autograd.grad(y, u, g)
        got = _conv.activation_grad(act, g, y.detach())
        assert torch.equal(got, want), act
