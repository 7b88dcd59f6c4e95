"""The Cython pooling kernels (backend "cpu") against the float64 reference backend and
PyTorch: max/avg pooling, 1-D and 2-D, forward and backward, on random geometries (odd
sizes, stride, padding, dilation, ceil_mode, count_include_pad), batch 0 and 1, every
memory layout, float32 and float64, and inputs full of ties, NaN and -inf."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest

import fastnn
from fastnn._geometry import PoolGeometry, pool_geometry
from fastnn.ops import pool as ops
from tests.utils import HAS_TORCH, assert_close, layouts, torch_grads


@dataclass
class Config:
    """One pooling call: input shape and the keyword arguments of the op."""

    nd: int
    shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool

    def max_kwargs(self) -> dict:
        return dict(
            kernel_size=self.kernel,
            stride=self.stride,
            padding=self.pad,
            dilation=self.dilation,
            ceil_mode=self.ceil_mode,
        )

    def avg_kwargs(self, count_include_pad: bool) -> dict:
        return dict(
            kernel_size=self.kernel,
            stride=self.stride,
            padding=self.pad,
            ceil_mode=self.ceil_mode,
            count_include_pad=count_include_pad,
        )


def random_config(rng: np.random.Generator, nd: int, dilated: bool, batch=None) -> Config:
    """A valid pooling geometry (padding at most half the kernel, room for at least one
    window, no window of padding only), odd sizes common."""
    while True:
        cfg = _draw_config(rng, nd, dilated, batch)
        try:
            pool_geometry(
                "test", nd, cfg.shape, cfg.kernel, cfg.stride, cfg.pad, cfg.dilation, cfg.ceil_mode
            )
        except ValueError:  # e.g. a dilated window that skips every input element
            continue
        return cfg


def _draw_config(rng: np.random.Generator, nd: int, dilated: bool, batch) -> Config:
    kernel, stride, pad, dilation, size = [], [], [], [], []
    for _ in range(nd):
        k = int(rng.integers(1, 6))
        d = int(rng.integers(1, 4)) if dilated else 1
        p = int(rng.integers(0, k // 2 + 1))
        reach = d * (k - 1) + 1
        kernel.append(k)
        dilation.append(d)
        pad.append(p)
        stride.append(int(rng.integers(1, 5)))
        size.append(max(1, reach - 2 * p) + int(rng.integers(0, 9)))
    n = int(rng.integers(0, 4)) if batch is None else batch
    c = int(rng.integers(1, 4))
    return Config(
        nd,
        (n, c, *size),
        tuple(kernel),
        tuple(stride),
        tuple(pad),
        tuple(dilation),
        bool(rng.integers(0, 2)),
    )


def max_op(nd: int):
    return ops.max_pool1d if nd == 1 else ops.max_pool2d


def max_backward_op(nd: int):
    return ops.max_pool1d_backward if nd == 1 else ops.max_pool2d_backward


def avg_op(nd: int):
    return ops.avg_pool1d if nd == 1 else ops.avg_pool2d


def avg_backward_op(nd: int):
    return ops.avg_pool1d_backward if nd == 1 else ops.avg_pool2d_backward


def special_values(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Few distinct values (so windows hold duplicate maxima), some NaN and -inf."""
    x = rng.integers(-3, 3, size=shape).astype(dtype)
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.1] = -np.inf
    return x


