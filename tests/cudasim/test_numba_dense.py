"""gemm, linear, linear_backward and the GEMM kernel itself on the numba-cuda backend
(simulator), against the reference backend."""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

import fastnn
from fastnn._backends.numba_cuda._gemm import matmul
from fastnn.kernels.numba_cuda.gemm import LARGE, SMALL, WIDE
from tests.cudasim.devices import check, dev, device_layouts, host
from tests.utils import assert_close

pytestmark = pytest.mark.cudasim

F32 = np.float32


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("trans_a", [False, True])
def test_gemm_transposes_and_c_broadcast(rng, trans_a, trans_b):
    m, k, n = 5, 19, 37  # K spans two slices of SMALL, N two tiles, all ragged
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(F32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(F32)
    c_shape = [(m, n), (n,), (m, 1), ()][2 * trans_a + trans_b]
    c = rng.standard_normal(c_shape).astype(F32)
    kw = dict(alpha=0.5, beta=-2.0, trans_a=trans_a, trans_b=trans_b)
    want = fastnn.gemm(a, b, c, **kw, backend="reference")
    check(fastnn.gemm(dev(a), dev(b), dev(c), **kw), want, "gemm")


def test_gemm_beta_zero_ignores_c_and_k_zero(rng):
    a, b = rng.standard_normal((3, 4)).astype(F32), rng.standard_normal((4, 2)).astype(F32)
    c = np.full((3, 2), np.nan, F32)
    check(fastnn.gemm(dev(a), dev(b), dev(c)), a @ b, "beta=0 with NaN c")
    empty_a, empty_b = np.zeros((3, 0), F32), np.zeros((0, 2), F32)
    c = rng.standard_normal((3, 2)).astype(F32)
    check(fastnn.gemm(dev(empty_a), dev(empty_b), dev(c), beta=3.0), 3 * c, "K = 0")
    check(fastnn.gemm(dev(np.zeros((0, 4), F32)), dev(b)), np.zeros((0, 2), F32), "M = 0")


def test_gemm_strided_inputs(rng):
    a, b = rng.standard_normal((4, 6)).astype(F32), rng.standard_normal((6, 3)).astype(F32)
    want = fastnn.gemm(a, b, backend="reference")
    for (name_a, da), (name_b, db) in zip(device_layouts(a), device_layouts(b)):
        before = host(da)
        check(fastnn.gemm(da, db), want, f"gemm {name_a}/{name_b}")
        np.testing.assert_array_equal(host(da), before)  # the input is untouched


@pytest.mark.parametrize("tile", [LARGE, WIDE, SMALL], ids=["LARGE", "WIDE", "SMALL"])
def test_gemm_kernel_tiles_batches_and_epilogue(rng, tile):
    """Both blockings, a batch of 3 against a shared (batch-1) A, bias along M, the
    derivative epilogue and an activation, all at once."""
    batch, m, k, n = 3, 9, 11, 14
    if tile is not SMALL:  # blocks of 256 threads: slow in the simulator, keep one
        batch, m, n = 1, 20, 5
    a = rng.standard_normal((1, k, m)).astype(F32)  # stored transposed
    b = rng.standard_normal((batch, k, n)).astype(F32)
    bias = rng.standard_normal((1, m)).astype(F32)
    u = rng.standard_normal((batch, m, n)).astype(F32)
    out = cuda.device_array((batch, m, n), F32)
    matmul(
        dev(a), dev(b), out, trans_a=True, alpha=2.0, bias=dev(bias), bias_axis=0,
        preact=dev(u), derivative="sigmoid", activation="tanh", tile=tile,
    )  # fmt: skip
    s = 1 / (1 + np.exp(-u.astype(np.float64)))
    v = 2.0 * np.einsum("km,zkn->zmn", a[0].astype(np.float64), b) + bias[0][:, None]
    assert_close(host(out), np.tanh(v * s * (1 - s)), dtype=F32)


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
def test_linear(rng, activation):
    x = rng.standard_normal((2, 3, 7)).astype(F32)  # (..., in): rows = 6
    w = rng.standard_normal((5, 7)).astype(F32)
    b = rng.standard_normal(5).astype(F32)
    bias = b if activation != "relu" else None
    want = fastnn.linear(x, w, bias, activation=activation, backend="reference")
    got = fastnn.linear(dev(x), dev(w), dev(bias) if bias is not None else None,
                        activation=activation)  # fmt: skip
    check(got, want, f"linear {activation}")


def test_linear_empty_batch_and_float64(rng):
    w = rng.standard_normal((3, 4))
    check(fastnn.linear(dev(np.zeros((0, 4))), dev(w)), np.zeros((0, 3)), "no rows")
    x = rng.standard_normal((2, 4))
    check(fastnn.linear(dev(x), dev(w), activation="tanh"), np.tanh(x @ w.T), "float64")


@pytest.mark.parametrize("mask", [(True, True, True), (False, True, False), (True, False, True)])
def test_linear_backward(rng, mask):
    gy = rng.standard_normal((6, 5)).astype(F32)
    x = rng.standard_normal((6, 7)).astype(F32)
    w = rng.standard_normal((5, 7)).astype(F32)
    want = fastnn.linear_backward(gy, x, w, output_mask=mask, backend="reference")
    check(fastnn.linear_backward(dev(gy), dev(x), dev(w), output_mask=mask), want, str(mask))


def test_linear_backward_many_columns_and_no_rows(rng):
    """Column sums with a thread per column (>= 256 columns), and over no rows at all."""
    gy = rng.standard_normal((3, 260)).astype(F32)
    x = rng.standard_normal((3, 2)).astype(F32)
    w = rng.standard_normal((260, 2)).astype(F32)
    mask = (False, False, True)
    want = fastnn.linear_backward(gy, x, w, output_mask=mask, backend="reference")
    check(fastnn.linear_backward(dev(gy), dev(x), dev(w), output_mask=mask), want, "wide")
    empty = [np.zeros((0, 5), F32), np.zeros((0, 2), F32), w[:5]]
    want = fastnn.linear_backward(*empty, backend="reference")
    check(fastnn.linear_backward(*(dev(a) for a in empty)), want, "no rows")
