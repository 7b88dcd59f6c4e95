"""conv1d / conv2d with a fused activation (``activation="relu"`` / ``"relu6"``) on the CPU:
every algorithm forced explicitly -- im2col (one-image tiles and several-image tiles),
the row-direct kernel (few output channels), the channel-blocked kernel (16 or more per
group; weights packed up front and just in time), Winograd F(2/4/6, 3), depthwise plane
by plane and channels in lanes -- at every instruction-set level this CPU runs, float32
and float64, with and without bias, against the float64 reference convolution followed
by the activation (and PyTorch).  A spy on each algorithm's host wrapper checks that
the intended kernel ran and was handed the activation (so the activation is fused, not
a later pass).  Also: NaN and inf propagation, odd sizes, batch 1, non-contiguous
inputs, 1-D, "auto" (the tuned choice does not depend on the activation) and the
argument check."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import fastnn
from fastnn import _isa
from fastnn._backends.cpu import (
    _conv_blocked,
    _conv_choice,
    _conv_depthwise,
    _conv_direct,
    _conv_im2col,
    _conv_plan,
    _conv_winograd,
)
from tests.conv_cases import valid_layer
from tests.utils import HAS_TORCH, assert_close, import_torch, layouts

ACTS = ("relu", "relu6")
CODES = {None: 0, "relu": 1, "relu6": 4}
MODULES = {
    "im2col": _conv_im2col,
    "direct": _conv_direct,
    "blocked": _conv_blocked,
    "winograd": _conv_winograd,
    "depthwise": _conv_depthwise,
}


def activate(name: str | None, y: np.ndarray) -> np.ndarray:
    """The expected activation, NaN kept (np.maximum / np.minimum propagate it)."""
    y = np.asarray(y, dtype=np.float64)
    if name == "relu":
        return np.maximum(y, 0.0)
    if name == "relu6":
        return np.minimum(np.maximum(y, 0.0), 6.0)
    return y


@pytest.fixture
def spy(monkeypatch):
    """Records (algorithm, activation code) for every forward call of a host wrapper."""
    calls: list[tuple[str, int]] = []
    for name, module in MODULES.items():
        original = module.forward

        signature = inspect.signature(original)

        def wrapped(*args, _name=name, _original=original, _sig=signature, **kwargs):
            bound = _sig.bind(*args, **kwargs)
            bound.apply_defaults()
            if _name == "depthwise":
                _name += "-lanes" if bound.arguments["lanes"] else "-planes"
            calls.append((_name, bound.arguments["act"]))
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, "forward", wrapped)
    return calls


def conv_fn(nd: int):
    return fastnn.conv1d if nd == 1 else fastnn.conv2d


def random_layer(rng, nd: int, kg_choices, cg_choices=(1, 2, 3, 5), depthwise=False):
    """((n, c, k, size, kernel), (stride, padding, dilation, groups)) of a valid layer."""
    while True:
        n = int(rng.choice([1, 1, 2, 3]))
        if depthwise:
            c = int(rng.integers(2, 9))
            g, cg, kg = c, 1, int(rng.choice([1, 2]))
        else:  # not depthwise: one input channel per group only without groups
            g = int(rng.choice([1, 1, 2]))
            cg, kg = int(rng.choice(cg_choices)), int(rng.choice(kg_choices))
            cg = max(cg, 2) if g > 1 else cg
        size = tuple(int(v) for v in rng.integers(1, 14, size=nd))
        kernel = tuple(int(v) for v in rng.integers(1, 5, size=nd))
        stride = tuple(int(v) for v in rng.choice([1, 1, 2], size=nd))
        dilation = tuple(int(v) for v in rng.choice([1, 1, 2], size=nd))
        padding: object = tuple(int(rng.integers(0, k + 1)) for k in kernel)
        if rng.random() < 0.15:
            padding, stride = "same", (1,) * nd
        layer = valid_layer(n, g, cg, kg, size, kernel, stride, padding, dilation)
        if layer is not None:
            return layer


def layer_arrays(rng, dims, groups, dtype, bias=True):
    """Input, weight and bias scaled so that the outputs spread over about [-12, 12]:
    plenty below 0 and above 6."""
    n, c, k, size, kernel = dims
    fan_in = (c // groups) * math.prod(kernel)
    x = rng.standard_normal((n, c, *size)).astype(dtype)
    w = (rng.standard_normal((k, c // groups, *kernel)) * 6 / math.sqrt(fan_in)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype) if bias else None
    return x, w, b


def check_layer(x, w, b, params, nd, algo, act, what):
    """conv(..., activation=act) against the reference conv, then the activation.  NaN
    must reach exactly the outputs the reference has NaN in (Winograd, which mixes the
    inputs of a tile, may spread it over the rest of that tile)."""
    fn = conv_fn(nd)
    want = activate(act, fn(x, w, b, *params, backend="reference"))
    got = fn(x, w, b, *params, algo=algo, activation=act, backend="cpu")
    assert got.dtype == x.dtype and got.flags.c_contiguous
    if algo.startswith("winograd"):
        assert np.isnan(got[np.isnan(want)]).all(), what
        finite = ~np.isnan(got)
        assert_close(got[finite], want[finite], x.dtype, what=what)
    else:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=what)
        assert_close(got, want, x.dtype, what=what)
    return want


def run_cases(rng, spy, kind, nd, dtype, algo, count=4, **layer):
    """``count`` random layers x both activations x with / without bias; the spy must
    show that ``kind`` ran with the activation's code."""
    clamped = {"relu": False, "relu6": False}
    for i in range(count):
        dims, params = random_layer(rng, nd, **layer)
        for act in ACTS:
            x, w, b = layer_arrays(rng, dims, params[3], dtype, bias=i % 2 == 0)
            spy.clear()
            want = check_layer(x, w, b, params, nd, algo, act, f"{kind} {act} {dims} {params}")
            assert spy == [(kind, CODES[act])], spy
            clamped[act] |= bool((want == 0).any()) and (act == "relu" or (want == 6).any())
    assert all(clamped.values()), "the cases must reach both clamps"


