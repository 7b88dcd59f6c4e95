"""The reference max / average pooling and their backward against PyTorch and finite
differences: dilation, padding, ceil_mode, count_include_pad, the indices (including ties
and NaN windows, where PyTorch's rule picks the first maximum and the last NaN), and
duplicate maxima shared by overlapping windows in the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

import fastnn
from tests.gradcheck import assert_grad_close, numerical_vjp
from tests.utils import assert_close, assert_layout_independent, import_torch, requires_torch

MAX = {1: fastnn.max_pool1d, 2: fastnn.max_pool2d}
AVG = {1: fastnn.avg_pool1d, 2: fastnn.avg_pool2d}
MAX_BACKWARD = {1: fastnn.max_pool1d_backward, 2: fastnn.max_pool2d_backward}
AVG_BACKWARD = {1: fastnn.avg_pool1d_backward, 2: fastnn.avg_pool2d_backward}


@dataclass(frozen=True)
class Pool:
    """One pooling configuration (``dilation`` is used by max pooling only)."""

    nd: int
    shape: tuple[int, ...]
    kernel: int | tuple[int, ...]
    stride: int | tuple[int, ...] | None
    padding: int | tuple[int, ...]
    dilation: int | tuple[int, ...]
    ceil_mode: bool

    @property
    def max_args(self) -> tuple:
        return self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode

    def avg_args(self, count_include_pad: bool) -> tuple:
        return self.kernel, self.stride, self.padding, self.ceil_mode, count_include_pad

    def __str__(self) -> str:
        ceil = "-ceil" if self.ceil_mode else ""
        return (
            f"{self.nd}d-x{self.shape}-k{self.kernel}-s{self.stride}-p{self.padding}"
            f"-d{self.dilation}{ceil}"
        ).replace(" ", "")


def _draw(rng: np.random.Generator, nd: int) -> Pool:
    def ints(low: int, high: int):
        values = tuple(int(v) for v in rng.integers(low, high, nd))
        return values if rng.random() < 0.6 else values[0]

    kernel = tuple(int(v) for v in rng.integers(1, 5, nd))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)  # PyTorch: <= k // 2
    return Pool(
        nd=nd,
        shape=(int(rng.choice([0, 1, 2, 3])), int(rng.integers(1, 4)))
        + tuple(int(v) for v in rng.integers(1, 10, nd)),
        kernel=kernel if rng.random() < 0.6 else kernel[0],
        stride=None if rng.random() < 0.25 else ints(1, 4),
        padding=padding if rng.random() < 0.6 or len(set(padding)) > 1 else padding[0],
        dilation=ints(1, 3),
        ceil_mode=bool(rng.random() < 0.5),
    )


def _torch_accepts(pool: Pool, average: bool) -> bool:
    torch = import_torch()
    x = torch.zeros(pool.shape, dtype=torch.float64)
    try:
        if average:
            _torch_avg(pool, x, True)
        else:
            _torch_max(pool, x)
    except RuntimeError:
        return False
    return True


def _torch_max(pool: Pool, x):
    torch = import_torch()
    fn = torch.nn.functional.max_pool1d if pool.nd == 1 else torch.nn.functional.max_pool2d
    return fn(x, *pool.max_args, return_indices=True)


def _torch_avg(pool: Pool, x, count_include_pad: bool):
    torch = import_torch()
    fn = torch.nn.functional.avg_pool1d if pool.nd == 1 else torch.nn.functional.avg_pool2d
    return fn(x, *pool.avg_args(count_include_pad))


def _configs(nd: int, count: int, seed: int, average: bool) -> list[Pool]:
    """Random configurations PyTorch accepts and that have no window made of padding only
    (fastnn rejects those: see test_padding_only_window_is_rejected)."""
    rng = np.random.default_rng(seed)
    found: list[Pool] = []
    while len(found) < count:
        pool = _draw(rng, nd)
        if average:
            pool = replace(pool, dilation=1)
        try:
            fn = AVG[nd] if average else MAX[nd]
            args = pool.avg_args(True) if average else pool.max_args
            fn(np.zeros(pool.shape), *args, backend="reference")
        except ValueError:
            continue
        found.append(pool)
    return found


MAX_CONFIGS = _configs(1, 30, 11, False) + _configs(2, 40, 12, False)
AVG_CONFIGS = _configs(1, 25, 13, True) + _configs(2, 30, 14, True)


def _values(shape, rng, kind: str) -> np.ndarray:
    """Test inputs: "random" (distinct), "ties" (small integers: many equal maxima) or
    "nan" (random with some NaN)."""
    if kind == "ties":
        return rng.integers(-2, 3, shape).astype(np.float64)
    x = rng.standard_normal(shape)
    if kind == "nan":
        x[rng.random(shape) < 0.2] = np.nan
    return x


# ---------------------------------------------------------------------------------------
# max pooling
# ---------------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("kind", ["random", "ties", "nan"])
@pytest.mark.parametrize("pool", MAX_CONFIGS, ids=str)
def test_max_pool_matches_torch(pool: Pool, kind, rng):
    """Values and indices equal PyTorch's, for distinct values, ties and NaN windows."""
    torch = import_torch()
    x = _values(pool.shape, rng, kind)
    want, want_index = _torch_max(pool, torch.tensor(x))
    for dtype in (np.float64, np.float32):
        got, index = MAX[pool.nd](x.astype(dtype), *pool.max_args, True, backend="reference")
        assert got.dtype == dtype and index.dtype == np.int64
        np.testing.assert_array_equal(got, want.numpy().astype(dtype), err_msg=str(pool))
        np.testing.assert_array_equal(index, want_index.numpy(), err_msg=str(pool))
        alone = MAX[pool.nd](x.astype(dtype), *pool.max_args, backend="reference")
        np.testing.assert_array_equal(alone, got)


