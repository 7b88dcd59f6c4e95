"""Losses and their gradients on the numba-cuda backend (simulator), against the reference
backend."""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

import fastnn
from fastnn._backends.numba_cuda._reduce import total
from fastnn.kernels.numba_cuda.loss import MSE, loss_kernels
from tests.cudasim.devices import check, dev, device_layouts, host
from tests.utils import assert_close

pytestmark = [pytest.mark.cudasim, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

F32 = np.float32


def _probabilities(rng, shape):
    p = rng.uniform(0, 1, shape).astype(F32)
    p.reshape(-1)[:2] = [0.0, 1.0]  # the clamped logs and the floored denominator
    return p


@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy"])
def test_pointwise_losses(rng, name, reduction):
    x = _probabilities(rng, (3, 4, 5))
    t = rng.uniform(0, 1, x.shape).astype(F32)
    forward, backward = getattr(fastnn, name), getattr(fastnn, f"{name}_backward")
    want = forward(x, t, reduction, backend="reference")
    for (layout, dx), (_, dt) in zip(device_layouts(x), device_layouts(t)):
        check(forward(dx, dt, reduction), want, f"{name} {reduction} {layout}")
    want = backward(x, t, reduction, backend="reference")
    check(backward(dev(x), dev(t), reduction), want, f"{name}_backward {reduction}")


def test_two_pass_sum_over_several_blocks(rng):
    """The flat sum with small blocks: grid-stride partials, then the one-block total."""
    x = rng.standard_normal(45).astype(F32)
    t = rng.standard_normal(45).astype(F32)
    partial = cuda.device_array(3, F32)
    loss_kernels(np.dtype(F32)).partial_sums[3, 4](MSE, dev(x), dev(t), partial)
    out = cuda.device_array(1, F32)
    total(partial, out, 0.5)
    want = 0.5 * fastnn.mse_loss(x, t, "sum", backend="reference")
    assert_close(host(out)[0], want, dtype=F32)


def test_cross_entropy(rng, reduction):
    x = (rng.standard_normal((5, 7)) * 5).astype(F32)
    t = rng.integers(0, 7, 5)
    for name in ("cross_entropy", "cross_entropy_backward"):
        want = getattr(fastnn, name)(x, t, reduction, backend="reference")
        for (layout, dx), (_, dt) in zip(device_layouts(x), device_layouts(t)):
            check(getattr(fastnn, name)(dx, dt, reduction), want, f"{name} {layout}")


def test_cross_entropy_long_rows_and_int32_targets(rng):
    x = rng.standard_normal((2, 70)).astype(F32)
    t = np.array([69, 0], dtype=np.int32)
    check(fastnn.cross_entropy(dev(x), dev(t)), fastnn.cross_entropy(x, t, backend="reference"))
    want = fastnn.cross_entropy_backward(x, t, "sum", backend="reference")
    check(fastnn.cross_entropy_backward(dev(x), dev(t), "sum"), want)


def test_empty_and_float64(rng):
    e = np.zeros((0, 3), F32)
    check(fastnn.mse_loss(dev(e), dev(e)), np.array(np.nan, F32), "mean of nothing")
    check(fastnn.binary_cross_entropy(dev(e), dev(e), "sum"), np.array(0, F32), "sum")
    check(fastnn.mse_loss(dev(e), dev(e), "none"), e, "none")
    t = np.zeros(0, np.int64)
    check(fastnn.cross_entropy(dev(e), dev(t)), np.array(np.nan, F32), "no rows")
    check(fastnn.cross_entropy_backward(dev(e), dev(t)), e, "no rows backward")
    x, y = rng.uniform(0, 1, (4, 3)), rng.uniform(0, 1, (4, 3))
    want = fastnn.binary_cross_entropy(x, y, backend="reference")
    check(fastnn.binary_cross_entropy(dev(x), dev(y)), want, "float64")


def test_invalid_values_are_found_on_the_device(rng):
    """The checks of targets and probabilities run the backend's _value_range kernel."""
    x = dev(rng.standard_normal((3, 4)).astype(F32))
    with pytest.raises(ValueError, match=r"must be in \[0, 4\)"):
        fastnn.cross_entropy(x, dev(np.array([0, 4, 1])))
    p = np.full((2, 2), 0.5, F32)
    p[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        fastnn.binary_cross_entropy(dev(p), dev(p))
