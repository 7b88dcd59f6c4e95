"""The reference conv1d / conv2d and their backward against PyTorch and finite differences.

Configurations are drawn from a seeded generator at collection time, so every test id
names the configuration it runs (shapes, stride, padding, dilation, groups).  They cover
odd sizes, stride > 1, int / tuple / "same" (odd and even dilated kernels) / "valid"
padding, dilation, groups including depthwise, and batches of 0, 1 and more.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from tests.conv_cases import ConvCase
from tests.gradcheck import assert_grad_close, numerical_vjp
from tests.utils import assert_close, assert_layout_independent, import_torch, requires_torch

pytestmark = pytest.mark.filterwarnings(
    # PyTorch warns that "same" with an even kernel copies the input; irrelevant here.
    "ignore:Using padding='same':UserWarning"
)

FORWARD = {1: fastnn.conv1d, 2: fastnn.conv2d}
BACKWARD = {1: fastnn.conv1d_backward, 2: fastnn.conv2d_backward}


def _draw(rng: np.random.Generator, nd: int) -> ConvCase:
    """A random small configuration; one in three is depthwise."""
    groups = int(rng.choice([1, 1, 2, 3]))
    depthwise = rng.random() < 1 / 3
    if depthwise:
        in_channels = groups
        out_channels = groups * int(rng.integers(1, 3))
    else:
        in_channels = groups * int(rng.integers(1, 3))
        out_channels = groups * int(rng.integers(1, 3))

    def ints(low: int, high: int):
        values = tuple(int(v) for v in rng.integers(low, high, nd))
        return values if rng.random() < 0.6 else values[0]  # tuple or plain int

    kernel = tuple(int(v) for v in rng.integers(1, 5, nd))
    stride, dilation = ints(1, 4), ints(1, 3)
    style = rng.integers(4)
    if style == 0:
        padding, stride = "same", 1
    elif style == 1:
        padding = "valid"
    else:
        padding = ints(0, 3)
    return ConvCase(
        nd=nd,
        batch=int(rng.choice([0, 1, 1, 2, 3])),
        in_channels=in_channels,
        out_channels=out_channels,
        groups=groups,
        size=tuple(int(v) for v in rng.integers(1, 10, nd)),
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=bool(rng.random() < 0.8),
    )


def _configs(nd: int, count: int, seed: int) -> list[ConvCase]:
    rng = np.random.default_rng(seed)
    found: list[ConvCase] = []
    while len(found) < count:
        conv = _draw(rng, nd)
        if conv.fits():
            found.append(conv)
    return found


#: Hand-picked corners: "same" with even kernels and dilation, depthwise, batch 0 and 1.
SPECIAL = [
    ConvCase(1, 2, 3, 4, 1, (7,), (4,), 1, "same", 1),
    ConvCase(1, 1, 2, 2, 1, (6,), (2,), 1, "same", 3),
    ConvCase(2, 2, 2, 3, 1, (5, 6), (2, 4), 1, "same", (1, 2)),
    ConvCase(2, 1, 3, 2, 1, (6, 5), (3, 2), 1, "same", 2),
    ConvCase(2, 2, 4, 8, 4, (7, 5), (3, 3), (2, 1), (1, 2), 1),  # depthwise, multiplier 2
    ConvCase(2, 0, 3, 6, 3, (5, 5), (3, 3), 2, 1, 1),  # empty batch
    ConvCase(1, 0, 2, 4, 2, (9,), (3,), 2, "valid", 2),
    ConvCase(2, 1, 1, 1, 1, (1, 1), (1, 1), 1, 0, 1),  # 1x1 everything
    ConvCase(2, 3, 2, 2, 1, (9, 8), (3, 3), 3, 2, 2, bias=False),
]

CONFIGS = _configs(1, 40, seed=1) + _configs(2, 50, seed=2) + SPECIAL


def _first(nd: int) -> ConvCase:
    """The first random configuration of ``nd`` dimensions with a non-empty batch."""
    return next(c for c in CONFIGS if c.nd == nd and c.batch > 0)


def _torch(conv: ConvCase, x, w, b, grad_output=None):
    """PyTorch's output and (grad_input, grad_weight, grad_bias) in float64."""
    torch = import_torch()
    fn = torch.nn.functional.conv1d if conv.nd == 1 else torch.nn.functional.conv2d
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bias = b if b is not None else np.zeros(conv.out_channels)
    bt = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    out = fn(xt, wt, bt if b is not None else None, *conv.params)
    grads = None
    if grad_output is not None:
        gy = torch.tensor(grad_output, dtype=torch.float64)
        # A conv without bias still has a bias gradient in our API: grad_output summed.
        out_b = fn(xt, wt, bt, *conv.params)
        out_b.backward(gy)
        grads = (xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy())
    return out.detach().numpy(), grads


@requires_torch
@pytest.mark.parametrize("conv", CONFIGS, ids=str)
def test_forward_matches_torch(conv: ConvCase, rng):
    x, w, b = conv.arrays(rng, np.float64)
    want, _ = _torch(conv, x, w, b)
    for dtype in (np.float64, np.float32):
        cast = [None if a is None else a.astype(dtype) for a in (x, w, b)]
        got = FORWARD[conv.nd](*cast, *conv.params, backend="reference")
        assert got.dtype == dtype
        assert got.shape == want.shape
        assert_close(got, want, dtype, what=f"{conv} {np.dtype(dtype).name}")


