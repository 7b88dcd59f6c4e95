"""fastnn.torch's hardtanh, relu6, leaky_relu, silu, gelu and the in-place variants
(relu too): against torch.nn.functional and autograd, gradcheck in float64, opcheck of
the custom ops, torch.compile(fullgraph=True), torch's in-place autograd semantics, and
the drop-in layers of fastnn/torch/_activation_modules.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.utils import assert_close, import_torch

torch = pytest.importorskip("torch")
import_torch()

from fastnn.torch import _activation as fa  # noqa: E402
from fastnn.torch import _activation_modules as fm  # noqa: E402

F = torch.nn.functional
ops = torch.ops.fastnn
CHEAP = ("test_schema", "test_autograd_registration", "test_faketensor")
FULL = (*CHEAP, "test_aot_dispatch_dynamic")

#: (id, fastnn.torch function, torch function) with the same arguments.
FUNCTIONS = [
    ("relu", lambda x, **kw: fa.relu(x, **kw), lambda x, **kw: F.relu(x, **kw)),
    ("hardtanh", lambda x, **kw: fa.hardtanh(x, -0.5, 2.0, **kw),
     lambda x, **kw: F.hardtanh(x, -0.5, 2.0, **kw)),
    ("hardtanh-default", lambda x, **kw: fa.hardtanh(x, **kw), lambda x, **kw: F.hardtanh(x, **kw)),
    ("relu6", lambda x, **kw: fa.relu6(x, **kw), lambda x, **kw: F.relu6(x, **kw)),
    ("leaky_relu", lambda x, **kw: fa.leaky_relu(x, 0.2, **kw),
     lambda x, **kw: F.leaky_relu(x, 0.2, **kw)),
    ("leaky_relu-0", lambda x, **kw: fa.leaky_relu(x, 0.0, **kw),
     lambda x, **kw: F.leaky_relu(x, 0.0, **kw)),
    ("silu", lambda x, **kw: fa.silu(x, **kw), lambda x, **kw: F.silu(x, **kw)),
]  # fmt: skip
OUT_OF_PLACE = [
    *FUNCTIONS,
    ("leaky_relu-negative", lambda x: fa.leaky_relu(x, -0.3), lambda x: F.leaky_relu(x, -0.3)),
    ("gelu", lambda x: fa.gelu(x), lambda x: F.gelu(x)),
    ("gelu-tanh", lambda x: fa.gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh")),
]
IDS = [f[0] for f in FUNCTIONS]
OUT_IDS = [f[0] for f in OUT_OF_PLACE]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _inputs(rng, dtype):
    """Random tensors of several shapes and layouts (hardtanh's edges included)."""
    for shape in [(1,), (7,), (3, 5), (2, 3, 4, 5)]:
        x = torch.tensor(3 * rng.standard_normal(shape), dtype=dtype)
        x.view(-1)[: min(4, x.numel())] = torch.tensor([0.0, 6.0, -0.5, 2.0], dtype=dtype)[
            : min(4, x.numel())
        ]
        yield x
        if x.dim() >= 2:
            yield x.transpose(0, 1)  # non-contiguous
    yield torch.tensor(3 * rng.standard_normal((6, 8)), dtype=dtype)[:, ::2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name, ours, theirs", OUT_OF_PLACE, ids=OUT_IDS)
def test_functions_match_torch(name, ours, theirs, dtype, rng):
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    for x in _inputs(rng, dtype):
        a = x.detach().clone().requires_grad_()
        b = x.detach().clone().requires_grad_()
        ya, yb = ours(a), theirs(b)
        assert ya.shape == yb.shape and ya.dtype == yb.dtype
        assert_close(ya.detach().numpy(), yb.detach().numpy(), np_dtype, what=name)
        g = torch.tensor(rng.standard_normal(tuple(x.shape)), dtype=dtype)
        ya.backward(g)
        yb.backward(g)
        assert_close(a.grad.numpy(), b.grad.numpy(), np_dtype, what=f"{name} grad")


@pytest.mark.parametrize("name, ours, theirs", OUT_OF_PLACE, ids=OUT_IDS)
def test_gradcheck(name, ours, theirs, rng):
    x = torch.tensor(3 * rng.standard_normal((3, 4)), requires_grad=True)
    # away from the kinks, where finite differences straddle two slopes
    with torch.no_grad():
        for kink in (0.0, -0.5, 2.0, -1.0, 1.0, 6.0):
            near = (x - kink).abs() < 1e-3
            x[near] += 0.01
    assert torch.autograd.gradcheck(ours, (x,))


@pytest.mark.parametrize("name, ours, theirs", FUNCTIONS, ids=IDS)
def test_gradcheck_in_place(name, ours, theirs, rng):
    x = torch.tensor(3 * rng.standard_normal((3, 4)), requires_grad=True)
    with torch.no_grad():
        x[(x.abs() < 1e-3) | ((x - 2.0).abs() < 1e-3) | ((x + 0.5).abs() < 1e-3)] += 0.01
    assert torch.autograd.gradcheck(lambda t: ours(t * 1.0, inplace=True), (x,))


# ---------------------------------------------------------------------------------------
# In-place semantics
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name, ours, theirs", FUNCTIONS, ids=IDS)
def test_in_place_writes_into_the_input(name, ours, theirs, dtype, rng):
    layouts = set()
    for x in _inputs(rng, dtype):
        want = theirs(x.clone())
        mine = x.clone()  # (keeps the strides of a transposed tensor)
        layouts.add(mine.is_contiguous())
        ptr, version = mine.data_ptr(), mine._version
        got = ours(mine, inplace=True)
        assert got is mine and got.data_ptr() == ptr
        assert mine._version > version
        np_dtype = np.float32 if dtype == torch.float32 else np.float64
        assert_close(mine.numpy(), want.numpy(), np_dtype, what=name)
    assert layouts == {True, False}  # both paths: the kernel's out= and copy_ from a strided


@pytest.mark.parametrize("name, ours, theirs", FUNCTIONS, ids=IDS)
def test_in_place_gradient_through_the_graph(name, ours, theirs, rng):
    x = torch.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    xt = x.detach().clone().requires_grad_()
    y = ours(x * 2.0, inplace=True)
    yt = theirs(xt * 2.0, inplace=True)
    g = torch.tensor(rng.standard_normal((4, 5)))
    (y * g).sum().backward()
    (yt * g).sum().backward()
    assert_close(x.grad.numpy(), xt.grad.numpy(), np.float64, what=name)


@pytest.mark.parametrize("name, ours, theirs", FUNCTIONS, ids=IDS)
def test_in_place_on_a_leaf_requiring_grad_raises_before_writing(name, ours, theirs):
    x = torch.linspace(-3, 3, 7, dtype=torch.float64, requires_grad=True)
    before = x.detach().clone()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        theirs(x, inplace=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ours(x, inplace=True)
    assert torch.equal(x.detach(), before)
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        ours(x[2:], inplace=True)
    assert torch.equal(x.detach(), before)
    with torch.no_grad():  # allowed without grad mode, as in torch
        ours(x, inplace=True)
    assert torch.equal(x.detach(), theirs(before))


@pytest.mark.parametrize("name, ours, theirs", FUNCTIONS, ids=IDS)
def test_in_place_on_a_tensor_saved_for_backward_raises_on_backward(name, ours, theirs):
    x = torch.linspace(-3, 3, 7, dtype=torch.float64, requires_grad=True)
    a = x.exp()  # exp saves its output a for its backward
    theirs_a = x.exp()
    theirs(theirs_a, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        theirs_a.sum().backward()
    ours(a, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        a.sum().backward()


def test_leaky_relu_in_place_with_a_negative_slope_refuses_its_backward():
    x = torch.linspace(-3, 3, 7, dtype=torch.float64, requires_grad=True)
    y = fa.leaky_relu(x * 1.0, -0.2, inplace=True)
    with pytest.raises(ValueError, match="negative_slope >= 0"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="negative slope"):  # torch's, for comparison
        F.leaky_relu(x * 1.0, -0.2, inplace=True).sum().backward()


def test_argument_errors():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        fa.hardtanh(x, 1.0, -1.0)
    with pytest.raises(ValueError, match="approximate"):
        fa.gelu(x, "exact")
    with pytest.raises(TypeError, match="inplace must be a bool"):
        fa.relu(x, inplace=1)
    with pytest.raises(TypeError, match="inplace must be a bool"):
        fa.relu6(x, inplace="yes")
    with pytest.raises(ValueError, match="negative_slope must be finite"):
        fa.leaky_relu(x, float("nan"))
    with pytest.raises(TypeError, match="float32 or float64"):
        fa.silu(torch.zeros(3, dtype=torch.int32))


# ---------------------------------------------------------------------------------------
# Custom ops and torch.compile
# ---------------------------------------------------------------------------------------


def _t(*shape, grad=False, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(shape, dtype=torch.float64, generator=g).requires_grad_(grad)


def _opcheck_cases():
    x = _t(2, 3, 4, grad=True)
    y = _t(2, 3, 4)
    return [
        ("pointwise-hardtanh", ops.pointwise, ("hardtanh", x, -0.5, 2.0), FULL),
        ("pointwise-relu", ops.pointwise, ("relu", x, 0.0, 0.0), CHEAP),
        ("pointwise-leaky", ops.pointwise, ("leaky_relu", x, 0.1, 0.0), CHEAP),
        ("pointwise-leaky-negative", ops.pointwise, ("leaky_relu", x, -0.1, 0.0), CHEAP),
        ("pointwise_", ops.pointwise_, ("hardtanh", y.clone(), 0.0, 6.0), CHEAP),
        ("pointwise_backward", ops.pointwise_backward,
         ("leaky_relu", y, F.leaky_relu(y, 0.1), 0.1, 0.0), CHEAP),
        ("silu", ops.silu, (x,), FULL),
        ("silu_backward", ops.silu_backward, (y, y.clone()), CHEAP),
        ("gelu", ops.gelu, (x, "tanh"), FULL),
        ("gelu-none", ops.gelu, (x, "none"), CHEAP),
        ("gelu_backward", ops.gelu_backward, (y, y.clone(), "none"), CHEAP),
    ]  # fmt: skip


OPCHECK_NAMES = [
    "pointwise-hardtanh", "pointwise-relu", "pointwise-leaky", "pointwise-leaky-negative",
    "pointwise_", "pointwise_backward", "silu", "silu_backward", "gelu", "gelu-none",
    "gelu_backward",
]  # fmt: skip


@pytest.mark.parametrize("name", OPCHECK_NAMES)
def test_opcheck(name):
    _, op, args, utils = next(case for case in _opcheck_cases() if case[0] == name)
    torch.library.opcheck(op, args, test_utils=utils)


def _recording_backend(graphs):
    aot_eager = torch._dynamo.lookup_backend("aot_eager")

    def backend(gm, example_inputs):
        graphs.append(gm)
        return aot_eager(gm, example_inputs)

    return backend


class _Tiny(torch.nn.Module):
    def forward(self, x, w):
        h = fa.gelu(x @ w) + fa.gelu(x @ w, "tanh")
        h = fa.silu(fa.hardtanh(h, -0.5, 2.0)) + fa.leaky_relu(h, 0.1) + fa.leaky_relu(h, -0.2)
        h = fa.relu6(h * 3.0, inplace=True)  # in place, on a tensor that needs grad
        return fa.relu(h - 1.0, inplace=True).sum()


def test_compiled_module_matches_eager(rng):
    x = torch.tensor(rng.standard_normal((5, 4)))
    w = torch.tensor(rng.standard_normal((4, 6)), requires_grad=True)
    model = _Tiny()
    want = model(x, w)
    (want_grad,) = torch.autograd.grad(want, [w])
    graphs = []
    compiled = torch.compile(model, backend=_recording_backend(graphs), fullgraph=True)
    got = compiled(x, w)
    (got_grad,) = torch.autograd.grad(got, [w])
    assert_close(got.detach().numpy(), want.detach().numpy(), np.float64)
    assert_close(got_grad.numpy(), want_grad.numpy(), np.float64)
    targets = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    for op in ("pointwise", "silu", "gelu"):
        assert f"fastnn.{op}.default" in targets, op


def test_compiled_in_place_without_grad_mutates_the_input(rng):
    def f(x):
        fa.relu6(x, inplace=True)
        fa.leaky_relu(x, 0.5, inplace=True)
        return x

    x = torch.tensor(rng.standard_normal((4, 7)) * 4)
    want = F.leaky_relu(F.relu6(x.clone()), 0.5)
    graphs = []
    compiled = torch.compile(f, backend=_recording_backend(graphs), fullgraph=True)
    with torch.no_grad():
        got = compiled(x)
    assert torch.equal(x, want) and torch.equal(got, want)
    targets = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    assert "fastnn.pointwise_.default" in targets


# ---------------------------------------------------------------------------------------
# Drop-in layers
# ---------------------------------------------------------------------------------------

LAYERS = [
    (fm.ReLU6, torch.nn.ReLU6, {}),
    (fm.Hardtanh, torch.nn.Hardtanh, {"min_val": -0.5, "max_val": 2.0}),
    (fm.LeakyReLU, torch.nn.LeakyReLU, {"negative_slope": 0.2}),
    (fm.SiLU, torch.nn.SiLU, {}),
    (fm.GELU, torch.nn.GELU, {"approximate": "tanh"}),
    (fm.GELU, torch.nn.GELU, {}),
]


@pytest.mark.parametrize("ours, theirs, kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_drop_in_layers_match_torch(ours, theirs, kwargs, rng):
    assert issubclass(ours, theirs) and ours.unsupported(theirs(**kwargs)) is None
    options = [False, True] if ours is not fm.GELU else [None]
    for inplace in options:
        kw = dict(kwargs) if inplace is None else {**kwargs, "inplace": inplace}
        layer, reference = ours(**kw), theirs(**kw)
        assert vars(layer).keys() == vars(reference).keys()  # nothing added to the instance
        x = torch.tensor(rng.standard_normal((3, 5)) * 3, requires_grad=True)
        xt = x.detach().clone().requires_grad_()
        y, yt = layer(x * 1.0), reference(xt * 1.0)
        assert_close(y.detach().numpy(), yt.detach().numpy(), np.float64)
        y.sum().backward()
        yt.sum().backward()
        assert_close(x.grad.numpy(), xt.grad.numpy(), np.float64)
        h = torch.linspace(-1, 1, 5, dtype=torch.float16)  # not fastnn's: torch runs it
        assert torch.equal(layer(h.clone()), reference(h.clone()))
