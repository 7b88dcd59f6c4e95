"""The reference backend's batch normalisation against torch in float64: forward in
training and eval, running statistics (momentum, momentum=None cumulative, none tracked),
activations, and the backward through torch's autograd."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.utils import assert_close, import_torch

torch = import_torch()
F = torch.nn.functional

SHAPES = [(4, 3), (5, 2, 7), (2, 3, 4, 5), (3, 1, 2, 2, 3)]
REF = {"backend": "reference"}


def _t(a):
    return torch.from_numpy(np.asarray(a))


def _params(rng, channels):
    w = rng.standard_normal(channels)
    b = rng.standard_normal(channels)
    rm = rng.standard_normal(channels)
    rv = rng.uniform(0.5, 2.0, channels)
    return w, b, rm, rv


def _torch_act(y, activation):
    if activation == "relu":
        return F.relu(y)
    if activation == "relu6":
        return F.relu6(y)
    return y


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_training_forward_and_running_stats_match_torch(rng, shape, activation):
    x = rng.standard_normal(shape) * 3 + 2
    w, b, rm, rv = _params(rng, shape[1])
    trm, trv = rm.copy(), rv.copy()
    y, mean, invstd = fastnn.batch_norm(
        x, rm, rv, w, b, training=True, momentum=0.3, activation=activation,
        return_stats=True, **REF,
    )  # fmt: skip
    want = _torch_act(
        F.batch_norm(_t(x), _t(trm), _t(trv), _t(w), _t(b), training=True, momentum=0.3),
        activation,
    )
    assert_close(y, want.numpy(), rtol=1e-12)
    assert_close(rm, trm, rtol=1e-12)
    assert_close(rv, trv, rtol=1e-12)
    axes = (0, *range(2, x.ndim))
    assert_close(mean, x.mean(axis=axes), rtol=1e-12)
    assert_close(invstd, 1 / np.sqrt(x.var(axis=axes) + 1e-5), rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_eval_uses_running_stats_and_leaves_them(rng, shape):
    x = rng.standard_normal(shape)
    w, b, rm, rv = _params(rng, shape[1])
    before = rm.copy(), rv.copy()
    y, mean, invstd = fastnn.batch_norm(x, rm, rv, w, b, eps=1e-3, return_stats=True, **REF)
    want = F.batch_norm(_t(x), _t(rm.copy()), _t(rv.copy()), _t(w), _t(b), eps=1e-3)
    assert_close(y, want.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])
    assert_close(mean, rm, rtol=0)
    assert_close(invstd, 1 / np.sqrt(rv + 1e-3), rtol=1e-14)


def test_batch_of_one_in_eval(rng):
    x = rng.standard_normal((1, 4))
    w, b, rm, rv = _params(rng, 4)
    want = F.batch_norm(_t(x), _t(rm), _t(rv), _t(w), _t(b))
    assert_close(fastnn.batch_norm(x, rm, rv, w, b, **REF), want.numpy(), rtol=1e-12)


def test_momentum_none_is_a_cumulative_average_like_torch_module(rng):
    layer = torch.nn.BatchNorm1d(3, momentum=None, dtype=torch.float64)
    rm, rv = np.zeros(3), np.ones(3)
    count = np.zeros((), np.int64)
    for _ in range(4):
        x = rng.standard_normal((6, 3, 2)) * 2 + 1
        layer(_t(x))
        fastnn.batch_norm(x, rm, rv, training=True, momentum=None, num_batches_tracked=count, **REF)
    assert int(count) == 4 == int(layer.num_batches_tracked)
    assert_close(rm, layer.running_mean.numpy(), rtol=1e-12)
    assert_close(rv, layer.running_var.numpy(), rtol=1e-12)


def test_counter_of_shape_one_is_incremented_with_a_momentum_too(rng):
    count = np.zeros(1, np.int64)
    rm, rv = np.zeros(2), np.ones(2)
    x = rng.standard_normal((3, 2))
    fastnn.batch_norm(x, rm, rv, training=True, num_batches_tracked=count, **REF)
    assert count.tolist() == [1]


def test_no_running_stats_uses_batch_statistics(rng):
    x = rng.standard_normal((5, 3, 4))
    w, b, _, _ = _params(rng, 3)
    want = F.batch_norm(_t(x), None, None, _t(w), _t(b), training=True)
    got = fastnn.batch_norm(x, None, None, w, b, training=True, **REF)
    assert_close(got, want.numpy(), rtol=1e-12)


def test_stats_and_elemt_compose_to_batch_norm(rng):
    x = rng.standard_normal((4, 3, 5))
    w, b, _, _ = _params(rng, 3)
    mean, invstd = fastnn.batch_norm_stats(x, 1e-4, **REF)
    got = fastnn.batch_norm_elemt(x, mean, invstd, w, b, activation="relu", **REF)
    want = F.relu(F.batch_norm(_t(x), None, None, _t(w), _t(b), training=True, eps=1e-4))
    assert_close(got, want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_backward_matches_torch_autograd(rng, shape, training, activation):
    x = rng.standard_normal(shape) * 2
    w, b, rm, rv = _params(rng, shape[1])
    g = rng.standard_normal(shape)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = _torch_act(
        F.batch_norm(xt, _t(rm.copy()), _t(rv.copy()), wt, bt, training=training), activation
    )
    yt.backward(_t(g))
    y, mean, invstd = fastnn.batch_norm(
        x, rm, rv, w, b, training=training, activation=activation, return_stats=True, **REF
    )
    gx, gw, gb = fastnn.batch_norm_backward(
        g, x, w, mean, invstd, training=training, output=y, activation=activation, **REF
    )
    assert_close(gx, xt.grad.numpy(), rtol=1e-10)
    assert_close(gw, wt.grad.numpy(), rtol=1e-10)
    assert_close(gb, bt.grad.numpy(), rtol=1e-10)


def test_backward_without_weight_and_masks(rng):
    x = rng.standard_normal((6, 2, 3))
    g = rng.standard_normal(x.shape)
    xt = torch.tensor(x, requires_grad=True)
    F.batch_norm(xt, None, None, training=True).backward(_t(g))
    mean, invstd = fastnn.batch_norm_stats(x, **REF)
    gx, gw, gb = fastnn.batch_norm_backward(g, x, None, mean, invstd, **REF)
    assert_close(gx, xt.grad.numpy(), rtol=1e-10)
    xhat = (x - mean[None, :, None]) * invstd[None, :, None]
    assert_close(gw, (g * xhat).sum(axis=(0, 2)), rtol=1e-12)
    assert_close(gb, g.sum(axis=(0, 2)), rtol=1e-12)
    out = fastnn.batch_norm_backward(
        g, x, None, mean, invstd, output_mask=(False, True, False), **REF
    )
    assert out[0] is None and out[2] is None
    assert_close(out[1], gw, rtol=0)
