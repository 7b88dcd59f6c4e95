"""Max and average pooling (1-d and 2-d, forward and backward) on the numba-cuda backend
(simulator), against the reference backend (PyTorch's rules: NaN propagation, index of
the last NaN, ceil_mode windows, padding divisors)."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.cudasim.devices import check, dev, device_layouts, host

pytestmark = pytest.mark.cudasim

F32 = np.float32

#: (input shape, parameters shared by max and avg pooling, max-only dilation)
CASES = {
    "2d-default-stride": ((2, 2, 5, 6), dict(kernel_size=2), 1),
    "2d-overlap-pad-ceil": ((1, 2, 5, 6), dict(kernel_size=(3, 2), stride=(2, 1), padding=1,
                                              ceil_mode=True), 2),
    "2d-stride1-pad": ((1, 1, 4, 5), dict(kernel_size=3, stride=1, padding=1), 1),
    "1d-ceil-pad": ((2, 2, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), 2),
    "1d-empty-batch": ((0, 2, 6), dict(kernel_size=2), 1),
}  # fmt: skip


def _input(rng, shape):
    x = rng.standard_normal(shape).astype(F32)
    if x.size:
        x.reshape(-1)[[1, 5]] = np.nan  # NaN wins its windows; the last NaN's index
        x.reshape(-1)[3] = np.inf
    return x


def _ops(kind, shape):
    nd = len(shape) - 2
    return getattr(fastnn, f"{kind}_pool{nd}d"), getattr(fastnn, f"{kind}_pool{nd}d_backward")


@pytest.mark.parametrize("name", sorted(CASES))
def test_max_pool(rng, name):
    shape, params, dilation = CASES[name]
    forward, backward = _ops("max", shape)
    x = _input(rng, shape)
    want, want_idx = forward(x, **params, dilation=dilation, return_indices=True,
                             backend="reference")  # fmt: skip
    got = forward(dev(x), **params, dilation=dilation, return_indices=True)
    check(got, (want, want_idx), "forward with indices")
    check(forward(dev(x), **params, dilation=dilation), want, "forward")
    gy = rng.standard_normal(want.shape).astype(F32)
    want = backward(gy, x, **params, dilation=dilation, backend="reference")
    check(backward(dev(gy), dev(x), **params, dilation=dilation), want, "backward")
    got = backward(dev(gy), dev(x), **params, dilation=dilation, indices=got[1])
    check(got, want, "backward from indices")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_avg_pool(rng, name, count_include_pad):
    shape, params, _ = CASES[name]
    forward, backward = _ops("avg", shape)
    x = rng.standard_normal(shape).astype(F32)
    want = forward(x, **params, count_include_pad=count_include_pad, backend="reference")
    check(forward(dev(x), **params, count_include_pad=count_include_pad), want, "forward")
    gy = rng.standard_normal(want.shape).astype(F32)
    want = backward(gy, x, **params, count_include_pad=count_include_pad, backend="reference")
    got = backward(dev(gy), dev(x), **params, count_include_pad=count_include_pad)
    check(got, want, "backward")


def test_strided_inputs_are_untouched(rng):
    x = _input(rng, (1, 2, 4, 5))
    want = fastnn.max_pool2d(x, 2, 1, backend="reference")
    for layout, d in device_layouts(x):
        before = host(d)
        check(fastnn.max_pool2d(d, 2, 1), want, layout)
        check(fastnn.avg_pool2d(d, 2, 1), fastnn.avg_pool2d(x, 2, 1, backend="reference"))
        np.testing.assert_array_equal(host(d), before)


def test_caller_indices_outside_their_window(rng):
    """Indices that do not name a tap of their window (never what max_pool returns)
    still send each gradient to the element they name, as the reference does."""
    x = rng.standard_normal((1, 1, 4, 4)).astype(F32)
    gy = rng.standard_normal((1, 1, 2, 2)).astype(F32)
    for idx in (np.array([[[[15, 0], [0, 3]]]]), np.array([[[[5, 6], [9, 9]]]], np.int32)):
        want = fastnn.max_pool2d_backward(gy, x, 2, indices=idx, backend="reference")
        check(fastnn.max_pool2d_backward(dev(gy), dev(x), 2, indices=dev(idx)), want, str(idx))


def test_float64(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    want = fastnn.max_pool2d(x, 3, 2, 1, backend="reference")
    check(fastnn.max_pool2d(dev(x), 3, 2, 1), want, "max")
    gy = rng.standard_normal((1, 2, 3, 3))
    want = fastnn.avg_pool2d_backward(gy, x, 3, 2, 1, backend="reference")
    check(fastnn.avg_pool2d_backward(dev(gy), dev(x), 3, 2, 1), want, "avg backward")
