"""The CPU losses (mse, binary cross-entropy, cross-entropy over logits) and their
gradients against the float64 reference backend and PyTorch: every reduction, empty
inputs, BCE at p = 0 and 1 (clamped logs, finite values), integer targets of several
dtypes, sizes large enough to run on several threads, and every memory layout."""

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

POINTWISE = ["mse_loss", "binary_cross_entropy"]
SHAPES = [(0,), (1,), (7,), (3, 5), (2, 3, 4), (300, 500)]


def _pair(rng, op, shape, dtype):
    if op == "mse_loss":
        return (3 * rng.standard_normal(shape)).astype(dtype), rng.standard_normal(shape).astype(
            dtype
        )
    p = rng.random(shape).astype(dtype)
    if p.size >= 4:
        p.reshape(-1)[:4] = [0.0, 1.0, 1e-30, 1.0 - 1e-7]
    return p, rng.random(shape).astype(dtype)


def _check(got, want, dtype):
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    assert_close(got, want, dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op", POINTWISE)
def test_pointwise_losses_match_reference(op, reduction, shape, dtype, rng):
    x, t = _pair(rng, op, shape, dtype)
    forward, backward = getattr(fastnn, op), getattr(fastnn, f"{op}_backward")
    with np.errstate(invalid="ignore", divide="ignore"):
        want = forward(x, t, reduction, backend="reference")
        want_grad = backward(x, t, reduction, backend="reference")
    _check(forward(x, t, reduction), want, dtype)
    _check(backward(x, t, reduction), want_grad, dtype)


def test_bce_is_finite_at_zero_and_one():
    p = np.array([0.0, 1.0, 0.0, 1.0], dtype=np.float32)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32)
    loss = fastnn.binary_cross_entropy(p, t, "none")
    np.testing.assert_allclose(loss, [100.0, 100.0, 0.0, 0.0])
    assert np.isfinite(fastnn.binary_cross_entropy_backward(p, t, "sum")).all()


@pytest.mark.parametrize("shape", [(0, 4), (1, 1), (5, 7), (64, 1000)], ids=str)
def test_cross_entropy_matches_reference(reduction, shape, dtype, rng):
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    for index_dtype in (np.int64, np.int32, np.uint8):
        t = rng.integers(0, shape[1], shape[0]).astype(index_dtype)
        with np.errstate(invalid="ignore"):
            want = fastnn.cross_entropy(x, t, reduction, backend="reference")
            want_grad = fastnn.cross_entropy_backward(x, t, reduction, backend="reference")
        _check(fastnn.cross_entropy(x, t, reduction), want, dtype)
        _check(fastnn.cross_entropy_backward(x, t, reduction), want_grad, dtype)


def test_cross_entropy_is_stable_for_huge_logits():
    x = np.array([[1e4, -1e4, 0.0], [3e4, 3e4 + 1, 3e4 - 1]], dtype=np.float32)
    t = np.array([1, 2])
    got = fastnn.cross_entropy(x, t, "none")
    assert_close(got, fastnn.cross_entropy(x, t, "none", backend="reference"))


def test_cross_entropy_kernel_guards_its_indices(rng):
    """The Python layer rejects bad targets; the kernel entry point checks again so a
    direct call cannot read out of bounds."""
    from fastnn.kernels.cpu import loss as k

    x = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match="class indices"):
        k.cross_entropy(x, np.array([0, 4, 1]), k.MEAN, 1)
    with pytest.raises(ValueError, match="class indices"):
        k.cross_entropy_backward(x, np.array([-1, 0, 1]), k.MEAN, 1)


@pytest.mark.parametrize("op", POINTWISE)
def test_every_memory_layout(op, rng):
    x, t = _pair(rng, op, (6, 9), np.float32)
    for reduction in ("none", "sum"):
        assert_layout_independent(lambda a, b, r=reduction: getattr(fastnn, op)(a, b, r), x, t)
        assert_layout_independent(
            lambda a, b, r=reduction: getattr(fastnn, f"{op}_backward")(a, b, r), x, t
        )
    logits = rng.standard_normal((6, 9))
    target = rng.integers(0, 9, 6)
    assert_layout_independent(lambda a: fastnn.cross_entropy(a, target, "none"), logits)
    assert_layout_independent(lambda a: fastnn.cross_entropy_backward(a, target, "mean"), logits)


@requires_torch
def test_match_torch_autograd(reduction, rng):
    torch = import_torch()
    F = torch.nn.functional
    x, t = 3 * rng.standard_normal((8, 5)), rng.standard_normal((8, 5))
    p, q = rng.random((8, 5)), rng.random((8, 5))
    logits, classes = 3 * rng.standard_normal((8, 5)), rng.integers(0, 5, 8)
    cases = [
        ("mse_loss", F.mse_loss, x, t),
        ("binary_cross_entropy", F.binary_cross_entropy, p, q),
        ("cross_entropy", F.cross_entropy, logits, classes),
    ]
    for name, fn, a, b in cases:
        ta = torch.tensor(a, requires_grad=True)
        tb = torch.tensor(b)
        loss = fn(ta, tb, reduction=reduction)
        (loss.sum() if reduction == "none" else loss).backward()
        for dtype in FLOAT_DTYPES:
            target = b if name == "cross_entropy" else b.astype(dtype)
            assert_close(
                getattr(fastnn, name)(a.astype(dtype), target, reduction),
                loss.detach().numpy(),
                dtype,
            )
            if reduction != "none":  # our "none" backward is d sum / d input
                grad = getattr(fastnn, f"{name}_backward")(a.astype(dtype), target, reduction)
                assert_close(grad, ta.grad.numpy(), dtype)


def test_bce_logs_are_exact_to_an_ulp_or_two_over_the_whole_range(dtype):
    """The vectorised log / log1p of the BCE kernel against NumPy's, element by element,
    from the smallest subnormal to 1 - eps, with the clamp at -100 at both ends."""
    rng = np.random.default_rng(3)
    tiny = np.finfo(dtype).smallest_subnormal
    eps = np.finfo(dtype).eps
    p = np.concatenate(
        [
            10.0 ** rng.uniform(np.log10(tiny), 0, 20000),
            rng.random(20000),
            1 - 10.0 ** rng.uniform(np.log10(eps), -1, 5000),
            [0.0, tiny, eps, 0.5, 1 - eps, 1.0],
        ]
    ).astype(dtype)
    p = np.clip(p, 0, 1)
    wide = p.astype(np.float64)
    with np.errstate(divide="ignore"):
        want_pos = np.minimum(-np.log(wide), 100.0)
        want_neg = np.minimum(-np.log1p(-wide), 100.0)
    got_pos = fastnn.binary_cross_entropy(p, np.ones_like(p), reduction="none")
    got_neg = fastnn.binary_cross_entropy(p, np.zeros_like(p), reduction="none")
    for got, want in ((got_pos, want_pos), (got_neg, want_neg)):
        want_t = want.astype(dtype)
        # float64: within 4 ulp of NumPy's libm; float32: rounded from double, within 1 ulp
        ulps = 4 if dtype == np.float64 else 1
        spacing = np.spacing(np.abs(want_t)).astype(np.float64)
        err = np.abs(got.astype(np.float64) - want_t.astype(np.float64))
        assert np.all(err <= ulps * spacing), float(np.max(err / np.maximum(spacing, 1e-300)))
    assert got_pos[-6] == 100.0 and got_neg[-1] == 100.0  # log(0) clamped at -100
