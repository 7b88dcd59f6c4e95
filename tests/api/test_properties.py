"""Property-based checks (hypothesis): on any valid convolution or pooling configuration the
CPU backend agrees with the float64 reference, and the output shape is the documented one.

The seeded loops of the per-family tests cover chosen corners; these let hypothesis
search the whole parameter space (and shrink any failure to a minimal configuration).
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from tests.utils import assert_close

# FASTNN_HYPOTHESIS_EXAMPLES=3000 searches longer (a 2-minute run before a release).
SETTINGS = settings(
    max_examples=int(os.environ.get("FASTNN_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def conv_configs(draw):
    nd = draw(st.sampled_from([1, 2]))
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    same = draw(st.booleans())
    stride = (1,) * nd if same else tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = "same" if same else tuple(draw(st.integers(0, 3)) for _ in range(nd))
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    size = tuple(draw(st.integers(max(1, s - 2 * 3), s + 9)) for s in span)
    if not same:  # keep the padded input at least as large as the dilated kernel
        size = tuple(max(sz, s - 2 * p) for sz, s, p in zip(size, span, padding))
    batch = draw(st.integers(0, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    algo = draw(st.sampled_from(["auto", "im2col", "direct"]))
    return nd, batch, cin, cout, size, kernel, stride, padding, dilation, groups, dtype, algo


@SETTINGS
@given(config=conv_configs(), seed=st.integers(0, 2**16))
def test_conv_cpu_matches_reference(config, seed):
    nd, n, cin, cout, size, kernel, stride, padding, dilation, groups, dtype, algo = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size)).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    conv = fastnn.conv1d if nd == 1 else fastnn.conv2d
    backward = fastnn.conv1d_backward if nd == 1 else fastnn.conv2d_backward
    args = (stride, padding, dilation, groups)
    want = conv(x, w, b, *args, backend="reference")
    got = conv(x, w, b, *args, algo=algo, backend="cpu")
    assert got.dtype == dtype and got.flags.c_contiguous
    assert_close(got, want, dtype)
    gy = rng.standard_normal(want.shape).astype(dtype)
    for g, r in zip(
        backward(gy, x, w, *args, algo=algo, backend="cpu"),
        backward(gy, x, w, *args, backend="reference"),
    ):
        assert_close(g, r, dtype)


@st.composite
def pool_configs(draw):
    nd = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    ceil_mode = draw(st.booleans())
    size = tuple(
        draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 10)) for k, d in zip(kernel, dilation)
    )
    return nd, draw(st.integers(0, 2)), draw(st.integers(1, 3)), size, kernel, stride, \
        padding, dilation, ceil_mode, draw(st.booleans())  # fmt: skip


@SETTINGS
@given(config=pool_configs(), seed=st.integers(0, 2**16))
def test_pool_cpu_matches_reference(config, seed):
    nd, n, c, size, kernel, stride, padding, dilation, ceil_mode, include_pad = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, *size))
    max_pool = fastnn.max_pool1d if nd == 1 else fastnn.max_pool2d
    max_back = fastnn.max_pool1d_backward if nd == 1 else fastnn.max_pool2d_backward
    avg_pool = fastnn.avg_pool1d if nd == 1 else fastnn.avg_pool2d
    avg_back = fastnn.avg_pool1d_backward if nd == 1 else fastnn.avg_pool2d_backward
    margs = (kernel, stride, padding, dilation, ceil_mode)
    try:
        want, want_idx = max_pool(x, *margs, return_indices=True, backend="reference")
    except ValueError:  # a window of taps that all land in the padding: both must refuse
        try:
            max_pool(x, *margs, backend="cpu")
        except ValueError:
            return
        raise AssertionError("cpu accepted a configuration the reference refused") from None
    got, got_idx = max_pool(x, *margs, return_indices=True, backend="cpu")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_idx, want_idx)
    gy = rng.standard_normal(want.shape)
    assert_close(
        max_back(gy, x, *margs, indices=got_idx, backend="cpu"),
        max_back(gy, x, *margs, backend="reference"),
    )
    aargs = (kernel, stride, padding, ceil_mode, include_pad)
    want = avg_pool(x, *aargs, backend="reference")
    assert_close(avg_pool(x, *aargs, backend="cpu"), want)
    gy = rng.standard_normal(want.shape)
    assert_close(
        avg_back(gy, x, *aargs, backend="cpu"), avg_back(gy, x, *aargs, backend="reference")
    )
