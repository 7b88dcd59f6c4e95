"""The reference adaptive pooling (average 1-D / 2-D, max 2-D) and their backward against
PyTorch: random shapes with In not a multiple of Out, Out > In, global 1 x 1, None entries
in output_size, the indices (ties and NaN: the first maximum and the last NaN win), and
maxima shared by overlapping windows in the backward pass; plus argument errors."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn._geometry import window_bounds
from tests.utils import assert_close, assert_layout_independent, import_torch, requires_torch


def _shape(rng: np.random.Generator, nd: int) -> tuple[int, ...]:
    batch = int(rng.choice([0, 1, 2, 3]))
    return (batch, int(rng.integers(1, 4)), *(int(v) for v in rng.integers(1, 12, nd)))


def _output_size(rng: np.random.Generator, nd: int):
    """An int, a tuple, or a tuple with a None: Out below, equal to and above In."""
    sizes = tuple(int(v) for v in rng.integers(1, 14, nd))
    r = rng.random()
    if r < 0.3:
        return sizes[0]
    if r < 0.45 and nd == 2:
        return (None, sizes[1])
    return sizes


def test_window_bounds_follow_pytorch_rule():
    for size in range(1, 13):
        for out in range(1, 15):
            start, end = window_bounds(size, out)
            for i in range(out):
                assert start[i] == (i * size) // out
                assert end[i] == -(-((i + 1) * size) // out)
                assert end[i] > start[i]
            assert start[0] == 0 and end[-1] == size


def _torch_grad(torch, xt, yt, gy: np.ndarray) -> np.ndarray:
    """The gradient ``gy`` of torch output ``yt`` sends back to its input ``xt`` (zeros
    for an empty input, which autograd leaves without a gradient)."""
    if xt.numel() == 0:
        return np.zeros(tuple(xt.shape))
    yt.backward(torch.tensor(gy))
    return xt.grad.numpy()


@requires_torch
@pytest.mark.parametrize("nd", [1, 2])
def test_adaptive_avg_pool_matches_torch(rng, nd):
    torch = import_torch()
    F = torch.nn.functional
    forward = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d}[nd]
    ours = {1: fastnn.adaptive_avg_pool1d, 2: fastnn.adaptive_avg_pool2d}[nd]
    backward = {1: fastnn.adaptive_avg_pool1d_backward, 2: fastnn.adaptive_avg_pool2d_backward}
    for _ in range(30):
        shape, size = _shape(rng, nd), _output_size(rng, nd)
        x = rng.standard_normal(shape)
        xt = torch.tensor(x, requires_grad=True)
        yt = forward(xt, size)
        y = ours(x, size, backend="reference")
        assert_close(y, yt.detach().numpy(), what=f"{shape} -> {size}")
        gy = rng.standard_normal(y.shape)
        want = _torch_grad(torch, xt, yt, gy)
        gx = backward[nd](gy, x, backend="reference")
        assert_close(gx, want, what=f"backward {shape} -> {size}")


@requires_torch
def test_adaptive_max_pool2d_matches_torch_with_ties_and_nan(rng):
    torch = import_torch()
    F = torch.nn.functional
    for trial in range(40):
        shape, size = _shape(rng, 2), _output_size(rng, 2)
        # few distinct values: many ties; then NaN and -inf in some trials
        x = rng.integers(-2, 3, shape).astype(np.float64)
        if trial % 3 == 0 and x.size > 3:
            flat = x.reshape(-1)
            flat[rng.choice(flat.size, 3, replace=False)] = [np.nan, -np.inf, np.nan]
        xt = torch.tensor(x, requires_grad=True)
        yt, it = F.adaptive_max_pool2d(xt, size, return_indices=True)
        y, index = fastnn.adaptive_max_pool2d(x, size, return_indices=True, backend="reference")
        assert index.dtype == np.int64
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(index, it.numpy())
        assert np.array_equal(fastnn.adaptive_max_pool2d(x, size, backend="reference"), y,
                              equal_nan=True)  # fmt: skip
        gy = rng.standard_normal(y.shape)
        want = _torch_grad(torch, xt, yt, gy)
        for indices in (None, index):
            gx = fastnn.adaptive_max_pool2d_backward(gy, x, indices, backend="reference")
            assert_close(gx, want, what=f"{shape} -> {size}")


def test_overlapping_windows_add_shared_maxima():
    # L = 3 -> 2 windows [0, 2) and [1, 3): the middle maximum belongs to both
    x = np.array([[[[0.0, 5.0, 1.0]]]])
    y, index = fastnn.adaptive_max_pool2d(x, (1, 2), return_indices=True, backend="reference")
    np.testing.assert_array_equal(y, [[[[5.0, 5.0]]]])
    np.testing.assert_array_equal(index, [[[[1, 1]]]])
    gx = fastnn.adaptive_max_pool2d_backward(np.array([[[[2.0, 3.0]]]]), x, index,
                                             backend="reference")  # fmt: skip
    np.testing.assert_array_equal(gx, [[[[0.0, 5.0, 0.0]]]])
    avg = fastnn.adaptive_avg_pool1d_backward(np.array([[[2.0, 4.0]]]), x[0],
                                              backend="reference")  # fmt: skip
    np.testing.assert_allclose(avg, [[[1.0, 3.0, 2.0]]])


def test_global_pooling_is_the_plane_mean():
    x = np.arange(2 * 3 * 5 * 7, dtype=np.float64).reshape(2, 3, 5, 7)
    y = fastnn.adaptive_avg_pool2d(x, 1, backend="reference")
    assert y.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(y[..., 0, 0], x.mean(axis=(2, 3)))
    m = fastnn.adaptive_max_pool2d(x, (1, 1), backend="reference")
    np.testing.assert_array_equal(m[..., 0, 0], x.max(axis=(2, 3)))


def test_none_keeps_the_input_size():
    x = np.zeros((1, 2, 5, 7))
    assert fastnn.adaptive_avg_pool2d(x, (None, 3), backend="reference").shape == (1, 2, 5, 3)
    assert fastnn.adaptive_avg_pool2d(x, (2, None), backend="reference").shape == (1, 2, 2, 7)
    assert fastnn.adaptive_avg_pool1d(x[0], None, backend="reference").shape == (2, 5, 7)


def test_layouts_give_the_same_result(rng):
    x = rng.standard_normal((2, 3, 7, 5))
    assert_layout_independent(
        lambda a: fastnn.adaptive_avg_pool2d(a, (3, 4), backend="reference"), x, what="avg"
    )
    assert_layout_independent(
        lambda a: fastnn.adaptive_max_pool2d(a, (4, 2), True, backend="reference"), x, what="max"
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x: fastnn.adaptive_avg_pool2d(x[0], 2), ValueError, "4-d"),
        (lambda x: fastnn.adaptive_avg_pool1d(x, 2), ValueError, "3-d"),
        (lambda x: fastnn.adaptive_avg_pool2d(x, 0), ValueError, "output_size must be >= 1"),
        (lambda x: fastnn.adaptive_avg_pool2d(x, (2, 2, 2)), ValueError, "output_size"),
        (lambda x: fastnn.adaptive_avg_pool2d(x, 2.5), TypeError, "output_size"),
        (lambda x: fastnn.adaptive_avg_pool2d(x, (True, 2)), TypeError, "output_size"),
        (lambda x: fastnn.adaptive_avg_pool2d(x, "2"), TypeError, "output_size"),
        (lambda x: fastnn.adaptive_max_pool2d(x, 2, return_indices=1), TypeError, "return_i"),
        (lambda x: fastnn.adaptive_max_pool2d(x.astype(np.int32), 2), TypeError, "float32"),
        (lambda x: fastnn.adaptive_avg_pool2d(x[:, :0], 2), ValueError, "non-zero channels"),
        (
            lambda x: fastnn.adaptive_avg_pool2d_backward(np.zeros((2, 3, 2)), x),
            ValueError,
            "grad_output",
        ),
        (
            lambda x: fastnn.adaptive_avg_pool2d_backward(np.zeros((2, 4, 2, 2)), x),
            ValueError,
            "grad_output",
        ),
        (
            lambda x: fastnn.adaptive_max_pool2d_backward(
                np.zeros((2, 3, 2, 2)), x, np.full((2, 3, 2, 2), 99)
            ),
            ValueError,
            r"indices must be in \[0, 30\)",
        ),
        (
            lambda x: fastnn.adaptive_max_pool2d_backward(
                np.zeros((2, 3, 2, 2)), x, np.zeros((2, 3, 2, 1), dtype=np.int64)
            ),
            ValueError,
            "indices must have shape",
        ),
        (
            lambda x: fastnn.adaptive_max_pool2d_backward(
                np.zeros((2, 3, 2, 2)), x, np.zeros((2, 3, 2, 2))
            ),
            TypeError,
            "integer",
        ),
    ],
)
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_bad_arguments_are_rejected_with_their_name(call, error, match, backend):
    x = np.zeros((2, 3, 5, 6))
    with fastnn.use_backend(backend), pytest.raises(error, match=match):
        call(x)