def check_max(cfg: Config, x: np.ndarray, gy: np.ndarray) -> None:
    """max pooling of x (every layout) on "cpu" equals the reference exactly (values and
    indices), and so does its gradient, with and without indices."""
    kw = cfg.max_kwargs()
    want, want_index = max_op(cfg.nd)(x, **kw, return_indices=True, backend="reference")
    want_grad = max_backward_op(cfg.nd)(gy, x, **kw, backend="reference")
    for name, xl in layouts(x):
        what = f"{cfg} {x.dtype} {name}"
        got, index = max_op(cfg.nd)(xl, **kw, return_indices=True, backend="cpu")
        plain = max_op(cfg.nd)(xl, **kw, backend="cpu")
        assert got.dtype == x.dtype and got.flags.c_contiguous, what
        assert index.dtype == np.int64 and index.flags.c_contiguous, what
        np.testing.assert_array_equal(got, want, err_msg=what)
        np.testing.assert_array_equal(plain, want, err_msg=what)
        np.testing.assert_array_equal(index, want_index, err_msg=what)
        for gyl_name, gyl in layouts(gy):
            grad = max_backward_op(cfg.nd)(gyl, xl, **kw, backend="cpu")
            assert grad.dtype == x.dtype and grad.flags.c_contiguous, what
            assert_close(grad, want_grad, x.dtype, what=f"{what} recompute, gy {gyl_name}")
        if (want_index >= 0).all():  # a window of padding only has no valid index
            grad = max_backward_op(cfg.nd)(gy, xl, **kw, indices=index, backend="cpu")
            assert_close(grad, want_grad, x.dtype, what=f"{what} with indices")


def check_avg(cfg: Config, x: np.ndarray, gy: np.ndarray, count_include_pad: bool) -> None:
    """average pooling of x (every layout) on "cpu" matches the reference, forward and
    backward."""
    kw = cfg.avg_kwargs(count_include_pad)
    want = avg_op(cfg.nd)(x, **kw, backend="reference")
    want_grad = avg_backward_op(cfg.nd)(gy, x, **kw, backend="reference")
    for name, xl in layouts(x):
        what = f"{cfg} {x.dtype} {name} count_include_pad={count_include_pad}"
        got = avg_op(cfg.nd)(xl, **kw, backend="cpu")
        assert got.dtype == x.dtype and got.flags.c_contiguous, what
        assert_close(got, want, x.dtype, what=what)
    for name, gyl in layouts(gy):
        grad = avg_backward_op(cfg.nd)(gyl, x, **kw, backend="cpu")
        assert grad.dtype == x.dtype and grad.flags.c_contiguous, what
        assert_close(grad, want_grad, x.dtype, what=f"{what} gy {name}")


@pytest.mark.parametrize("nd", [1, 2])
def test_max_pool_matches_reference_on_random_configs(rng, nd, dtype):
    for trial in range(25):
        cfg = random_config(rng, nd, dilated=True, batch=1 if trial == 0 else None)
        x = rng.standard_normal(cfg.shape).astype(dtype)
        y_shape = max_op(nd)(x, **cfg.max_kwargs(), backend="reference").shape
        check_max(cfg, x, rng.standard_normal(y_shape).astype(dtype))


@pytest.mark.parametrize("nd", [1, 2])
def test_max_pool_ties_nan_and_inf_match_reference(rng, nd, dtype):
    for _ in range(15):
        cfg = random_config(rng, nd, dilated=True)
        x = special_values(rng, cfg.shape, dtype)
        y_shape = max_op(nd)(x, **cfg.max_kwargs(), backend="reference").shape
        check_max(cfg, x, rng.standard_normal(y_shape).astype(dtype))


@pytest.mark.parametrize(
    "nd, shape",
    [(2, (2, 3, 7, 7)), (2, (1, 2, 1, 1)), (2, (3, 2, 5, 3)), (2, (1, 2, 4, 8)), (2, (2, 2, 9, 9)),
     (2, (1, 1, 33, 31)), (1, (2, 3, 31)), (1, (1, 2, 32)), (1, (2, 1, 1000))],
)  # fmt: skip
def test_global_max_pool_scans_whole_planes(rng, nd, shape, dtype):
    """A window that is its whole plane (global max pooling) is one scan of the plane, in
    lanes merged by the sequential rule: planes shorter and longer than two lanes' worth,
    ties (the first), NaN (the last) and -inf, with and without indices, dilation along a
    one-tap axis, and the gradients."""
    window = shape[2:]
    ties = rng.integers(-3, 3, size=shape).astype(dtype)  # many equal maxima, no NaN
    for x in (rng.standard_normal(shape).astype(dtype), ties, special_values(rng, shape, dtype)):
        gy = rng.standard_normal(shape[:2] + (1,) * nd).astype(dtype)
        for dilation in ((1,) * nd, (2,) * nd):
            if any(d > 1 and k > 1 for d, k in zip(dilation, window)):
                continue
            cfg = Config(nd, shape, window, window, (0,) * nd, dilation, False)
            check_max(cfg, x, gy)