@requires_torch
@pytest.mark.parametrize("conv", CONFIGS, ids=str)
def test_backward_matches_torch(conv: ConvCase, rng):
    x, w, b = conv.arrays(rng, np.float64)
    out, _ = _torch(conv, x, w, b)
    grad_output = rng.standard_normal(out.shape)
    _, want = _torch(conv, x, w, b, grad_output)
    for dtype in (np.float64, np.float32):
        got = BACKWARD[conv.nd](
            grad_output.astype(dtype),
            x.astype(dtype),
            w.astype(dtype),
            *conv.params,
            backend="reference",
        )
        for name, g, ref in zip(("grad_input", "grad_weight", "grad_bias"), got, want):
            assert g.dtype == dtype, name
            assert_close(g, ref, dtype, what=f"{conv} {name} {np.dtype(dtype).name}")


def test_same_padding_keeps_the_size():
    """ "same" keeps every spatial size for odd and even (dilated) kernels."""
    x = np.ones((1, 1, 7, 8))
    for kh, kw, dh, dw in itertools.product((1, 2, 3, 4), (2, 5), (1, 2), (1, 3)):
        w = np.ones((1, 1, kh, kw))
        y = fastnn.conv2d(x, w, None, 1, "same", (dh, dw), backend="reference")
        assert y.shape == x.shape, (kh, kw, dh, dw)


def test_empty_batch_gives_empty_output_and_zero_parameter_gradients():
    x = np.zeros((0, 4, 6, 5))
    w = np.ones((6, 2, 3, 2))
    y = fastnn.conv2d(x, w, np.ones(6), 2, 1, 1, 2, backend="reference")
    assert y.shape == (0, 6, 3, 3)
    gx, gw, gb = fastnn.conv2d_backward(np.zeros(y.shape), x, w, 2, 1, 1, 2, backend="reference")
    assert gx.shape == x.shape
    np.testing.assert_array_equal(gw, np.zeros(w.shape))
    np.testing.assert_array_equal(gb, np.zeros(6))


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("mask", list(itertools.product((True, False), repeat=3)), ids=str)
def test_output_mask(nd, mask, rng):
    """Masked gradients are None; the others equal those of the full call."""
    conv = _first(nd)
    x, w, _ = conv.arrays(rng, np.float64)
    out = FORWARD[nd](x, w, None, *conv.params, backend="reference")
    grad_output = rng.standard_normal(out.shape)
    full = BACKWARD[nd](grad_output, x, w, *conv.params, backend="reference")
    got = BACKWARD[nd](grad_output, x, w, *conv.params, output_mask=mask, backend="reference")
    assert len(got) == 3
    for wanted, g, f in zip(mask, got, full):
        if wanted:
            np.testing.assert_array_equal(g, f)
        else:
            assert g is None


#: Tiny configurations for the finite-difference checks (two forward calls per element).
TINY = [
    ConvCase(1, 2, 2, 3, 1, (7,), (3,), 2, 1, 2),
    ConvCase(1, 1, 4, 2, 2, (6,), (2,), 1, "same", 3),
    ConvCase(2, 1, 2, 2, 2, (5, 6), (2, 3), (2, 1), (1, 0), (1, 2)),
    ConvCase(2, 2, 3, 3, 3, (4, 5), (3, 2), 1, "same", 1),  # depthwise, even kernel
    ConvCase(2, 1, 1, 2, 1, (6, 6), (2, 2), 3, "valid", 2),
]


@pytest.mark.parametrize("conv", TINY, ids=str)
def test_backward_matches_finite_differences(conv: ConvCase, rng):
    x, w, b = conv.arrays(rng, np.float64)
    forward = FORWARD[conv.nd]
    grad_output = rng.standard_normal(forward(x, w, b, *conv.params, backend="reference").shape)
    numeric = numerical_vjp(
        lambda x_, w_, b_: forward(x_, w_, b_, *conv.params, backend="reference"),
        [x, w, b],
        grad_output,
    )
    analytic = BACKWARD[conv.nd](grad_output, x, w, *conv.params, backend="reference")
    for name, a, n in zip(("grad_input", "grad_weight", "grad_bias"), analytic, numeric):
        assert_grad_close(a, n, f"{conv} {name}")


@pytest.mark.parametrize("conv", [_first(1), _first(2), *TINY[2:4]], ids=str)
def test_layouts_give_identical_results(conv: ConvCase, dtype, rng):
    """Fortran, strided and negative-stride inputs give the contiguous result, outputs are
    fresh C-contiguous arrays and inputs are left untouched."""
    x, w, b = conv.arrays(rng, dtype, bias=True)
    out = FORWARD[conv.nd](x, w, b, *conv.params, backend="reference")
    grad_output = rng.standard_normal(out.shape)
    grad_output = grad_output.astype(dtype)
    assert_layout_independent(
        lambda x_, w_, b_: FORWARD[conv.nd](x_, w_, b_, *conv.params, backend="reference"),
        x,
        w,
        b,
        what=f"forward {conv}",
    )
    assert_layout_independent(
        lambda g_, x_, w_: BACKWARD[conv.nd](g_, x_, w_, *conv.params, backend="reference"),
        grad_output,
        x,
        w,
        what=f"backward {conv}",
    )