@pytest.mark.parametrize("nd", (1, 2))
@pytest.mark.parametrize("tile", (None, 5, 10_000))
def test_im2col(rng, spy, nd, dtype, tile):
    """im2col + GEMM: the activation over each tile's GEMM output (one-image tiles) or
    in the copy-out of several-image tiles (tile 10_000: whole images side by side)."""
    with _conv_plan.chunking(tile=tile):
        run_cases(rng, spy, "im2col", nd, dtype, "im2col", kg_choices=(1, 3, 8, 17))


@pytest.mark.parametrize("nd", (1, 2))
def test_row_direct_every_level(rng, spy, nd, dtype):
    """The row kernel (fewer than 16 output channels per group): the activation on the
    accumulators before the micro-kernel's store, at every instruction-set level."""
    for level in _isa.supported():
        with _isa.forced("conv_direct", level):
            run_cases(rng, spy, "direct", nd, dtype, "direct", count=3, kg_choices=(1, 3, 7))


@pytest.mark.parametrize("nd", (1, 2))
@pytest.mark.parametrize("jit", (False, True))
def test_blocked_every_level(rng, spy, nd, dtype, jit, monkeypatch):
    """The channel-blocked kernel (16 or more output channels per group): the activation
    as the partial sums are transposed out, weights packed up front or just in time."""
    if jit:
        original = _conv_blocked.plan
        monkeypatch.setattr(
            _conv_blocked, "plan", lambda *a, **k: original(*a, **k)._replace(jit=True, kc=1)
        )
    for level in _isa.supported():
        with _isa.forced("conv_blocked", level):
            run_cases(rng, spy, "blocked", nd, dtype, "direct", count=3, kg_choices=(16, 19, 33))


@pytest.mark.parametrize("m", (2, 4, 6))
def test_winograd_every_level(rng, spy, dtype, m):
    """Winograd F(m x m, 3 x 3): the activation in the output transform."""
    for level in _isa.supported():
        with _isa.forced("winograd", level):
            for i in range(3):
                n, c, k = int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 21))
                pad = int(rng.integers(0, 3))
                hw = tuple(int(v) for v in rng.integers(max(1, 3 - 2 * pad), 16, size=2))
                x, w, b = layer_arrays(rng, (n, c, k, hw, (3, 3)), 1, dtype, bias=i != 1)
                for act in ACTS:
                    spy.clear()
                    check_layer(x, w, b, (1, pad), 2, f"winograd{m}", act, f"F({m}) {level}")
                    assert spy == [("winograd", CODES[act])], spy


@pytest.fixture(params=["planes", "lanes"])
def depthwise_variant(request, monkeypatch):
    """Each depthwise variant as the one algo="direct" runs."""
    monkeypatch.setattr(_conv_choice, "prefer_lanes", lambda geom: request.param == "lanes")
    return request.param


@pytest.mark.parametrize("nd", (1, 2))
def test_depthwise_every_level(rng, spy, nd, dtype, depthwise_variant):
    """Depthwise layers (groups = channels): the activation where the plane-by-plane
    kernel writes its rows out, or on the accumulators of the channels-in-lanes kernel."""
    family = "depthwise_lanes" if depthwise_variant == "lanes" else "depthwise"
    for level in _isa.supported():
        with _isa.forced(family, level):
            run_cases(rng, spy, f"depthwise-{depthwise_variant}", nd, dtype, "direct",
                      count=3, kg_choices=(1,), depthwise=True)  # fmt: skip


LAYERS = {  # (dims, params) of one layer per algorithm
    "im2col": ((2, 3, 5, (9, 7), (3, 2)), ((2, 1), 1, 1, 1)),
    "direct": ((2, 3, 5, (9, 7), (3, 2)), ((2, 1), 1, 1, 1)),
    "blocked": ((2, 3, 20, (9, 7), (3, 3)), (1, 1, 1, 1)),
    "winograd4": ((2, 3, 6, (9, 7), (3, 3)), (1, 1, 1, 1)),
    "depthwise-lanes": ((2, 4, 8, (9, 7), (3, 3)), (1, 1, 1, 4)),
    "depthwise-planes": ((2, 4, 8, (9, 7), (3, 3)), (1, 1, 1, 4)),
}