@pytest.mark.parametrize("nd", [1, 2])
def test_avg_pool_matches_reference_on_random_configs(rng, nd, dtype):
    for trial in range(25):
        cfg = random_config(rng, nd, dilated=False, batch=1 if trial == 0 else None)
        x = rng.standard_normal(cfg.shape).astype(dtype)
        for count_include_pad in (True, False):
            kw = cfg.avg_kwargs(count_include_pad)
            y_shape = avg_op(nd)(x, **kw, backend="reference").shape
            check_avg(cfg, x, rng.standard_normal(y_shape).astype(dtype), count_include_pad)


# windows that tile each row exactly (kernel = stride along it, one-row windows): the
# rows of all planes pool as fewer, longer rows (fastnn/_backends/cpu/pool.py: _merged),
# row counts prime or not, with and without dilation of a one-element window
TILED_ROWS = [
    Config(1, (8, 16, 50), (2,), (2,), (0,), (1,), False),
    Config(1, (7, 13, 9), (3,), (3,), (0,), (1,), False),
    Config(1, (1, 1, 4), (4,), (4,), (0,), (1,), False),
    Config(1, (3, 5, 6), (1,), (1,), (0,), (2,), False),
    Config(2, (2, 3, 5, 12), (1, 4), (1, 4), (0, 0), (1, 1), True),
    Config(2, (3, 2, 7, 6), (1, 2), (1, 2), (0, 0), (1, 1), False),
]


@pytest.mark.parametrize("cfg", TILED_ROWS, ids=str)
def test_rows_tiled_by_their_windows_pool_as_longer_rows(rng, cfg, dtype):
    from fastnn._backends.cpu import pool as cpu_pool

    kw = cfg.max_kwargs()
    geom = pool_geometry(f"max_pool{cfg.nd}d", cfg.nd, cfg.shape, kw["kernel_size"],
                         kw["stride"], kw["padding"], kw["dilation"], kw["ceil_mode"])  # fmt: skip
    rows = int(np.prod(cfg.shape[:-1]))
    merged = cpu_pool._merged(geom.plane, int(np.prod(cfg.shape[:2])))
    assert (merged is None) == (rows == 1)
    x = rng.standard_normal(cfg.shape).astype(dtype)
    y_shape = max_op(cfg.nd)(x, **cfg.max_kwargs(), backend="reference").shape
    check_max(cfg, x, rng.standard_normal(y_shape).astype(dtype))
    check_avg(cfg, x, rng.standard_normal(y_shape).astype(dtype), True)


def test_rows_not_tiled_stay_alone():
    from fastnn._backends.cpu import pool as cpu_pool

    for kernel, stride, padding, ceil_mode in (
        (3, 2, 0, False),  # overlapping windows
        (2, 2, 1, False),  # padding
        (2, 2, 0, True),  # a window past the end
    ):
        geom = pool_geometry("max_pool1d", 1, (2, 3, 9), kernel, stride, padding, 1, ceil_mode)
        assert cpu_pool._merged(geom.plane, 6) is None, (kernel, stride, padding, ceil_mode)
    square = pool_geometry("max_pool2d", 2, (2, 3, 8, 8), 2, 2, 0, 1, False)  # two-row windows
    assert cpu_pool._merged(square.plane, 6) is None


# (shape, kernel_size, stride, padding, ceil_mode): the layers of real networks and the
# special paths of the kernels (strides 1-4 and beyond, windows side by side, global
# pooling, ceil_mode windows hanging over odd edges, 1-D)
COMMON_LAYERS = [
    ((2, 3, 12, 12), 2, 2, 0, False),
    ((2, 3, 13, 11), 2, 2, 0, True),
    ((2, 3, 11, 13), 2, 2, 1, True),
    ((2, 3, 15, 14), 3, 2, 1, False),
    ((2, 3, 15, 14), 3, 2, 1, True),
    ((2, 3, 10, 11), 3, 3, 0, True),
    ((2, 3, 17, 19), 5, 4, 2, True),
    ((2, 3, 16, 23), (2, 3), 5, (1, 1), True),
    ((2, 3, 7, 7), 7, 7, 0, False),
    ((2, 3, 7, 5), (7, 5), 1, 0, False),
    ((2, 3, 9, 17), (2, 4), (3, 4), (1, 2), True),
    ((2, 3, 9, 9), 1, 2, 0, False),
    ((2, 3, 1, 1), 1, 1, 0, False),
    ((2, 3, 21), 4, 4, 2, True),
    ((2, 3, 50), 3, 1, 1, False),
    ((2, 3, 9), 9, 1, 0, False),
]


