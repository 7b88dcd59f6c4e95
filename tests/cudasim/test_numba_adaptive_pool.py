"""Adaptive pooling (average 1-d / 2-d, max 2-d, forward and backward) on the numba-cuda
backend (simulator) against the reference backend: overlapping windows (In not a multiple
of Out), Out > In, global 1 x 1, batch 0 and 1, NaN / inf, every device layout, float32
and float64, and caller indices outside their window."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.cudasim.devices import check, dev, device_layouts, host

pytestmark = pytest.mark.cudasim

#: (input shape, output_size)
CASES = {
    "overlap": ((2, 2, 7, 5), (3, 2)),
    "out-above-in": ((1, 2, 3, 4), (5, 6)),
    "global": ((2, 3, 6, 5), 1),
    "multiple": ((1, 2, 8, 6), (4, 3)),
    "none-entry": ((1, 1, 5, 7), (None, 3)),
    "empty-batch": ((0, 2, 5, 5), (2, 3)),
}


def _input(rng, shape, dtype=np.float32):
    x = rng.standard_normal(shape).astype(dtype)
    if x.size > 6:
        x.reshape(-1)[[1, 5]] = np.nan  # NaN wins its windows; the last NaN's index
        x.reshape(-1)[3] = np.inf
    return x


@pytest.mark.parametrize("name", sorted(CASES))
def test_adaptive_max_pool2d(rng, name, dtype):
    shape, size = CASES[name]
    x = _input(rng, shape, dtype)
    want, want_idx = fastnn.adaptive_max_pool2d(x, size, True, backend="reference")
    got = fastnn.adaptive_max_pool2d(dev(x), size, True)
    check(got, (want, want_idx), "forward with indices")
    check(fastnn.adaptive_max_pool2d(dev(x), size), want, "forward")
    gy = rng.standard_normal(want.shape).astype(dtype)
    want = fastnn.adaptive_max_pool2d_backward(gy, x, backend="reference")
    check(fastnn.adaptive_max_pool2d_backward(dev(gy), dev(x)), want, "backward")
    got = fastnn.adaptive_max_pool2d_backward(dev(gy), dev(x), got[1])
    check(got, want, "backward from indices")


@pytest.mark.parametrize("name", sorted(CASES))
def test_adaptive_avg_pool(rng, name, dtype):
    shape, size = CASES[name]
    x = rng.standard_normal(shape).astype(dtype)
    want = fastnn.adaptive_avg_pool2d(x, size, backend="reference")
    check(fastnn.adaptive_avg_pool2d(dev(x), size), want, "forward 2d")
    gy = rng.standard_normal(want.shape).astype(dtype)
    want = fastnn.adaptive_avg_pool2d_backward(gy, x, backend="reference")
    check(fastnn.adaptive_avg_pool2d_backward(dev(gy), dev(x)), want, "backward 2d")
    x1, size1 = x[:, :, 0], (size if isinstance(size, int) else size[1])
    want = fastnn.adaptive_avg_pool1d(x1, size1, backend="reference")
    check(fastnn.adaptive_avg_pool1d(dev(x1), size1), want, "forward 1d")
    gy1 = rng.standard_normal(want.shape).astype(dtype)
    want = fastnn.adaptive_avg_pool1d_backward(gy1, x1, backend="reference")
    check(fastnn.adaptive_avg_pool1d_backward(dev(gy1), dev(x1)), want, "backward 1d")


def test_strided_inputs_are_untouched(rng):
    x = _input(rng, (1, 2, 5, 7))
    want_max = fastnn.adaptive_max_pool2d(x, (2, 3), backend="reference")
    want_avg = fastnn.adaptive_avg_pool2d(x, (3, 4), backend="reference")
    for layout, d in device_layouts(x):
        before = host(d)
        check(fastnn.adaptive_max_pool2d(d, (2, 3)), want_max, layout)
        check(fastnn.adaptive_avg_pool2d(d, (3, 4)), want_avg, layout)
        np.testing.assert_array_equal(host(d), before)


def test_caller_indices_outside_their_window(rng):
    """Indices in the plane but outside their window still send each gradient to the
    element they name, as the reference does (the scan over every window)."""
    x = rng.standard_normal((1, 1, 4, 5)).astype(np.float32)
    gy = rng.standard_normal((1, 1, 2, 2)).astype(np.float32)
    for idx in (np.array([[[[19, 0], [0, 3]]]]), np.array([[[[5, 6], [9, 9]]]], np.int32)):
        want = fastnn.adaptive_max_pool2d_backward(gy, x, idx, backend="reference")
        check(fastnn.adaptive_max_pool2d_backward(dev(gy), dev(x), dev(idx)), want, str(idx))
