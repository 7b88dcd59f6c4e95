"""The CPU activations (relu, sigmoid, tanh) and activation_backward against the float64
reference backend and PyTorch: random and extreme values (+-inf, NaN, -0.0, tiny and
huge magnitudes), every shape from 0-d to 4-d, arrays large enough to run on several
threads, and every memory layout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from tests.utils import (
    FLOAT_DTYPES,
    assert_close,
    assert_layout_independent,
    import_torch,
    requires_torch,
)

NAMES = ["relu", "sigmoid", "tanh"]
SHAPES = [(), (0,), (1,), (17,), (3, 5), (2, 3, 4, 5), (70001,)]
_DEFAULT_THREADS = fastnn.get_num_threads()

EXTREMES = [
    0.0,
    -0.0,
    1e-30,
    -1e-30,
    1e-8,
    -1e-8,
    0.5,
    -0.5,
    1.0,
    -3.0,
    9.0,
    -9.0,
    20.0,
    -20.0,
    50.0,
    -88.0,
    89.0,
    -100.0,
    710.0,
    -750.0,
    1e30,
    -1e30,
    np.inf,
    -np.inf,
    np.nan,
]


def _forward(name):
    return getattr(fastnn, name)


def _values(rng, shape, dtype):
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    if x.size >= len(EXTREMES):
        x.reshape(-1)[: len(EXTREMES)] = np.array(EXTREMES).astype(dtype)
    return x


def _reference(name, x):
    """The float64-accurate reference's forward (overflow to inf is expected)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _forward(name)(x, backend="reference")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_reference(name, shape, dtype, rng):
    x = _values(rng, shape, dtype)
    want = _reference(name, x)
    got = _forward(name)(x)
    assert got.dtype == dtype and got.shape == x.shape and got.flags.c_contiguous
    assert_close(got, want, dtype)


@pytest.mark.parametrize("name", NAMES)
def test_extreme_values(name, dtype):
    x = np.array(EXTREMES, dtype=dtype)
    want = _reference(name, x)
    got = _forward(name)(x)
    assert_close(got, want, dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(x))
    if name != "relu":  # sigmoid and tanh saturate exactly
        lim = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}[name]
        assert got[EXTREMES.index(np.inf)] == lim[1] and got[EXTREMES.index(-np.inf)] == lim[0]


def test_tanh_keeps_relative_accuracy_near_zero(dtype):
    x = np.array([1e-30, -1e-20, 1e-10, 3e-5], dtype=dtype)
    np.testing.assert_allclose(fastnn.tanh(x), np.tanh(x), rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_reference(name, shape, dtype, rng):
    x = _values(rng, shape, dtype)
    y = _reference(name, x)
    gy = rng.standard_normal(shape).astype(dtype)
    want = fastnn.activation_backward(name, gy, y, backend="reference")
    got = fastnn.activation_backward(name, gy, y)
    assert got.dtype == dtype and got.shape == y.shape
    assert_close(got, want, dtype)


@pytest.mark.parametrize("name", NAMES)
def test_every_memory_layout(name, rng):
    x = rng.standard_normal((7, 9)).astype(np.float32)
    y = _forward(name)(x)
    gy = rng.standard_normal((7, 9)).astype(np.float32)
    assert_layout_independent(_forward(name), x, what=name)
    assert_layout_independent(
        lambda g, out: fastnn.activation_backward(name, g, out), gy, y, what=name
    )


def test_numpy_scalars_and_0d_arrays():
    assert fastnn.relu(np.float32(-2.0)).shape == ()
    assert float(fastnn.sigmoid(np.float64(0.0))) == 0.5
    assert fastnn.tanh(np.array(0.0, dtype=np.float32)).dtype == np.float32


@requires_torch
@pytest.mark.parametrize("name", NAMES)
def test_forward_and_backward_match_torch(name, rng):
    torch = import_torch()
    x = _values(rng, (40, 31), np.float64)
    x[np.isinf(x) | np.isnan(x)] = 0.0  # torch's gradients at inf differ in convention
    gy = rng.standard_normal(x.shape)
    t = torch.tensor(x, requires_grad=True)
    y = getattr(torch, name)(t)
    y.backward(torch.tensor(gy))
    for dtype in FLOAT_DTYPES:
        got = _forward(name)(x.astype(dtype))
        assert_close(got, y.detach().numpy(), dtype)
        grad = fastnn.activation_backward(name, gy.astype(dtype), got)
        assert_close(grad, t.grad.numpy(), dtype)


def test_relu_backward_passes_gradient_through_nan_output():
    """As PyTorch: the gradient is zeroed where y <= 0 only."""
    y = np.array([np.nan, 0.0, -1.0, 2.0])
    g = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(fastnn.activation_backward("relu", g, y), [1.0, 0.0, 0.0, 4.0])


def test_relu_streamed_and_plain_paths_agree(dtype, rng):
    """relu streams its result when a call's arrays outgrow the last-level cache (twice
    its size, read at load); forced either way here, any alignment of the result and any
    tail length give exact results."""
    from fastnn.kernels.cpu import activation as kernels

    n = (1 << 17) + 37
    x = rng.standard_normal(n + 1).astype(dtype)[1:]  # misaligned start
    x[:3] = [np.nan, -0.0, np.inf]
    g = rng.standard_normal(n).astype(dtype)
    shipped = kernels.stream_bytes()
    assert shipped >= 2 * (1 << 20)  # at least twice a (tiny) last-level cache
    try:
        for stream_from, threads in itertools.product((1, 1 << 62), (1, 2)):
            kernels.set_stream_bytes(stream_from)
            fastnn.set_num_threads(threads)
            np.testing.assert_array_equal(fastnn.relu(x), np.where(x < 0, 0, x))
            want = np.where(x <= 0, 0, g)
            np.testing.assert_array_equal(fastnn.activation_backward("relu", g, x), want)
    finally:
        kernels.set_stream_bytes(shipped)
        fastnn.set_num_threads(_DEFAULT_THREADS)


def test_cache_sizes_come_from_the_system_or_a_default(tmp_path, monkeypatch):
    """llc_bytes reads the L3 (else the L2) of cpu0 from sysfs; the relu streaming
    threshold follows it."""
    from fastnn import _machine

    assert _machine.llc_bytes() >= _machine.l2_bytes() > 0
    for level, kind, size in ((1, "Instruction", "32K"), (2, "Unified", "2048K")):
        index = tmp_path / f"index{level}"
        index.mkdir()
        (index / "level").write_text(f"{level}\n")
        (index / "type").write_text(f"{kind}\n")
        (index / "size").write_text(f"{size}\n")
    real_path = _machine.Path
    monkeypatch.setattr(
        _machine, "Path", lambda p: tmp_path if "cpu0/cache" in str(p) else real_path(p)
    )
    assert _machine._cache_bytes(3) is None and _machine._cache_bytes(2) == 2 << 20
    assert _machine._cache_bytes(1) is None  # an instruction cache is not data
