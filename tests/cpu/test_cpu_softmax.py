"""The CPU softmax / log_softmax and their backward along every dim, against the float64
reference backend and PyTorch: 0-d to 4-d inputs, empty dims, rows of length 1, large
magnitudes (stability), -inf entries (masking), NaN/+inf rows, slabs wide enough to be cut
into column chunks and threads, rows long enough to shrink the row kernels' blocks, and
every memory layout."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.utils import (
    FLOAT_DTYPES,
    assert_close,
    assert_layout_independent,
    import_torch,
    requires_torch,
)

OPS = ["softmax", "log_softmax"]
SHAPES = [
    (),
    (1,),
    (7,),
    (5, 1),
    (3, 8),
    (2, 3, 4, 5),
    (4, 0, 3),
    (3, 700, 40),
    (2000, 33),
    (37, 10),
    (19, 300),  # rows too long for 16 a block in L1: blocks of 2-6 rows and a remainder
    (5, 1500),  # a row a block
]


def _cases():
    for shape in SHAPES:
        for dim in range(-len(shape), len(shape)) if shape else [0, -1]:
            yield shape, dim


@pytest.mark.parametrize("shape,dim", list(_cases()), ids=str)
@pytest.mark.parametrize("op", OPS)
def test_forward_and_backward_match_reference(op, shape, dim, dtype, rng):
    x = (5 * rng.standard_normal(shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    forward, backward = getattr(fastnn, op), getattr(fastnn, f"{op}_backward")
    want = forward(x, dim, backend="reference")
    got = forward(x, dim)
    assert got.dtype == dtype and got.shape == x.shape and got.flags.c_contiguous
    assert_close(got, want, dtype, what="forward")
    assert_close(backward(g, want, dim), backward(g, want, dim, backend="reference"), dtype)


@pytest.mark.parametrize("op", OPS)
def test_stable_for_huge_magnitudes_and_masks(op, dtype, rng):
    x = (1e4 * rng.standard_normal((6, 50))).astype(dtype)
    x[0] = 3e4 + rng.standard_normal(50).astype(dtype)  # all large, close together
    x[1, ::2] = -np.inf  # masked entries
    for dim in (0, 1):
        with np.errstate(invalid="ignore"):
            want = getattr(fastnn, op)(x, dim, backend="reference")
        got = getattr(fastnn, op)(x, dim)
        assert_close(got, want, dtype)
        assert np.isfinite(got[np.isfinite(x)]).all()  # no overflow, no NaN
    probs = fastnn.softmax(x, 1)
    assert (probs[1, ::2] == 0).all()


@pytest.mark.parametrize("op", OPS)
def test_nan_and_inf_rows_give_nan_as_in_torch(op):
    x = np.array([[np.nan, 1.0, 2.0], [np.inf, 1.0, 2.0], [-np.inf, -np.inf, -np.inf]])
    got = getattr(fastnn, op)(x)
    assert np.isnan(got).all()


@pytest.mark.parametrize("width", (8, 9, 16, 33, 511, 512, 513))
@pytest.mark.parametrize("op", OPS)
def test_nan_and_inf_anywhere_in_rows_of_vector_width(op, width, dtype, rng):
    """Rows wide enough for the vector reductions (lanes, then a shuffle tree; the tail
    element by element): a NaN or +inf in the lanes or in the tail makes the row NaN,
    and the other rows stay exact."""
    x = rng.standard_normal((6, width)).astype(dtype)
    x[0, 0] = np.nan
    x[1, width - 1] = np.nan
    x[2, width // 2] = np.inf
    x[3, width - 1] = np.inf
    x[4, :] = -np.inf
    with np.errstate(invalid="ignore"):
        got = getattr(fastnn, op)(x)
        want = getattr(fastnn, op)(x, backend="reference")
    assert np.isnan(got[:5]).all()
    assert_close(got[5], want[5], dtype)


@pytest.mark.parametrize("op", OPS)
def test_every_memory_layout(op, rng):
    x = rng.standard_normal((5, 6, 7)).astype(np.float32)
    g = rng.standard_normal((5, 6, 7)).astype(np.float32)
    for dim in (0, 1, 2):
        y = getattr(fastnn, op)(x, dim)
        assert_layout_independent(lambda a, d=dim: getattr(fastnn, op)(a, d), x, what=op)
        assert_layout_independent(
            lambda a, b, d=dim: getattr(fastnn, f"{op}_backward")(a, b, d), g, y, what=op
        )


@requires_torch
@pytest.mark.parametrize("op", OPS)
def test_matches_torch_autograd(op, rng):
    torch = import_torch()
    fn = getattr(torch.nn.functional, op)
    for shape, dim in [((4, 9), 1), ((3, 5, 6), 0), ((2, 7, 3, 4), 1)]:
        x = 3 * rng.standard_normal(shape)
        g = rng.standard_normal(shape)
        t = torch.tensor(x, requires_grad=True)
        y = fn(t, dim=dim)
        y.backward(torch.tensor(g))
        for dtype in FLOAT_DTYPES:
            got = getattr(fastnn, op)(x.astype(dtype), dim)
            assert_close(got, y.detach().numpy(), dtype)
            grad = getattr(fastnn, f"{op}_backward")(g.astype(dtype), got, dim)
            assert_close(grad, t.grad.numpy(), dtype)