def _tuple(value, nd: int) -> tuple[int, ...]:
    return (value,) * nd if isinstance(value, int) else tuple(value)


@pytest.fixture(params=["avx2", "portable"])
def simd(request):
    """Run a test with the kernels' AVX2 build (where the CPU has it) and portable build."""
    from fastnn.kernels.cpu import pool_avg, pool_max

    wanted = request.param == "avx2"
    pool_max.use_avx2(wanted)
    pool_avg.use_avx2(wanted)
    yield request.param
    pool_max.use_avx2(True)
    pool_avg.use_avx2(True)


def test_common_layers_match_reference_in_both_builds(rng, simd, dtype):
    for shape, k, s, p, ceil_mode in COMMON_LAYERS:
        nd = len(shape) - 2
        cfg = Config(nd, shape, _tuple(k, nd), _tuple(s, nd), _tuple(p, nd), (1,) * nd, ceil_mode)
        x = rng.standard_normal(shape).astype(dtype)
        x[rng.random(shape) < 0.1] = 0.5  # duplicate maxima
        y_shape = max_op(nd)(x, **cfg.max_kwargs(), backend="reference").shape
        check_max(cfg, x, rng.standard_normal(y_shape).astype(dtype))
        check_max(
            cfg, special_values(rng, shape, dtype), rng.standard_normal(y_shape).astype(dtype)
        )
        for count_include_pad in (True, False):
            check_avg(cfg, x, rng.standard_normal(y_shape).astype(dtype), count_include_pad)


def test_dilated_rows_of_2x2_windows_match_reference(rng, simd, dtype):
    # 2 x 2 windows with stride 2 take a one-pass path whose two rows may be far apart
    for dilation, pad in (((2, 1), (1, 1)), ((3, 1), (0, 1)), ((1, 2), (1, 0))):
        cfg = Config(2, (2, 3, 11, 12), (2, 2), (2, 2), pad, dilation, True)
        x = special_values(rng, cfg.shape, dtype)
        y_shape = max_op(2)(x, **cfg.max_kwargs(), backend="reference").shape
        check_max(cfg, x, rng.standard_normal(y_shape).astype(dtype))


def test_avg_pool_propagates_nan_and_inf(rng):
    x = special_values(rng, (2, 3, 9, 8), np.float64)
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    got = ops.avg_pool2d(x, **kw, backend="cpu")
    want = ops.avg_pool2d(x, **kw, backend="reference")
    assert np.isnan(want).any() and np.isinf(want).any()
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)  # NaN, inf in place


@pytest.mark.parametrize("nd", [1, 2])
def test_empty_batch_gives_empty_results(nd):
    shape = (0, 3, 7) if nd == 1 else (0, 3, 7, 6)
    x = np.zeros(shape, np.float32)
    y, index = max_op(nd)(x, 3, 2, 1, return_indices=True, backend="cpu")
    assert y.shape == index.shape == (0, 3, *([4] if nd == 1 else [4, 3]))
    assert max_backward_op(nd)(y, x, 3, 2, 1, backend="cpu").shape == shape
    assert max_backward_op(nd)(y, x, 3, 2, 1, indices=index, backend="cpu").shape == shape
    assert avg_op(nd)(x, 3, 2, 1, backend="cpu").shape == y.shape
    assert avg_backward_op(nd)(y, x, 3, 2, 1, backend="cpu").shape == shape


