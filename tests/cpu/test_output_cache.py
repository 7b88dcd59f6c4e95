"""fastnn's cache for large outputs (kernels/cpu/output_cache.h): large arrays come from
it and go back to it when freed, the next output of the same size reuses the block, the
cap holds, and arrays from it behave like any NumPy array (resize, views, threads)."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
from numpy._core.multiarray import get_handler_name

import fastnn
from fastnn.kernels.cpu import output_cache as cache

LARGE = 2 * cache.MIN_BYTES // 4  # float32 elements: twice the threshold


@pytest.fixture(autouse=True)
def fresh():
    cache.clear()
    _, _, limit, _, _ = cache.stats()
    yield
    cache.set_limit(limit)
    cache.clear()


def test_large_arrays_come_from_the_cache_and_are_reused():
    a = cache.empty(LARGE, np.float32)
    assert get_handler_name(a) == "fastnn_output_cache" and a.shape == (LARGE,)
    a[:] = 3
    address = a.ctypes.data
    del a
    gc.collect()
    count, held, _, hits, _ = cache.stats()
    assert count == 1 and held >= LARGE * 4
    b = cache.empty(LARGE, np.float32)
    assert b.ctypes.data == address and cache.stats()[3] == hits + 1
    assert cache.stats()[0] == 0


def test_small_arrays_use_numpy():
    a = cache.empty(16, np.float64)
    assert get_handler_name(a) != "fastnn_output_cache"
    assert cache.zeros(16, np.float64).sum() == 0


def test_zeros_and_resize():
    z = cache.zeros(LARGE, np.float64)
    assert not z.any()
    z.resize(LARGE + 1000, refcheck=False)
    z[-1] = 7
    assert z.shape == (LARGE + 1000,) and z[-1] == 7 and not z[:LARGE].any()


def test_limit_and_clear():
    cache.set_limit(0)
    a = cache.empty(LARGE, np.float32)
    del a
    gc.collect()
    assert cache.stats()[:2] == (0, 0)
    cache.set_limit(3 * LARGE * 4)
    arrays = [cache.empty(LARGE + i, np.float32) for i in range(5)]
    del arrays
    gc.collect()
    count, held, limit, _, _ = cache.stats()
    assert held <= limit and count <= 3
    fastnn.empty_cache()
    assert cache.stats()[:2] == (0, 0)


def test_threads_allocate_and_free_concurrently():
    def work():
        for i in range(50):
            a = cache.empty(LARGE + (i % 3), np.float32)
            a[::4096] = i
            assert a[4096] == i
            del a

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count, held, limit, _, _ = cache.stats()
    assert held <= limit


def test_conv_outputs_use_the_cache(rng):
    x = rng.standard_normal((4, 16, 64, 64)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    y = fastnn.conv2d(x, w, None, 1, 1)
    assert get_handler_name(y.base if y.base is not None else y) == "fastnn_output_cache"
    want = fastnn.conv2d(x, w, None, 1, 1, backend="reference")
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-3)


def _from_cache(y: np.ndarray) -> bool:
    return get_handler_name(y.base if y.base is not None else y) == "fastnn_output_cache"


def test_dense_softmax_loss_and_sensitivity_outputs_use_the_cache(rng):
    """Large results of every engine and op family come from the cache, small ones from
    NumPy, and the values are still right."""
    from fastnn._backends.cpu._gemm import forced_engine

    a = rng.standard_normal((512, 24)).astype(np.float32)
    b = rng.standard_normal((24, 640)).astype(np.float32)  # a 1.25 MiB float32 result
    want = a.astype(np.float64) @ b
    for engine in ("blocked", "blas"):
        with forced_engine(engine):
            y = fastnn.gemm(a, b)
        assert _from_cache(y), engine
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)
    small = fastnn.gemm(a[:8], b[:, :8])
    assert not _from_cache(small)

    w = rng.standard_normal((640, 24)).astype(np.float32)
    gy = rng.standard_normal((512, 640)).astype(np.float32)
    y = fastnn.linear(a, w, None, activation="relu")
    assert _from_cache(y)
    np.testing.assert_allclose(y, np.maximum(a.astype(np.float64) @ w.T, 0), rtol=1e-5, atol=1e-4)
    gx, gw, _ = fastnn.linear_backward(gy, a, w)
    np.testing.assert_allclose(gx, gy.astype(np.float64) @ w, rtol=1e-5, atol=1e-3)

    s = fastnn.softmax(gy, dim=1)
    assert _from_cache(s)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-5)
    assert _from_cache(fastnn.softmax_backward(gy, s, dim=1))

    target = rng.standard_normal(gy.shape).astype(np.float32)
    g = fastnn.mse_loss_backward(gy, target, reduction="sum")
    assert _from_cache(g)
    np.testing.assert_allclose(g, 2 * (gy - target), rtol=1e-5, atol=1e-5)
    delta = fastnn.output_sensitivity(gy, target, gy, "relu", "mse")
    assert _from_cache(delta)


def test_readable_after_counts_the_tail_and_the_rest_of_the_block():
    """An array from the cache may be read TAIL_BYTES past its end, a view of it also up
    to the end of its block; other arrays (NumPy's, small ones, a view not C-contiguous,
    not an array) report 0."""
    a = cache.empty(LARGE, np.float32)
    tail = cache.TAIL_BYTES
    assert tail >= 64 * 8  # conv_direct's slack in float64 elements
    assert cache.readable_after(a) == tail
    assert cache.readable_after(a[:10]) == (LARGE - 10) * 4 + tail
    rows = a.reshape(-1, 1024)
    assert cache.readable_after(rows[:3]) == (LARGE - 3 * 1024) * 4 + tail
    assert cache.readable_after(rows[:, :3]) == 0  # not C-contiguous
    assert cache.readable_after(rows[1:2].reshape(-1)) == (LARGE - 2 * 1024) * 4 + tail
    assert cache.readable_after(np.ones(LARGE, np.float32)) == 0
    assert cache.readable_after(cache.empty(16, np.float32)) == 0
    assert cache.readable_after([1.0, 2.0]) == 0
    b = cache.empty(LARGE, np.float64)
    b.resize(10, refcheck=False)  # moved by realloc: still the cache's, tail included
    assert get_handler_name(b) == "fastnn_output_cache"
    assert cache.readable_after(b) == tail


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_conv_backward_reads_a_cached_gradient_in_place(dtype):
    """conv_direct's backward passes read whole vectors past the end of grad_output: a
    gradient from the cache (a view of a larger block here, NaN after its end) is handed
    over in place, a NumPy array as a copy with zeroed slack, and what lies after the
    gradient never reaches a result: both give the same gradients."""
    from fastnn._backends.cpu import _conv_direct

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 36, 37)).astype(dtype)
    w = rng.standard_normal((5, 3, 5, 5)).astype(dtype)
    shape = (64, 5, 32, 33)
    size = int(np.prod(shape))
    block = cache.empty(size + 1000, dtype)
    block[size:] = np.nan
    block[:size] = rng.standard_normal(size)
    gy = block[:size].reshape(shape)
    plain = np.array(gy)
    assert cache.readable_after(gy) >= _conv_direct._k.SLACK * x.itemsize
    assert np.shares_memory(_conv_direct.with_slack(gy), gy)  # in place
    copied = _conv_direct.with_slack(plain)
    assert not np.shares_memory(copied, plain) and copied.size == size + _conv_direct._k.SLACK
    got = fastnn.conv2d_backward(gy, x, w, algo="direct")
    want = fastnn.conv2d_backward(plain, x, w, algo="direct")
    for g, v in zip(got, want):
        assert np.isfinite(g).all()
        np.testing.assert_array_equal(g, v)
