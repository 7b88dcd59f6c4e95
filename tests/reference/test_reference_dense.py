"""The reference gemm, linear (with each fused activation) and linear_backward against
PyTorch (``torch.addmm``, ``F.linear`` and autograd) and finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from tests.gradcheck import assert_grad_close, numerical_vjp
from tests.utils import (
    FLOAT_DTYPES,
    assert_close,
    assert_layout_independent,
    import_torch,
    requires_torch,
)

#: Shapes c may take for an (M, N) result, as (name, shape from (m, n)).
C_SHAPES = {
    "full": lambda m, n: (m, n),
    "row": lambda m, n: (n,),
    "row2d": lambda m, n: (1, n),
    "column": lambda m, n: (m, 1),
    "scalar2d": lambda m, n: (1, 1),
    "0d": lambda m, n: (),
}


def _gemm_cases() -> list[tuple]:
    rng = np.random.default_rng(21)
    cases = []
    for trans_a, trans_b in itertools.product((False, True), repeat=2):
        for c_shape in [None, *C_SHAPES]:
            m, k, n = (int(v) for v in rng.integers(1, 7, 3))
            alpha = float(rng.choice([1.0, -0.5, 2.25]))
            beta = float(rng.choice([0.0, 1.0, 0.75]))
            cases.append((m, k, n, trans_a, trans_b, c_shape, alpha, beta))
    cases += [(0, 3, 2, False, False, "full", 1.0, 1.0), (3, 0, 2, True, False, "row", 2.0, 1.0)]
    cases += [(2, 3, 0, False, True, None, 1.0, 0.0)]
    return cases


def _gemm_id(case) -> str:
    m, k, n, ta, tb, c, alpha, beta = case
    return f"m{m}k{k}n{n}-{'T' if ta else 'N'}{'T' if tb else 'N'}-c{c}-a{alpha}-b{beta}"


@requires_torch
@pytest.mark.parametrize("case", _gemm_cases(), ids=_gemm_id)
def test_gemm_matches_torch_addmm(case, rng):
    torch = import_torch()
    m, k, n, trans_a, trans_b, c_shape, alpha, beta = case
    a = rng.standard_normal((k, m) if trans_a else (m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    c = None if c_shape is None else rng.standard_normal(C_SHAPES[c_shape](m, n))
    op_a = torch.tensor(a.T if trans_a else a)
    op_b = torch.tensor(b.T if trans_b else b)
    bias = torch.zeros((m, n), dtype=torch.float64) if c is None else torch.tensor(c)
    want = torch.addmm(bias, op_a, op_b, beta=beta, alpha=alpha).numpy()
    for dtype in FLOAT_DTYPES:
        arrays = [None if v is None else v.astype(dtype) for v in (a, b, c)]
        got = fastnn.gemm(
            *arrays, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, backend="reference"
        )
        assert got.dtype == dtype and got.shape == (m, n)
        assert_close(got, want, dtype, what=_gemm_id(case))


@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_gemm_zero_factors_ignore_their_operands(poison, rng):
    """beta = 0 ignores c, alpha = 0 ignores a and b: NaN and inf in them do not reach the
    result (BLAS and torch.addmm semantics)."""
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    c = rng.standard_normal((3, 5))
    bad_a, bad_c = a.copy(), c.copy()
    bad_a[1, 2] = bad_c[0, 0] = poison
    got = fastnn.gemm(a, b, bad_c, alpha=1.5, beta=0.0, backend="reference")
    assert_close(got, 1.5 * (a @ b))
    got = fastnn.gemm(bad_a, b, c, alpha=0.0, beta=2.0, backend="reference")
    assert_close(got, 2.0 * c)


@requires_torch
@pytest.mark.parametrize("batch", [(), (1,), (5,), (2, 3), (0,)], ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear_matches_torch(batch, activation, bias, rng):
    """Inputs of ndim 1, 2 and 3 (and zero rows) with every fused activation."""
    torch = import_torch()
    x = rng.standard_normal((*batch, 5)) * 2
    w = rng.standard_normal((3, 5))
    b = rng.standard_normal(3) if bias else None
    u = torch.nn.functional.linear(
        torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b)
    )
    want = {None: u, "relu": u.relu(), "sigmoid": u.sigmoid(), "tanh": u.tanh()}[activation]
    for dtype in FLOAT_DTYPES:
        arrays = [None if v is None else v.astype(dtype) for v in (x, w, b)]
        got = fastnn.linear(*arrays, activation=activation, backend="reference")
        assert got.dtype == dtype
        assert_close(got, want.numpy(), dtype, what=f"{batch} {activation}")


@requires_torch
@pytest.mark.parametrize("batch", [(), (1,), (4,), (2, 3), (0,)], ids=str)
def test_linear_backward_matches_torch(batch, rng):
    torch = import_torch()
    x = rng.standard_normal((*batch, 5))
    w = rng.standard_normal((3, 5))
    grad_output = rng.standard_normal((*batch, 3))
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.linear(xt, wt, bt).backward(torch.tensor(grad_output))
    want = (xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy())
    for dtype in FLOAT_DTYPES:
        got = fastnn.linear_backward(
            grad_output.astype(dtype), x.astype(dtype), w.astype(dtype), backend="reference"
        )
        for name, g, ref in zip(("grad_input", "grad_weight", "grad_bias"), got, want):
            assert g.dtype == dtype and g.shape == ref.shape, name
            assert_close(g, ref, dtype, what=f"{batch} {name}")


@pytest.mark.parametrize("mask", list(itertools.product((True, False), repeat=3)), ids=str)
def test_linear_backward_output_mask(mask, rng):
    x, w, g = rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal((4, 3))
    full = fastnn.linear_backward(g, x, w, backend="reference")
    got = fastnn.linear_backward(g, x, w, output_mask=mask, backend="reference")
    for wanted, part, reference in zip(mask, got, full):
        if wanted:
            np.testing.assert_array_equal(part, reference)
        else:
            assert part is None


@pytest.mark.parametrize("batch", [(3,), (2, 2), ()], ids=str)
def test_linear_gradients_match_finite_differences(batch, activation, rng):
    """linear_backward after activation_backward is the gradient of the fused linear."""
    x = rng.standard_normal((*batch, 4))
    w = rng.standard_normal((3, 4))
    b = rng.standard_normal(3)
    y = fastnn.linear(x, w, b, activation=activation, backend="reference")
    grad_output = rng.standard_normal(y.shape)
    numeric = numerical_vjp(
        lambda x_, w_, b_: fastnn.linear(x_, w_, b_, activation=activation, backend="reference"),
        [x, w, b],
        grad_output,
    )
    grad_u = grad_output
    if activation is not None:
        grad_u = fastnn.activation_backward(activation, grad_output, y, backend="reference")
    got = fastnn.linear_backward(grad_u, x, w, backend="reference")
    for name, a, n in zip(("grad_input", "grad_weight", "grad_bias"), got, numeric):
        assert_grad_close(a, n, f"{batch} {activation} {name}")


def test_layouts_give_identical_results(dtype, rng):
    a, b = rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal((5, 4)).astype(dtype)
    c = rng.standard_normal((3, 5)).astype(dtype)
    assert_layout_independent(
        lambda a_, b_, c_: fastnn.gemm(
            a_, b_, c_, alpha=0.5, beta=2.0, trans_a=True, trans_b=True, backend="reference"
        ),
        a,
        b,
        c,
        what="gemm",
    )
    x, w = rng.standard_normal((2, 3, 4)).astype(dtype), rng.standard_normal((5, 4)).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    g = rng.standard_normal((2, 3, 5)).astype(dtype)
    assert_layout_independent(
        lambda x_, w_, b_: fastnn.linear(x_, w_, b_, activation="tanh", backend="reference"),
        x,
        w,
        bias,
        what="linear",
    )
    assert_layout_independent(
        lambda g_, x_, w_: fastnn.linear_backward(g_, x_, w_, backend="reference"),
        g,
        x,
        w,
        what="linear_backward",
    )