@requires_torch
@pytest.mark.parametrize("kind", ["random", "ties", "nan"])
@pytest.mark.parametrize("pool", MAX_CONFIGS, ids=str)
def test_max_pool_backward_matches_torch(pool: Pool, kind, rng):
    """With and without the forward's indices; ties make overlapping windows share an
    argmax, whose gradients must add up."""
    torch = import_torch()
    x = _values(pool.shape, rng, kind)
    xt = torch.tensor(x, requires_grad=True)
    out, _ = _torch_max(pool, xt)
    grad_output = rng.standard_normal(tuple(out.shape))
    out.backward(torch.tensor(grad_output))
    want = xt.grad.numpy()
    for dtype in (np.float64, np.float32):
        x_, g_ = x.astype(dtype), grad_output.astype(dtype)
        _, index = MAX[pool.nd](x_, *pool.max_args, True, backend="reference")
        for indices in (None, index):
            got = MAX_BACKWARD[pool.nd](g_, x_, *pool.max_args, indices, backend="reference")
            assert got.dtype == dtype
            assert_close(got, want, dtype, what=f"{pool} indices={indices is not None}")


@requires_torch
def test_max_pool_backward_accumulates_repeated_argmax():
    """Stride 1 over a constant row: every window picks the first element it sees, so
    interior elements collect several gradients."""
    torch = import_torch()
    x = np.zeros((1, 1, 6))
    g = np.arange(1.0, 5.0).reshape(1, 1, 4)
    got = fastnn.max_pool1d_backward(g, x, 3, 1, backend="reference")
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool1d(xt, 3, 1).backward(torch.tensor(g))
    np.testing.assert_array_equal(got, xt.grad.numpy())
    np.testing.assert_array_equal(got, [[[1.0, 2.0, 3.0, 4.0, 0.0, 0.0]]])


