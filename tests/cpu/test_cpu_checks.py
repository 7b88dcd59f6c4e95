"""The cpu backend's ``_value_range`` (one parallel pass) against NumPy's min and max,
and the checks built on it still rejecting bad targets, indices and probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from fastnn._backends.cpu.checks import _value_range
from fastnn.kernels.cpu import dense as kernels

DTYPES = [np.int32, np.int64, np.float32, np.float64]
SIZES = [1, 2, 15, 16, 17, 65537, 300001]


def numpy_range(a):
    return a.min().item(), a.max().item()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_value_range_matches_numpy(dtype, n, threads):
    rng = np.random.default_rng(n * 7 + threads)
    a = (rng.standard_normal(n) * 1e6).astype(dtype)
    got = kernels.value_range(a, threads)
    assert got == numpy_range(a)
    assert [type(v) for v in got] == [type(v) for v in numpy_range(a)]


@pytest.mark.parametrize("where", [0, 1, 70000, -1])
def test_value_range_nan_inf_and_signed_zero(dtype, where):
    a = np.linspace(-3, 5, 140001).astype(dtype)
    b = a.copy()
    b[where] = np.nan
    assert all(math.isnan(v) for v in kernels.value_range(b, 2))
    b[where] = -np.inf
    assert kernels.value_range(b, 2) == numpy_range(b)
    assert kernels.value_range(b, 2)[0] == -math.inf
    b[where] = np.inf
    assert kernels.value_range(b, 2) == numpy_range(b)
    assert kernels.value_range(b, 2)[1] == math.inf
    lo, hi = kernels.value_range(np.array([-0.0, 0.0, -0.0], dtype=dtype), 1)
    assert lo == 0.0 and hi == 0.0
    tiny = np.finfo(dtype).smallest_subnormal
    assert kernels.value_range(np.array([tiny, -tiny, 0], dtype=dtype), 1) == (-tiny, tiny)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_value_range_integer_extremes(dtype):
    info = np.iinfo(dtype)
    a = np.array([0, info.max, info.min, 5], dtype=dtype)
    assert kernels.value_range(a, 1) == (int(info.min), int(info.max))


def test_value_range_kernel_rejects_what_it_cannot_read():
    with pytest.raises(ValueError):
        kernels.value_range(np.zeros(0), 1)
    with pytest.raises(ValueError):
        kernels.value_range(np.zeros((4, 4))[:, ::2], 1)
    with pytest.raises(TypeError):
        kernels.value_range(np.zeros(4, dtype=np.uint8), 1)
    with pytest.raises(TypeError):
        kernels.value_range(np.zeros(4, dtype=">f8"), 1)


@pytest.mark.parametrize(
    "a",
    [
        np.arange(24, dtype=np.int64).reshape(4, 6)[:, ::-2],  # strided
        np.arange(10, dtype=np.uint8),
        np.array([True, False]),
        np.arange(7, dtype=np.int16) - 3,
        np.arange(9, dtype=">i8"),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    ],
)
def test_op_falls_back_to_numpy_for_other_layouts_and_dtypes(a):
    assert _value_range(a) == numpy_range(a)


def test_the_checks_still_reject_bad_values_on_the_cpu_backend():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y, idx = fastnn.max_pool2d(x, 2, return_indices=True)
    gy = np.ones_like(y)
    for bad in (64, -1):
        wrong = idx.copy()
        wrong[1, 2, 3, 3] = bad
        with pytest.raises(ValueError, match="indices"):
            fastnn.max_pool2d_backward(gy, x, 2, indices=wrong)
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    with pytest.raises(ValueError):
        fastnn.cross_entropy(logits, np.array([0, 1, 4, 2, 3]))
    p = rng.random(6).astype(np.float32)
    p[3] = np.nan
    with pytest.raises(ValueError):
        fastnn.binary_cross_entropy(p, np.ones(6, np.float32))
