"""Dropout and the fused residual add: the cpu kernels against the float64 reference (the
same seed gives the same mask, bit for bit, whatever the thread count or layout), the
statistics of the counter-based stream (keep rate within binomial bounds, neighbours and
nearby seeds independent; fixed seeds, so deterministic), the backward pass, the eval /
p = 0 paths, PyTorch's formulas, and argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from tests.utils import (
    assert_close,
    assert_layout_independent,
    import_torch,
    layouts,
    requires_torch,
)

BACKENDS = ["reference", "cpu"]
SHAPES = [(), (0,), (1,), (7,), (3, 5, 4), (2, 3, 0), (300, 501)]


def _within_binomial(count: int, n: int, q: float, sigmas: float = 6.0) -> bool:
    return abs(count - n * q) <= sigmas * math.sqrt(n * q * (1 - q))


# ---------------------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_same_seed_same_mask_as_reference(rng, dtype, shape, threads):
    x = rng.standard_normal(shape).astype(dtype)
    for p in (0.1, 0.5, 0.875):
        y, mask = fastnn.dropout(x, p, generator=1234, backend="cpu")
        want_y, want_mask = fastnn.dropout(x, p, generator=1234, backend="reference")
        assert mask.dtype == np.uint8 and mask.shape == x.shape
        np.testing.assert_array_equal(mask, want_mask)
        assert y.dtype == dtype and y.shape == x.shape and y.flags.c_contiguous
        assert_close(y, want_y, dtype)
        expected = x.astype(np.float64) * mask / (1 - p)
        assert_close(y, expected, dtype)


def test_mask_does_not_depend_on_threads_or_layout(rng):
    x = rng.standard_normal((400, 333))  # > 2 * 2**16 elements: split over threads
    before = fastnn.get_num_threads()
    try:
        masks = []
        for t in (1, 2, 3):
            fastnn.set_num_threads(t)
            masks.append(fastnn.dropout(x, 0.3, generator=7)[1])
    finally:
        fastnn.set_num_threads(before)
    for m in masks[1:]:
        np.testing.assert_array_equal(m, masks[0])
    for _, view in layouts(x):
        y, m = fastnn.dropout(view, 0.3, generator=7)
        np.testing.assert_array_equal(m, masks[0])  # C order of the values, not memory
        np.testing.assert_array_equal(y, x * m * (1 / 0.7))


def test_nan_and_inf_follow_input_times_mask():
    x = np.array([np.nan, np.inf, -np.inf, 1.0] * 50)
    for backend in BACKENDS:
        y, mask = fastnn.dropout(x, 0.5, generator=3, backend=backend)
        with np.errstate(invalid="ignore"):
            want = x * mask * 2.0  # inf * 0 = NaN, as torch's input * mask * scale
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("backend", BACKENDS)
def test_keep_rate_is_binomial(p, backend):
    n = 200_000
    for seed in (0, 1, 2**63 + 5):
        _, mask = fastnn.dropout(np.ones(n), p, generator=seed, backend=backend)
        assert _within_binomial(int(mask.sum()), n, 1 - p), (seed, mask.mean())


@pytest.mark.parametrize("backend", BACKENDS)
def test_neighbours_and_nearby_seeds_are_independent(backend):
    n, p = 200_000, 0.5
    _, a = fastnn.dropout(np.ones(n), p, generator=11, backend=backend)
    _, b = fastnn.dropout(np.ones(n), p, generator=12, backend=backend)
    both = int((a[1:] & a[:-1]).sum())
    assert _within_binomial(both, n - 1, 0.25)  # consecutive elements
    both = int((a[2:] & a[:-2]).sum())
    assert _within_binomial(both, n - 2, 0.25)
    same = int((a == b).sum())
    assert _within_binomial(same, n, 0.5)  # consecutive seeds
    # runs of kept elements: no periodic pattern (a row of 1024 in a 2-D array)
    rows = a[: 195 * 1024].reshape(195, 1024).mean(axis=0)
    assert rows.min() > 0.25 and rows.max() < 0.75


def test_generators_and_fresh_entropy():
    x = np.ones(4096)
    _, a = fastnn.dropout(x, 0.5, generator=np.random.default_rng(5))
    _, b = fastnn.dropout(x, 0.5, generator=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    gen = np.random.default_rng(5)
    _, c = fastnn.dropout(x, 0.5, generator=gen)
    _, d = fastnn.dropout(x, 0.5, generator=gen)  # the generator moved on
    assert not np.array_equal(c, d)
    _, e = fastnn.dropout(x, 0.5)
    _, f = fastnn.dropout(x, 0.5)
    assert not np.array_equal(e, f)  # 2**-4096-ish chance of a false failure
    # seeds are taken mod 2**64
    np.testing.assert_array_equal(
        fastnn.dropout(x, 0.5, generator=-1)[1], fastnn.dropout(x, 0.5, generator=2**64 - 1)[1]
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_and_p_zero_copy_the_input(rng, backend):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    for kwargs in (dict(p=0.5, training=False), dict(p=0.0), dict(p=0, training=True)):
        y, mask = fastnn.dropout(x, generator=1, backend=backend, **kwargs)
        assert mask is None
        np.testing.assert_array_equal(y, x)
        assert y.dtype == x.dtype and not np.shares_memory(y, x) and y.flags.c_contiguous
    gy = rng.standard_normal((3, 4)).astype(np.float32)
    g = fastnn.dropout_backward(gy, None, 0.5, backend=backend)
    np.testing.assert_array_equal(g, gy)
    assert not np.shares_memory(g, gy)


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_reference(rng, dtype, shape, threads):
    gy = rng.standard_normal(shape).astype(dtype)
    _, mask = fastnn.dropout(gy, 0.3, generator=99)
    want = fastnn.dropout_backward(gy, mask, 0.3, backend="reference")
    assert_close(want, gy.astype(np.float64) * mask / 0.7, dtype)
    for m in (mask, mask.astype(bool), mask * 7):  # any non-zero entry is "kept"
        got = fastnn.dropout_backward(gy, m, 0.3, backend="cpu")
        assert got.dtype == dtype and got.flags.c_contiguous
        assert_close(got, want, dtype)


def test_backward_any_layout(rng):
    gy = rng.standard_normal((5, 6))
    _, mask = fastnn.dropout(gy, 0.4, generator=1)
    assert_layout_independent(lambda g, m: fastnn.dropout_backward(g, m, 0.4), gy, mask)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x: fastnn.dropout(x, 1.0), ValueError, r"p must be in \[0, 1\).*p=1.0"),
        (lambda x: fastnn.dropout(x, -0.1), ValueError, "p=-0.1"),
        (lambda x: fastnn.dropout(x, float("nan")), ValueError, "p=nan"),
        (lambda x: fastnn.dropout(x, "0.5"), TypeError, "p must be a real"),
        (lambda x: fastnn.dropout(x, True), TypeError, "p must be a real"),
        (lambda x: fastnn.dropout(x, 0.5, training=1), TypeError, "training"),
        (lambda x: fastnn.dropout(x, 0.5, generator=1.5), TypeError, "generator"),
        (lambda x: fastnn.dropout(x, 0.5, False, generator="7"), TypeError, "generator"),
        (lambda x: fastnn.dropout(x.astype(np.int64), 0.5), TypeError, "input"),
        (lambda x: fastnn.dropout_backward(x, None, 1.0), ValueError, "p=1.0"),
        (lambda x: fastnn.dropout_backward(x, np.ones(x.shape), 0.5), TypeError, "uint8"),
        (
            lambda x: fastnn.dropout_backward(x, np.ones((2, 2), np.uint8), 0.5),
            ValueError,
            "same shape",
        ),
        (lambda x: fastnn.dropout_backward(x, [1, 0], 0.5), TypeError, "mask"),
    ],
)
def test_bad_arguments(call, error, match, backend):
    x = np.ones((3, 4))
    with fastnn.use_backend(backend), pytest.raises(error, match=match):
        call(x)


# ---------------------------------------------------------------------------------------
# add
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_add_matches_reference(rng, dtype, shape, activation, threads):
    a = (rng.standard_normal(shape) * 5).astype(dtype)
    b = (rng.standard_normal(shape) * 5).astype(dtype)
    if a.size > 4:
        a.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    want = fastnn.add(a, b, activation=activation, backend="reference")
    got = fastnn.add(a, b, activation=activation, backend="cpu")
    assert got.dtype == dtype and got.shape == shape and got.flags.c_contiguous
    assert_close(got, want, dtype)
    if a.size > 4:
        assert np.isnan(got.reshape(-1)[0])  # NaN propagates through relu and relu6


def test_add_any_layout(rng):
    a, b = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 5, 6))
    for act in (None, "relu", "relu6"):
        assert_layout_independent(lambda u, v, f=act: fastnn.add(u, v, activation=f), a, b)


@requires_torch
def test_add_and_dropout_match_torch_formulas(rng, dtype):
    torch = import_torch()
    F = torch.nn.functional
    a = (rng.standard_normal((4, 8, 5, 5)) * 4).astype(dtype)
    b = (rng.standard_normal((4, 8, 5, 5)) * 4).astype(dtype)
    ta, tb = torch.tensor(a), torch.tensor(b)
    assert_close(fastnn.add(a, b), (ta + tb).numpy(), dtype)
    assert_close(fastnn.add(a, b, activation="relu"), F.relu(ta + tb).numpy(), dtype)
    assert_close(fastnn.add(a, b, activation="relu6"), F.relu6(ta + tb).numpy(), dtype)
    y, mask = fastnn.dropout(a, 0.25, generator=5)
    want = ta * torch.tensor(mask).to(ta.dtype) * (1 / 0.75)
    assert_close(y, want.numpy(), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_bad_arguments(backend):
    a = np.ones((3, 4))
    with fastnn.use_backend(backend):
        with pytest.raises(ValueError, match="a and b must have the same shape"):
            fastnn.add(a, np.ones((1, 4)))  # no broadcasting
        with pytest.raises(TypeError, match="same dtype"):
            fastnn.add(a, a.astype(np.float32))
        with pytest.raises(ValueError, match="activation must be one of"):
            fastnn.add(a, a, activation="tanh")
        with pytest.raises(TypeError, match="b must be an array"):
            fastnn.add(a, 1.0)
