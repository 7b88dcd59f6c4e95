"""The cpu backend's batch normalisation against the float64 reference and torch: random
shapes ((N, C), (N, C, L), (N, C, H, W), higher), batch 1, C = 1, odd planes, any memory
layout, float32 accuracy for data far from zero, fused relu / relu6 forward and backward,
output masks, 1 and 2 threads (with inputs large enough to be split), and the errors of
the public ops."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.utils import assert_close, import_torch, layouts

torch = import_torch()
F = torch.nn.functional

CPU = {"backend": "cpu"}
REF = {"backend": "reference"}
ACTIVATIONS = [None, "relu", "relu6"]


def _shape(rng, ndim: int) -> tuple[int, ...]:
    n = int(rng.integers(1, 6))
    c = int(rng.integers(1, 5))
    return (n, c, *(int(s) for s in rng.integers(1, 8, ndim - 2)))


def _case(rng, shape, dtype, offset=0.0):
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + offset).astype(dtype)
    w = rng.standard_normal(c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    return x, w, b


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 2e-5


# Shapes big enough (>= 2^15 elements) that two threads split them, with odd planes.
LARGE = [(64, 3, 171), (2, 5, 61, 67), (4099, 9), (1, 2, 129, 131), (3, 1, 11003)]


@pytest.mark.parametrize("ndim", [2, 3, 4, 5])
def test_random_shapes_match_the_reference(rng, threads, ndim, dtype):
    for _ in range(6):
        shape = _shape(rng, ndim)
        if np.prod(shape) // shape[1] == 1:
            shape = (shape[0] + 1, *shape[1:])
        x, w, b = _case(rng, shape, dtype)
        g = rng.standard_normal(shape).astype(dtype)
        _compare_all(x, w, b, g, _tol(dtype), str(shape))


def _compare_all(x, w, b, g, tol, what):
    c = x.shape[1]
    rm0 = np.linspace(-1, 1, c).astype(x.dtype)
    rv0 = np.linspace(0.5, 2, c).astype(x.dtype)
    for training in (True, False):
        for act in ACTIVATIONS:
            outs, runs = [], []
            for kw in (CPU, REF):
                rm, rv = rm0.copy(), rv0.copy()
                outs.append(
                    fastnn.batch_norm(
                        x, rm, rv, w, b, training=training, momentum=0.2, activation=act,
                        return_stats=True, **kw,
                    )
                )  # fmt: skip
                runs.append((rm, rv))
            for got, want in zip(outs[0], outs[1]):
                assert_close(got, want, rtol=tol, what=f"{what} forward {training} {act}")
            for got, want in zip(runs[0], runs[1]):
                assert_close(got, want, rtol=tol, what=f"{what} running stats")
            y, mean, invstd = outs[1]
            args = (g, x, w, mean, invstd)
            kw = dict(training=training, output=y, activation=act)
            got = fastnn.batch_norm_backward(*args, **kw, **CPU)
            want = fastnn.batch_norm_backward(*args, **kw, **REF)
            for k, (a, e) in enumerate(zip(got, want)):
                assert_close(a, e, rtol=tol * 10, what=f"{what} backward[{k}] {training} {act}")


@pytest.mark.parametrize("shape", LARGE)
def test_large_inputs_split_over_threads(rng, threads, shape, dtype):
    x, w, b = _case(rng, shape, dtype, offset=3.0)
    g = rng.standard_normal(shape).astype(dtype)
    _compare_all(x, w, b, g, _tol(dtype) * 5, str(shape))


def test_any_memory_layout(rng, dtype):
    shape = (3, 4, 5, 6)
    x, w, b = _case(rng, shape, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    mean, invstd = fastnn.batch_norm_stats(x, **REF)
    want_stats = fastnn.batch_norm_stats(x, **CPU)
    want_y = fastnn.batch_norm_elemt(x, mean, invstd, w, b, activation="relu6", **CPU)
    want_g = fastnn.batch_norm_backward(
        g, x, w, mean, invstd, output=want_y, activation="relu6", **CPU
    )
    for (layout, xl), (_, gl), (_, yl) in zip(layouts(x), layouts(g), layouts(want_y)):
        for got, want in zip(fastnn.batch_norm_stats(xl, **CPU), want_stats):
            assert_close(got, want, rtol=_tol(dtype), what=layout)
        got_y = fastnn.batch_norm_elemt(
            xl, mean[::-1][::-1], invstd, w, b, activation="relu6", **CPU
        )
        assert got_y.flags.c_contiguous
        assert_close(got_y, want_y, rtol=_tol(dtype), what=layout)
        got_g = fastnn.batch_norm_backward(
            gl, xl, w, mean, invstd, output=yl, activation="relu6", **CPU
        )
        for got, want in zip(got_g, want_g):
            assert_close(got, want, rtol=_tol(dtype), what=layout)
    # strided per-channel arrays and running statistics (updated in place through the view)
    big = np.zeros((2, 2 * shape[1]), dtype)
    rm, rv = big[0, ::2], big[1, ::2]
    rv[...] = 1
    fastnn.batch_norm(x, rm, rv, w[::-1][::-1], b, training=True, **CPU)
    rm2, rv2 = np.zeros(shape[1], dtype), np.ones(shape[1], dtype)
    fastnn.batch_norm(x, rm2, rv2, w, b, training=True, **REF)
    assert_close(rm, rm2, rtol=_tol(dtype))
    assert_close(rv, rv2, rtol=_tol(dtype))


@pytest.mark.parametrize("shape", [(257, 3), (64, 2, 100), (16, 3, 33, 35)])
def test_float32_stats_accurate_for_data_far_from_zero(rng, threads, shape):
    x = (1000.0 + rng.standard_normal(shape)).astype(np.float32)
    mean, invstd = fastnn.batch_norm_stats(x, **CPU)
    want_mean, want_invstd = fastnn.batch_norm_stats(x.astype(np.float64), **REF)
    np.testing.assert_allclose(mean, want_mean, rtol=2e-7)
    np.testing.assert_allclose(invstd, want_invstd, rtol=2e-6)
    y = fastnn.batch_norm(x, None, None, training=True, **CPU)
    want = fastnn.batch_norm(x.astype(np.float64), None, None, training=True, **REF)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-4)


def test_channel_one_and_batch_one(rng):
    x, w, b = _case(rng, (7, 1, 3), np.float64)
    g = rng.standard_normal(x.shape)
    _compare_all(x, w, b, g, 1e-12, "C=1")
    x1 = rng.standard_normal((1, 5))
    rm, rv = np.zeros(5), np.ones(5)
    want = F.batch_norm(torch.tensor(x1), torch.tensor(rm), torch.tensor(rv))
    assert_close(fastnn.batch_norm(x1, rm, rv, **CPU), want.numpy(), rtol=1e-12)
    x2 = rng.standard_normal((1, 2, 3))  # batch 1 with a plane trains
    assert_close(
        fastnn.batch_norm(x2, None, None, training=True, **CPU),
        F.batch_norm(torch.tensor(x2), None, None, training=True).numpy(),
        rtol=1e-12,
    )


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_against_torch_forward_backward(rng, dtype, activation):
    x, w, b = _case(rng, (6, 3, 5, 7), dtype)
    x[0, 0, 0, :2] = [100.0, -100.0]  # outliers: outputs on both sides of relu6's range
    g = rng.standard_normal(x.shape).astype(dtype)
    acts = {None: lambda t: t, "relu": F.relu, "relu6": F.relu6}
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = acts[activation](F.batch_norm(xt, None, None, wt, bt, training=True))
    yt.backward(torch.tensor(g))
    y, mean, invstd = fastnn.batch_norm(
        x, None, None, w, b, training=True, activation=activation, return_stats=True, **CPU
    )
    tol = 1e-11 if dtype == np.float64 else 1e-4
    assert_close(y, yt.detach().numpy(), rtol=tol)
    grads = fastnn.batch_norm_backward(
        g, x, w, mean, invstd, output=y, activation=activation, **CPU
    )
    for got, want in zip(grads, (xt.grad, wt.grad, bt.grad)):
        assert_close(got, want.numpy(), rtol=tol)


def test_nan_forward_and_backward_follow_torch():
    x = np.array([[np.nan, 1.0], [2.0, 3.0], [4.0, 7.0]])
    for act in ("relu", "relu6"):
        y = fastnn.batch_norm_elemt(x, np.zeros(2), np.ones(2), activation=act, **CPU)
        assert np.isnan(y[0, 0]) and y[1, 0] == 2.0
        assert y[2, 1] == (7.0 if act == "relu" else 6.0)
        g = np.ones_like(x)
        gx, _, _ = fastnn.batch_norm_backward(
            g, x, None, np.zeros(2), np.ones(2), training=False, output=y, activation=act, **CPU
        )
        want, _, _ = fastnn.batch_norm_backward(
            g, x, None, np.zeros(2), np.ones(2), training=False, output=y, activation=act, **REF
        )
        np.testing.assert_array_equal(gx, want)
        assert gx[0, 0] == 1.0  # a NaN output passes the gradient, as in torch


@pytest.mark.parametrize(
    "mask",
    [
        (True, False, False),
        (False, True, False),
        (False, False, True),
        (False, True, True),
        (True, True, False),
        (False, False, False),
    ],
)
@pytest.mark.parametrize("training", [True, False])
def test_output_masks(rng, mask, training):
    x, w, _ = _case(rng, (4, 3, 6), np.float64)
    g = rng.standard_normal(x.shape)
    mean, invstd = fastnn.batch_norm_stats(x, **REF)
    full = fastnn.batch_norm_backward(g, x, w, mean, invstd, training=training, **REF)
    got = fastnn.batch_norm_backward(
        g, x, w, mean, invstd, training=training, output_mask=mask, **CPU
    )
    for want_it, value, expected in zip(mask, got, full):
        if want_it:
            assert_close(value, expected, rtol=1e-12)
        else:
            assert value is None


def test_momentum_none_counts_batches_like_torch_module(rng):
    layer = torch.nn.BatchNorm2d(3, momentum=None, dtype=torch.float64)
    rm, rv = np.zeros(3), np.ones(3)
    count = np.zeros((), np.int64)
    for _ in range(3):
        x = rng.standard_normal((2, 3, 4, 5)) + 5
        layer(torch.tensor(x))
        fastnn.batch_norm(x, rm, rv, training=True, momentum=None, num_batches_tracked=count, **CPU)
    assert int(count) == 3
    assert_close(rm, layer.running_mean.numpy(), rtol=1e-12)
    assert_close(rv, layer.running_var.numpy(), rtol=1e-12)


def test_empty_batch_trains_without_touching_running_stats():
    rm, rv = np.zeros(3), np.ones(3)
    y = fastnn.batch_norm(np.zeros((0, 3, 2)), rm, rv, training=True, **CPU)
    assert y.shape == (0, 3, 2)
    assert rm.tolist() == [0, 0, 0] and rv.tolist() == [1, 1, 1]
    nan = np.full(3, np.nan)
    for kw in (CPU, REF):
        gx, gw, gb = fastnn.batch_norm_backward(
            np.zeros((0, 3, 2)), np.zeros((0, 3, 2)), np.ones(3), nan, nan, **kw
        )
        assert gx.shape == (0, 3, 2)
        assert gw.tolist() == [0, 0, 0] and gb.tolist() == [0, 0, 0]


def test_outputs_are_fresh_and_inputs_untouched(rng):
    x, w, b = _case(rng, (3, 2, 4), np.float32)
    saved = x.copy(), w.copy(), b.copy()
    y, mean, invstd = fastnn.batch_norm(
        x, None, None, w, b, training=True, return_stats=True, **CPU
    )
    for out in (y, mean, invstd):
        assert out.dtype == np.float32 and out.flags.c_contiguous
        assert not np.shares_memory(out, x)
    for before, after in zip(saved, (x, w, b)):
        np.testing.assert_array_equal(before, after)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

X = np.zeros((4, 3, 2))
C3 = np.ones(3)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda kw: fastnn.batch_norm(np.zeros(3), None, None, training=True, **kw),
         ValueError, "input must be"),
        (lambda kw: fastnn.batch_norm(X, np.ones(2), C3, **kw), ValueError, "running_mean"),
        (lambda kw: fastnn.batch_norm(X, C3, np.ones((3, 1)), **kw), ValueError, "running_var"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, np.ones(4), **kw), ValueError, "weight"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, None, np.ones(2), **kw), ValueError, "bias"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, eps=0.0, **kw), ValueError, "eps"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, eps=-1.0, **kw), ValueError, "eps"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, momentum=1.5, **kw), ValueError, "momentum"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, momentum=-0.1, **kw), ValueError, "momentum"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, training=True, momentum=None, **kw),
         ValueError, "num_batches_tracked"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, training=True, momentum=None,
                                      num_batches_tracked=np.zeros(2, np.int64), **kw),
         ValueError, "num_batches_tracked"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, training=True, momentum=None,
                                      num_batches_tracked=np.zeros((), np.float64), **kw),
         TypeError, "num_batches_tracked"),
        (lambda kw: fastnn.batch_norm(np.zeros((1, 3)), C3, C3, training=True, **kw),
         ValueError, "more than 1 value per channel"),
        (lambda kw: fastnn.batch_norm(np.zeros((1, 3, 1)), None, None, training=True, **kw),
         ValueError, "more than 1 value per channel"),
        (lambda kw: fastnn.batch_norm(X, None, None, **kw), ValueError, "training=False"),
        (lambda kw: fastnn.batch_norm(X, C3, None, training=True, **kw), ValueError, "together"),
        (lambda kw: fastnn.batch_norm(X.astype(np.float32), C3, C3, **kw), TypeError, "dtype"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, training=1, **kw), TypeError, "training"),
        (lambda kw: fastnn.batch_norm(X, C3, C3, activation="tanh", **kw),
         ValueError, "activation"),
        (lambda kw: fastnn.batch_norm(X.astype(np.int64), None, None, **kw),
         TypeError, "input"),
        (lambda kw: fastnn.batch_norm_stats(X, eps=0, **kw), ValueError, "eps"),
        (lambda kw: fastnn.batch_norm_stats(np.zeros(4), **kw), ValueError, "input"),
        (lambda kw: fastnn.batch_norm_elemt(X, C3, np.ones(2), **kw), ValueError, "invstd"),
        (lambda kw: fastnn.batch_norm_elemt(X, np.ones(4), C3, **kw), ValueError, "mean"),
        (lambda kw: fastnn.batch_norm_elemt(X, C3, C3, activation="sigmoid", **kw),
         ValueError, "activation"),
        (lambda kw: fastnn.batch_norm_backward(X, X, None, C3, C3, activation="relu", **kw),
         ValueError, "output"),
        (lambda kw: fastnn.batch_norm_backward(X[:2], X, None, C3, C3, **kw),
         ValueError, "grad_output"),
        (lambda kw: fastnn.batch_norm_backward(X, X, None, C3, np.ones(2), **kw),
         ValueError, "invstd"),
        (lambda kw: fastnn.batch_norm_backward(X, X, np.ones(2), C3, C3, **kw),
         ValueError, "weight"),
        (lambda kw: fastnn.batch_norm_backward(X, X, None, C3, C3, output=X[:1],
                                               activation="relu", **kw),
         ValueError, "output"),
        (lambda kw: fastnn.batch_norm_backward(X, X, None, C3, C3, output_mask=(True,), **kw),
         ValueError, "output_mask"),
    ],
)  # fmt: skip
def test_errors_name_the_argument(backend, call, error, match):
    with pytest.raises(error, match=match):
        call({"backend": backend})
