"""The Cython adaptive pooling kernels (backend "cpu") against the float64 reference and
PyTorch: random shapes (In not a multiple of Out, Out > In, global 1 x 1, the plain-pool
path when In is a multiple of Out), batch 0 and 1, every memory layout, float32 and
float64, NaN / inf / ties, 1 and 2 threads, and inputs large enough for the parallel
path."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.utils import (
    assert_close,
    assert_layout_independent,
    import_torch,
    layouts,
    requires_torch,
)

#: (input spatial size, output size): every kernel path of fastnn/_backends/cpu/pool.py
PATHS = [
    ((7, 5), (3, 2)),  # general windows, overlapping
    ((4, 3), (6, 5)),  # Out > In: repeated elements
    ((9, 7), (1, 1)),  # global pooling
    ((8, 6), (4, 3)),  # In a multiple of Out: the plain pooling kernels
    ((8, 6), (8, 6)),  # identity windows
    ((1, 1), (3, 2)),
    ((13, 11), (None, 4)),
]


def _input(rng, shape, dtype, special: bool = True) -> np.ndarray:
    x = rng.standard_normal(shape)
    if special and x.size > 8:
        flat = x.reshape(-1)
        flat[rng.choice(flat.size, 4, replace=False)] = [np.nan, np.inf, -np.inf, np.nan]
        flat[: flat.size // 4] = np.round(flat[: flat.size // 4])  # ties
    return x.astype(dtype)


def _check_all(x, size, gy, dtype):
    """Every 2-D adaptive op, cpu vs reference, on x (any layout)."""
    for op, args in (("adaptive_avg_pool2d", (size,)), ("adaptive_max_pool2d", (size, True))):
        got = getattr(fastnn, op)(x, *args, backend="cpu")
        want = getattr(fastnn, op)(x, *args, backend="reference")
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.flags.c_contiguous
            if w.dtype == np.int64:
                np.testing.assert_array_equal(g, w, err_msg=f"{op} indices {x.shape} {size}")
            else:
                assert_close(g, w, dtype, what=f"{op} {x.shape} {size}")
    _, index = fastnn.adaptive_max_pool2d(x, size, True, backend="reference")
    want = fastnn.adaptive_avg_pool2d_backward(gy, x, backend="reference")
    assert_close(fastnn.adaptive_avg_pool2d_backward(gy, x, backend="cpu"), want, dtype)
    want = fastnn.adaptive_max_pool2d_backward(gy, x, index, backend="reference")
    for indices in (None, index):
        got = fastnn.adaptive_max_pool2d_backward(gy, x, indices, backend="cpu")
        assert_close(got, want, dtype, what=f"max backward {x.shape} {size}")


@pytest.mark.parametrize("spatial, size", PATHS)
def test_every_path_matches_reference(rng, dtype, spatial, size, threads):
    for batch in (0, 1, 3):
        x = _input(rng, (batch, 2, *spatial), dtype)
        out = fastnn.adaptive_avg_pool2d(x, size, backend="reference").shape
        gy = rng.standard_normal(out).astype(dtype)
        _check_all(x, size, gy, dtype)


def test_random_shapes_match_reference(rng, dtype, threads):
    for _ in range(25):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                 *(int(v) for v in rng.integers(1, 15, 2)))  # fmt: skip
        size = tuple(int(v) for v in rng.integers(1, 17, 2))
        x = _input(rng, shape, dtype)
        gy = rng.standard_normal((*shape[:2], *size)).astype(dtype)
        _check_all(x, size, gy, dtype)
        # 1-D average pooling: one row of the 2-D kernels
        x1 = x[:, :, 0]
        got = fastnn.adaptive_avg_pool1d(x1, size[1], backend="cpu")
        assert_close(got, fastnn.adaptive_avg_pool1d(x1, size[1], backend="reference"), dtype)
        g1 = gy[:, :, 0]
        got = fastnn.adaptive_avg_pool1d_backward(g1, x1, backend="cpu")
        want = fastnn.adaptive_avg_pool1d_backward(g1, x1, backend="reference")
        assert_close(got, want, dtype)


@pytest.mark.parametrize("spatial, size", [((37, 41), (5, 7)), ((32, 32), (1, 1)),
                                           ((32, 30), (4, 5)), ((20, 20), (40, 3))])  # fmt: skip
def test_parallel_path_matches_reference(rng, dtype, spatial, size, threads):
    x = _input(rng, (3, 11, *spatial), dtype)  # >= 2**15 elements: split over threads
    gy = rng.standard_normal((3, 11, *size)).astype(dtype)
    _check_all(x, size, gy, dtype)


def test_any_layout_gives_the_same_result(rng, dtype):
    x = _input(rng, (2, 3, 7, 9), dtype)
    gy = rng.standard_normal((2, 3, 3, 4)).astype(dtype)
    for size in ((3, 4), (1, 1), (7, 3)):
        assert_layout_independent(lambda a, s=size: fastnn.adaptive_avg_pool2d(a, s), x)
        assert_layout_independent(lambda a, s=size: fastnn.adaptive_max_pool2d(a, s, True), x)
    assert_layout_independent(lambda g, a: fastnn.adaptive_avg_pool2d_backward(g, a), gy, x)
    assert_layout_independent(lambda g, a: fastnn.adaptive_max_pool2d_backward(g, a), gy, x)
    for _, view in layouts(x):
        _check_all(view, (3, 4), gy, dtype)


@requires_torch
def test_matches_torch(rng, dtype, threads):
    torch = import_torch()
    F = torch.nn.functional
    for spatial, size in [((7, 5), (3, 2)), ((14, 14), (1, 1)), ((8, 6), (4, 3)),
                          ((5, 4), (7, 9)), ((33, 17), (6, 5))]:  # fmt: skip
        x = _input(rng, (2, 4, *spatial), dtype, special=False)
        xt = torch.tensor(x, requires_grad=True)
        yt = F.adaptive_avg_pool2d(xt, size)
        assert_close(fastnn.adaptive_avg_pool2d(x, size), yt.detach().numpy(), dtype)
        gy = rng.standard_normal(yt.shape).astype(dtype)
        yt.backward(torch.tensor(gy))
        assert_close(fastnn.adaptive_avg_pool2d_backward(gy, x), xt.grad.numpy(), dtype)
        xt = torch.tensor(x, requires_grad=True)
        yt, it = F.adaptive_max_pool2d(xt, size, return_indices=True)
        y, index = fastnn.adaptive_max_pool2d(x, size, return_indices=True)
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(index, it.numpy())
        yt.backward(torch.tensor(gy))
        assert_close(fastnn.adaptive_max_pool2d_backward(gy, x, index), xt.grad.numpy(), dtype)
        x1 = x[:, :, 0]
        want = F.adaptive_avg_pool1d(torch.tensor(x1), size[1]).numpy()
        assert_close(fastnn.adaptive_avg_pool1d(x1, size[1]), want, dtype)


def test_indices_of_any_integer_dtype_are_accepted(rng):
    x = rng.standard_normal((2, 3, 7, 5))
    y, index = fastnn.adaptive_max_pool2d(x, (3, 2), True)
    gy = rng.standard_normal(y.shape)
    want = fastnn.adaptive_max_pool2d_backward(gy, x, index)
    for dtype in (np.int32, np.uint16):
        got = fastnn.adaptive_max_pool2d_backward(gy, x, index.astype(dtype))
        np.testing.assert_array_equal(got, want)


@pytest.fixture(params=[True, False], ids=["avx2", "portable"])
def global_isa(request):
    from fastnn.kernels.cpu import pool_adaptive

    pool_adaptive.use_avx2(request.param)
    yield request.param
    pool_adaptive.use_avx2(True)


def test_global_pooling_every_plane_size(rng, dtype, global_isa):
    """Every tail length of the vector sums (plane sizes 1 .. 80, and a large plane)."""
    for n in (*range(1, 81), 3136):
        x = _input(rng, (2, 3, 1, n), dtype, special=n % 7 == 0)
        got = fastnn.adaptive_avg_pool2d(x, 1, backend="cpu")
        assert_close(got, fastnn.adaptive_avg_pool2d(x, 1, backend="reference"), dtype)
        x2 = x.reshape(2, 3, n, 1)
        got = fastnn.adaptive_avg_pool2d(x2, (1, 1), backend="cpu")
        assert_close(got, fastnn.adaptive_avg_pool2d(x2, 1, backend="reference"), dtype)
