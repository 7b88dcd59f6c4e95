"""Dropout and the fused residual add on the numba-cuda backend (simulator): the same
seed gives the same mask as the reference (and so as the cpu and cupy backends), the
backward pass, the eval / p = 0 paths, and act(a + b) with NaN, in every device layout."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.cudasim.devices import check, dev, device_layouts

# The simulator multiplies numpy uint64 scalars: the products wrap as they must, with a
# RuntimeWarning about the overflow.
pytestmark = [
    pytest.mark.cudasim,
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]

SHAPES = [(), (0,), (7,), (3, 5, 4), (40, 33)]


@pytest.mark.parametrize("shape", SHAPES)
def test_dropout_same_mask_as_reference(rng, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    for p, seed in ((0.5, 1), (0.2, 2**64 - 3)):
        want = fastnn.dropout(x, p, generator=seed, backend="reference")
        got = fastnn.dropout(dev(x), p, generator=seed)
        check(got, want, f"p={p}")
        gy = rng.standard_normal(shape).astype(dtype)
        want_g = fastnn.dropout_backward(gy, want[1], p, backend="reference")
        check(fastnn.dropout_backward(dev(gy), got[1], p), want_g, "backward")
        check(fastnn.dropout_backward(dev(gy), dev(want[1].astype(bool)), p), want_g, "bool")


def test_dropout_eval_and_p_zero(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    for kwargs in (dict(p=0.5, training=False), dict(p=0.0)):
        y, mask = fastnn.dropout(dev(x), **kwargs)
        assert mask is None
        check(y, x, str(kwargs))
    check(fastnn.dropout_backward(dev(x), None, 0.5), x, "backward without mask")


def test_dropout_any_layout(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    want = fastnn.dropout(x, 0.4, generator=9, backend="reference")
    for layout, d in device_layouts(x):
        check(fastnn.dropout(d, 0.4, generator=9), want, layout)


@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_add(rng, activation, dtype):
    a = (rng.standard_normal((3, 5, 4)) * 5).astype(dtype)
    b = (rng.standard_normal((3, 5, 4)) * 5).astype(dtype)
    a.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    want = fastnn.add(a, b, activation=activation, backend="reference")
    check(fastnn.add(dev(a), dev(b), activation=activation), want, str(activation))
    for layout, d in device_layouts(a):
        check(fastnn.add(d, dev(b), activation=activation), want, layout)