@requires_torch
def test_max_pool_nan_and_infinity_follow_torch():
    """NaN anywhere in a window gives NaN and the index of the (last) NaN; a window of
    -inf gives -inf and the index of its first element."""
    torch = import_torch()
    x = np.array([[[1.0, np.nan, 3.0, np.nan, 0.0, -np.inf, -np.inf, -np.inf, 2.0]]])
    got, index = fastnn.max_pool1d(x, 3, 2, 1, return_indices=True, backend="reference")
    want, want_index = torch.nn.functional.max_pool1d(torch.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(got, want.numpy())
    np.testing.assert_array_equal(index, want_index.numpy())
    assert np.isnan(got[0, 0, 1]) and index[0, 0, 1] == 3
    assert got[0, 0, 3] == -np.inf and index[0, 0, 3] == 5


@requires_torch
@pytest.mark.parametrize("nd", [1, 2])
def test_acceptance_agrees_with_torch(nd):
    """Padding above kernel_size // 2 is rejected, as in PyTorch; every configuration
    PyTorch accepts is accepted unless a window reads only padding."""
    rng = np.random.default_rng(nd)
    for _ in range(150):
        pool = _draw(rng, nd)
        pool = replace(pool, shape=(1, *pool.shape[1:]))
        if rng.random() < 0.5:  # also padding PyTorch refuses
            pool = replace(pool, padding=int(rng.integers(0, 4)))
        torch_ok = _torch_accepts(pool, average=False)
        try:
            MAX[nd](np.zeros(pool.shape), *pool.max_args, backend="reference")
            ours = "ok"
        except ValueError as error:
            ours = "padding only" if "reads only padding" in str(error) else "rejected"
        if ours == "padding only":
            torch = import_torch()
            out, _ = _torch_max(pool, torch.zeros(pool.shape, dtype=torch.float64))
            assert torch_ok and bool(torch.isneginf(out).any()), str(pool)
        else:
            assert (ours == "ok") == torch_ok, f"{pool}: fastnn {ours}, torch ok={torch_ok}"


@pytest.mark.parametrize("nd", [1, 2])
def test_padding_only_window_is_rejected(nd):
    """Length 1, kernel 2, dilation 2, padding 1: the taps sit at -1 and 1, both outside
    the input.  PyTorch returns -inf with an out-of-range index that its own backward then
    writes through; fastnn refuses the configuration."""
    shape = (1, 1, 1) if nd == 1 else (1, 1, 1, 4)
    kernel, dilation, padding = (2, 2, 1) if nd == 1 else ((2, 1), (2, 1), (1, 0))
    with pytest.raises(ValueError, match="reads only padding"):
        MAX[nd](np.zeros(shape), kernel, 1, padding, dilation, backend="reference")
    with pytest.raises(ValueError, match="reads only padding"):
        MAX_BACKWARD[nd](
            np.zeros(shape), np.zeros(shape), kernel, 1, padding, dilation, backend="reference"
        )


# ---------------------------------------------------------------------------------------
# average pooling
# ---------------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["cip", "nocip"])
@pytest.mark.parametrize("pool", AVG_CONFIGS, ids=str)
def test_avg_pool_and_backward_match_torch(pool: Pool, count_include_pad, rng):
    torch = import_torch()
    x = rng.standard_normal(pool.shape)
    xt = torch.tensor(x, requires_grad=True)
    out = _torch_avg(pool, xt, count_include_pad)
    grad_output = rng.standard_normal(tuple(out.shape))
    out.backward(torch.tensor(grad_output))
    args = pool.avg_args(count_include_pad)
    for dtype in (np.float64, np.float32):
        got = AVG[pool.nd](x.astype(dtype), *args, backend="reference")
        assert got.dtype == dtype
        assert_close(got, out.detach().numpy(), dtype, what=str(pool))
        grad = AVG_BACKWARD[pool.nd](
            grad_output.astype(dtype), x.astype(dtype), *args, backend="reference"
        )
        assert grad.dtype == dtype
        assert_close(grad, xt.grad.numpy(), dtype, what=f"{pool} backward")


# ---------------------------------------------------------------------------------------
# empty batch, finite differences, layouts
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("nd", [1, 2])
def test_empty_batch(nd):
    x = np.zeros((0, 3) + (7,) * nd)
    y, index = MAX[nd](x, 3, 2, 1, return_indices=True, backend="reference")
    assert y.shape == index.shape == (0, 3) + (4,) * nd
    assert MAX_BACKWARD[nd](y, x, 3, 2, 1, backend="reference").shape == x.shape
    assert MAX_BACKWARD[nd](y, x, 3, 2, 1, 1, False, index, backend="reference").shape == x.shape
    z = AVG[nd](x, 2, 2, 1, True, False, backend="reference")
    assert z.shape == (0, 3) + (4,) * nd
    assert AVG_BACKWARD[nd](z, x, 2, 2, 1, True, False, backend="reference").shape == x.shape


TINY = [
    Pool(1, (2, 2, 9), 3, 2, 1, 2, True),
    Pool(1, (1, 1, 6), 2, 1, 1, 1, False),
    Pool(2, (1, 2, 5, 6), (3, 2), (2, 1), (1, 1), (1, 2), True),
    Pool(2, (2, 1, 4, 5), 2, None, 0, 1, False),
]


@pytest.mark.parametrize("pool", TINY, ids=str)
def test_max_pool_backward_matches_finite_differences(pool: Pool, rng):
    """Away from ties (values 0.01 apart, step 1e-6) the max is locally linear."""
    x = rng.permutation(np.prod(pool.shape)).reshape(pool.shape) * 0.01
    forward = MAX[pool.nd]
    grad_output = rng.standard_normal(forward(x, *pool.max_args, backend="reference").shape)
    (numeric,) = numerical_vjp(
        lambda x_: forward(x_, *pool.max_args, backend="reference"), [x], grad_output
    )
    got = MAX_BACKWARD[pool.nd](grad_output, x, *pool.max_args, backend="reference")
    assert_grad_close(got, numeric, str(pool))


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["cip", "nocip"])
@pytest.mark.parametrize("pool", TINY, ids=str)
def test_avg_pool_backward_matches_finite_differences(pool: Pool, count_include_pad, rng):
    args = pool.avg_args(count_include_pad)
    x = rng.standard_normal(pool.shape)
    forward = AVG[pool.nd]
    grad_output = rng.standard_normal(forward(x, *args, backend="reference").shape)
    (numeric,) = numerical_vjp(lambda x_: forward(x_, *args, backend="reference"), [x], grad_output)
    got = AVG_BACKWARD[pool.nd](grad_output, x, *args, backend="reference")
    assert_grad_close(got, numeric, str(pool))