def test_kernels_stay_total_on_a_window_of_padding_only():
    # fastnn.ops rejects such windows; the kernels must still not read out of bounds.
    # kernel 2 dilated by 3 with padding 1 over 2 elements: the window reads -1 and 2
    from fastnn._backends.cpu import pool as cpu_pool

    geom = PoolGeometry(1, 1, (2,), (2,), (1,), (1,), (3,), False, (1,))
    x = np.array([[[1.0, 2.0]]])
    y, index = cpu_pool._max_pool(x, geom, True)
    assert y.tolist() == [[[-np.inf]]] and index.tolist() == [[[-1]]]
    assert cpu_pool._max_pool_backward(np.ones((1, 1, 1)), x, geom, None).tolist() == [[[0.0, 0.0]]]


@pytest.mark.parametrize("index_dtype", [np.int32, np.uint16, np.int8, np.uint64])
def test_max_backward_accepts_any_integer_index_dtype(rng, index_dtype):
    x = rng.standard_normal((2, 3, 7, 9))
    kw = dict(kernel_size=3, stride=2, padding=1)
    y, index = ops.max_pool2d(x, **kw, return_indices=True, backend="cpu")
    gy = rng.standard_normal(y.shape)
    want = ops.max_pool2d_backward(gy, x, **kw, backend="reference")
    narrow = index.astype(index_dtype)[:, :, ::-1, :][:, :, ::-1, :]  # also non-contiguous
    got = ops.max_pool2d_backward(gy, x, **kw, indices=narrow, backend="cpu")
    assert_close(got, want, np.float64)


def test_max_backward_uses_the_indices_it_is_given(rng):
    # indices that are not the argmax: the gradient must follow them, not recompute
    x = rng.standard_normal((1, 2, 6, 6))
    index = np.zeros((1, 2, 3, 3), np.int64)
    gy = np.ones((1, 2, 3, 3))
    got = ops.max_pool2d_backward(gy, x, 2, indices=index, backend="cpu")
    want = np.zeros_like(x)
    want[:, :, 0, 0] = 9.0
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kernel", [2, 3])
def test_max_backward_scatters_indices_outside_their_window(rng, kernel):
    # windows that tile the plane take a write-once path; an index pointing outside its
    # own window (legal input) must still be scattered and summed like PyTorch does
    x = rng.standard_normal((2, 3, 7, 8))
    y, index = ops.max_pool2d(x, kernel, return_indices=True, ceil_mode=True, backend="cpu")
    gy = rng.standard_normal(y.shape)
    index[1, 2, 0, 0] = 55  # one stray index in one plane
    index[0, 1] = rng.integers(0, 56, size=index.shape[2:])  # a plane of random ones
    kw = dict(kernel_size=kernel, ceil_mode=True, indices=index)
    got = ops.max_pool2d_backward(gy, x, **kw, backend="cpu")
    assert_close(got, ops.max_pool2d_backward(gy, x, **kw, backend="reference"), np.float64)


@pytest.mark.parametrize(
    "shape",
    [(2, 512, 7, 7), (3, 37, 5, 3), (1, 3, 64, 64), (2, 3, 65, 63), (1, 1, 1, 1), (4, 5, 2, 9)],
)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_max_backward_from_indices_in_groups_of_planes(rng, shape, threads, dtype):
    """The backward from indices zeroes and scatters planes a group at a time (as many as
    fit 16 KiB, at least one: a global pooling's small planes share one memset, a large
    plane is a group of its own), each thread a run of planes: random indices anywhere in
    their plane, repeated ones summed, give the reference's result."""
    n, c, h, w = shape
    x = rng.standard_normal(shape).astype(dtype)
    kernel = (h, w) if h * w <= 64 else (3, 2)
    y = ops.max_pool2d(x, kernel, backend="reference")
    gy = rng.standard_normal(y.shape).astype(dtype)
    index = rng.integers(0, h * w, size=y.shape)
    saved = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(threads)
        got = ops.max_pool2d_backward(gy, x, kernel, indices=index, backend="cpu")
    finally:
        fastnn.set_num_threads(saved)
    want = ops.max_pool2d_backward(gy, x, kernel, indices=index, backend="reference")
    assert_close(got, want, dtype)


