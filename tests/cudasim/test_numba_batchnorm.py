"""Batch normalisation on the numba-cuda backend (simulator), against the reference
backend: tiny shapes, every layout of the input, running statistics updated in place,
activations, eval mode and output masks."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.cudasim.devices import check, dev, device_layouts

pytestmark = [pytest.mark.cudasim]

REF = {"backend": "reference"}
SHAPES = [(4, 3), (3, 2, 5), (2, 3, 2, 3), (2, 1, 3)]


def _case(rng, shape, dtype=np.float32):
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    w = rng.standard_normal(c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.5, 2.0, c).astype(dtype)
    return x, w, b, rm, rv


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", [None, "relu6"])
def test_training_forward_and_running_stats(rng, shape, activation):
    x, w, b, rm, rv = _case(rng, shape)
    drm, drv = dev(rm), dev(rv)
    want = fastnn.batch_norm(
        x, rm, rv, w, b, training=True, momentum=0.25, activation=activation,
        return_stats=True, **REF,
    )  # fmt: skip
    got = fastnn.batch_norm(
        dev(x), drm, drv, dev(w), dev(b), training=True, momentum=0.25,
        activation=activation, return_stats=True,
    )  # fmt: skip
    check(got, want, f"{shape} {activation}")
    np.testing.assert_allclose(drm.copy_to_host(), rm, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(drv.copy_to_host(), rv, rtol=1e-6, atol=1e-6)


def test_eval_any_layout_and_no_affine(rng):
    x, _, _, rm, rv = _case(rng, (3, 2, 4), np.float64)
    want = fastnn.batch_norm(x, rm, rv, return_stats=True, **REF)
    for layout, d in device_layouts(x):
        check(fastnn.batch_norm(d, dev(rm), dev(rv), return_stats=True), want, layout)


def test_stats_and_elemt(rng):
    x, w, b, _, _ = _case(rng, (5, 3, 2), np.float64)
    x += 1000.0  # shifted sums: no cancellation far from zero
    mean, invstd = fastnn.batch_norm_stats(x, **REF)
    check(fastnn.batch_norm_stats(dev(x)), (mean, invstd), "stats")
    want = fastnn.batch_norm_elemt(x, mean, invstd, None, b, activation="relu", **REF)
    got = fastnn.batch_norm_elemt(dev(x), dev(mean), dev(invstd), None, dev(b), activation="relu")
    check(got, want, "elemt")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_backward(rng, training, activation):
    x, w, b, rm, rv = _case(rng, (4, 3, 5), np.float64)
    g = rng.standard_normal(x.shape)
    y, mean, invstd = fastnn.batch_norm(
        x, rm, rv, w, b, training=training, activation=activation, return_stats=True, **REF
    )
    kw = dict(training=training, activation=activation)
    want = fastnn.batch_norm_backward(g, x, w, mean, invstd, output=y, **kw, **REF)
    got = fastnn.batch_norm_backward(
        dev(g), dev(x), dev(w), dev(mean), dev(invstd), output=dev(y), **kw
    )
    check(got, want, f"{training} {activation}")


@pytest.mark.parametrize("mask", [(True, False, False), (False, True, True), (False, False, True)])
def test_backward_masks_without_weight(rng, mask):
    x, _, _, _, _ = _case(rng, (3, 2, 3), np.float64)
    g = rng.standard_normal(x.shape)
    mean, invstd = fastnn.batch_norm_stats(x, **REF)
    want = fastnn.batch_norm_backward(g, x, None, mean, invstd, output_mask=mask, **REF)
    got = fastnn.batch_norm_backward(dev(g), dev(x), None, dev(mean), dev(invstd), output_mask=mask)
    check(got, want, str(mask))


def test_empty_batch(rng):
    x = np.zeros((0, 3, 2))
    rm, rv = np.zeros(3), np.ones(3)
    want = fastnn.batch_norm(x, rm, rv, training=True, return_stats=True, **REF)
    drm, drv = dev(rm), dev(rv)
    check(fastnn.batch_norm(dev(x), drm, drv, training=True, return_stats=True), want, "fwd")
    assert drm.copy_to_host().tolist() == [0, 0, 0]
    _, mean, invstd = want
    want = fastnn.batch_norm_backward(x, x, None, mean, invstd, **REF)
    check(fastnn.batch_norm_backward(dev(x), dev(x), None, dev(mean), dev(invstd)), want, "bwd")


def test_momentum_none_counts_batches_on_the_device(rng):
    count = dev(np.zeros(1, np.int64))
    rm, rv = np.zeros(2), np.ones(2)
    drm, drv = dev(rm), dev(rv)
    for _ in range(3):
        x = rng.standard_normal((4, 2, 3))
        kw = dict(training=True, momentum=None)
        fastnn.batch_norm(x, rm, rv, num_batches_tracked=np.zeros(1, np.int64) + _, **kw, **REF)
        fastnn.batch_norm(dev(x), drm, drv, num_batches_tracked=count, **kw)
    assert count.copy_to_host().tolist() == [3]
    np.testing.assert_allclose(drm.copy_to_host(), rm, rtol=1e-12)
    np.testing.assert_allclose(drv.copy_to_host(), rv, rtol=1e-12)


def test_strided_running_stats_are_refused(rng):
    x, _, _, _, _ = _case(rng, (3, 2))
    big = dev(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="running_mean must be contiguous"):
        fastnn.batch_norm(dev(x), big[::2], dev(np.ones(2, np.float32)), training=True)