@pytest.mark.parametrize("pool", TINY, ids=str)
def test_layouts_give_identical_results(pool: Pool, dtype, rng):
    x = _values(pool.shape, rng, "ties").astype(dtype)
    y, index = MAX[pool.nd](x, *pool.max_args, True, backend="reference")
    g = rng.standard_normal(y.shape).astype(dtype)
    what = str(pool)

    def max_forward(x_):
        return MAX[pool.nd](x_, *pool.max_args, True, backend="reference")

    def max_backward(g_, x_, index_):
        return MAX_BACKWARD[pool.nd](g_, x_, *pool.max_args, index_, backend="reference")

    def avg_forward(x_):
        return AVG[pool.nd](x_, *pool.avg_args(False), backend="reference")

    def avg_backward(g_, x_):
        return AVG_BACKWARD[pool.nd](g_, x_, *pool.avg_args(False), backend="reference")

    assert_layout_independent(max_forward, x, what=f"max {what}")
    assert_layout_independent(max_backward, g, x, index, what=f"max backward {what}")
    z = avg_forward(x)
    gz = rng.standard_normal(z.shape).astype(dtype)
    assert_layout_independent(avg_forward, x, what=f"avg {what}")
    assert_layout_independent(avg_backward, gz, x, what=f"avg backward {what}")


def test_configurations_cover_the_corners():
    """The random lists really contain the cases this file promises to test."""
    for configs in (MAX_CONFIGS, AVG_CONFIGS):
        assert any(p.ceil_mode for p in configs) and any(not p.ceil_mode for p in configs)
        assert any(p.shape[0] == 0 for p in configs) and any(p.shape[0] == 1 for p in configs)
        assert any(p.stride is None for p in configs)
        assert any(np.any(np.asarray(p.padding) > 0) for p in configs)
    assert any(np.any(np.asarray(p.dilation) > 1) for p in MAX_CONFIGS)