def test_inputs_are_not_modified(rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    gy = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    x0, gy0 = x.copy(), gy.copy()
    _, index = ops.max_pool2d(x, 3, 2, 1, return_indices=True, backend="cpu")
    index0 = index.copy()
    ops.avg_pool2d(x, 3, 2, 1, backend="cpu")
    ops.max_pool2d_backward(gy, x, 3, 2, 1, backend="cpu")
    ops.max_pool2d_backward(gy, x, 3, 2, 1, indices=index, backend="cpu")
    ops.avg_pool2d_backward(gy, x, 3, 2, 1, backend="cpu")
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(gy, gy0)
    np.testing.assert_array_equal(index, index0)


def test_threads_agree_with_one_thread_on_large_inputs(rng, dtype):
    # large enough for the OpenMP path; few planes, so output rows are split across threads
    cases = [
        ((1, 2, 130, 131), (3, 3), 2, 1),
        ((3, 5, 64, 64), (2, 2), 2, 0),
        ((2, 1, 1, 40000), (1, 5), 3, (0, 2)),
    ]
    saved = fastnn.get_num_threads()
    try:
        for shape, k, s, p in cases:
            x = rng.standard_normal(shape).astype(dtype)
            x[0, 0, 0, :7] = np.nan
            results = []
            for threads in (1, 2, 3):
                fastnn.set_num_threads(threads)
                y, index = ops.max_pool2d(x, k, s, p, return_indices=True, backend="cpu")
                results.append(
                    (
                        y,
                        index,
                        ops.max_pool2d(x, k, s, p, backend="cpu"),
                        ops.max_pool2d_backward(y, x, k, s, p, backend="cpu"),
                        ops.max_pool2d_backward(y, x, k, s, p, indices=index, backend="cpu"),
                        ops.avg_pool2d(x, k, s, p, backend="cpu"),
                        ops.avg_pool2d_backward(y, x, k, s, p, backend="cpu"),
                    )
                )
            for other in results[1:]:
                for a, b in zip(results[0], other):
                    np.testing.assert_array_equal(a, b)
            want = ops.max_pool2d(x, k, s, p, backend="reference")
            np.testing.assert_array_equal(results[0][0], want)
    finally:
        fastnn.set_num_threads(saved)


# --------------------------------------------------------------------------------------
# Against PyTorch
# --------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
@pytest.mark.parametrize("nd", [1, 2])
def test_max_pool_matches_torch(rng, nd):
    import torch
    import torch.nn.functional as F

    fn = F.max_pool1d if nd == 1 else F.max_pool2d
    for _ in range(20):
        cfg = random_config(rng, nd, dilated=True)
        x = special_values(rng, cfg.shape, np.float64) if _ % 2 else rng.standard_normal(cfg.shape)
        kw = cfg.max_kwargs()
        y, index = max_op(nd)(x, **kw, return_indices=True, backend="cpu")
        gy = rng.standard_normal(y.shape)
        want_y, (want_grad,) = torch_grads(partial(fn, **kw), x, grad_output=gy)
        _, want_index = fn(torch.tensor(x), **kw, return_indices=True)
        np.testing.assert_array_equal(y, want_y, err_msg=str(cfg))
        np.testing.assert_array_equal(index, want_index.numpy(), err_msg=str(cfg))
        for indices in (None, index):
            grad = max_backward_op(nd)(gy, x, **kw, indices=indices, backend="cpu")
            assert_close(grad, want_grad, np.float64, what=str(cfg))


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
@pytest.mark.parametrize("nd", [1, 2])
def test_avg_pool_matches_torch(rng, nd):
    import torch.nn.functional as F

    fn = F.avg_pool1d if nd == 1 else F.avg_pool2d
    for trial in range(30):
        cfg = random_config(rng, nd, dilated=False)
        kw = cfg.avg_kwargs(count_include_pad=bool(trial % 2))
        x = rng.standard_normal(cfg.shape)
        y = avg_op(nd)(x, **kw, backend="cpu")
        gy = rng.standard_normal(y.shape)
        want_y, (want_grad,) = torch_grads(partial(fn, **kw), x, grad_output=gy)
        assert_close(y, want_y, np.float64, what=str(cfg))
        grad = avg_backward_op(nd)(gy, x, **kw, backend="cpu")
        assert_close(grad, want_grad, np.float64, what=str(cfg))