def _algo(kind: str, monkeypatch) -> str:
    """The ``algo=`` that runs ``kind`` (the depthwise variant forced)."""
    if kind.startswith("depthwise"):
        lanes = kind == "depthwise-lanes"
        monkeypatch.setattr(_conv_choice, "prefer_lanes", lambda geom: lanes)
    return "direct" if kind.startswith(("blocked", "depthwise")) else kind


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("act", ACTS)
def test_nan_and_inf_propagate(rng, spy, kind, act, monkeypatch):
    """NaN in the input reaches exactly the outputs whose window reads it and stays NaN
    through the activation; +inf and -inf in the bias give 6 / inf and 0."""
    dims, params = LAYERS[kind]
    x, w, b = layer_arrays(rng, dims, params[3], np.float32)
    x[0, 0, 4, 3] = np.nan
    b[0], b[1] = np.inf, -np.inf
    spy.clear()
    want = check_layer(x, w, b, params, 2, _algo(kind, monkeypatch), act, f"{kind} nan")
    assert spy == [(kind.replace("winograd4", "winograd"), CODES[act])]
    assert np.isnan(want).any() and (want == 0).any()


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_non_contiguous_inputs(rng, kind, monkeypatch):
    """Fortran order, strided and negative-stride inputs and weights."""
    dims, params = LAYERS[kind]
    x, w, b = layer_arrays(rng, dims, params[3], np.float64)
    algo = _algo(kind, monkeypatch)
    for (name, xv), (_, wv) in zip(layouts(x), layouts(w)):
        for act in ACTS:
            check_layer(xv, wv, b[::-1].copy()[::-1], params, 2, algo, act, name)


def test_transposed_input(rng):
    """An input that is a transposed view (H and W swapped)."""
    x = rng.standard_normal((2, 4, 7, 9)).astype(np.float32)
    w = rng.standard_normal((18, 4, 3, 3)).astype(np.float32)
    for algo in ("im2col", "direct", "winograd", "auto"):
        for act in ACTS:
            check_layer(x.transpose(0, 1, 3, 2), w, None, (1, 1), 2, algo, act, algo)


@pytest.mark.parametrize("act", (None, *ACTS))
def test_auto_choice_does_not_depend_on_the_activation(rng, spy, act):
    """With autotuning on, "auto" with an activation matches the reference, and the
    choice it measured serves the same layer without (or with another) activation: the
    second call times nothing (one forward call) and runs the same algorithm."""
    fastnn.autotune(True)
    hw = (int(rng.integers(11, 30)), int(rng.integers(11, 30)))  # a shape not tuned yet
    x, w, b = layer_arrays(rng, (2, 8, 24, hw, (3, 3)), 1, np.float32)
    spy.clear()
    check_layer(x, w, b, (1, 1), 2, "auto", act, "auto first")
    assert len(spy) > 1 and {code for _, code in spy} == {CODES[act]}
    chosen = spy[-1][0]
    for other in (None, *ACTS):
        spy.clear()
        check_layer(x, w, b, (1, 1), 2, "auto", other, "auto again")
        assert spy == [(chosen, CODES[other])]


def test_none_is_the_plain_convolution(rng):
    """activation=None gives exactly the convolution without the keyword."""
    x, w, b = layer_arrays(rng, (2, 3, 20, (9, 7), (3, 3)), 1, np.float32)
    for algo in ("im2col", "direct", "winograd", "auto"):
        np.testing.assert_array_equal(
            fastnn.conv2d(x, w, b, 1, 1, algo=algo, activation=None),
            fastnn.conv2d(x, w, b, 1, 1, algo=algo),
        )


@pytest.mark.parametrize("bad", ("sigmoid", "tanh", "RELU", 1, ""))
@pytest.mark.parametrize("nd", (1, 2))
def test_bad_activation_is_refused(rng, bad, nd):
    x = np.zeros((1, 2, *(5,) * nd), np.float32)
    w = np.zeros((3, 2, *(3,) * nd), np.float32)
    for backend in ("reference", "cpu"):
        with pytest.raises(ValueError, match="activation"):
            conv_fn(nd)(x, w, activation=bad, backend=backend)


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("nd", (1, 2))
def test_matches_torch(rng, nd):
    torch = import_torch()
    import torch.nn.functional as F

    torch_conv = F.conv1d if nd == 1 else F.conv2d
    for _ in range(6):
        dims, (stride, padding, dilation, g) = random_layer(rng, nd, kg_choices=(2, 16))
        x, w, b = layer_arrays(rng, dims, g, np.float32)
        for act, fn in (("relu", F.relu), ("relu6", F.relu6)):
            want = fn(torch_conv(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                 stride, padding, dilation, g))  # fmt: skip
            got = conv_fn(nd)(x, w, b, stride, padding, dilation, g, activation=act)
            assert_close(got, want.numpy(), np.float32, what=f"{act} {dims}")
