"""The reference relu / sigmoid / tanh, softmax / log_softmax and their backward against
PyTorch and finite differences, including huge magnitudes (no overflow warnings), inf,
NaN, every dim (negative too), 0-d and empty inputs."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.gradcheck import assert_grad_close, numerical_vjp
from tests.utils import (
    FLOAT_DTYPES,
    assert_close,
    assert_layout_independent,
    import_torch,
    requires_torch,
)

ELEMENTWISE = ["relu", "sigmoid", "tanh"]


def _extremes(dtype) -> np.ndarray:
    """Values that overflow a naive exp or sit on a kink: huge, tiny, signed zeros, inf, NaN."""
    big = np.finfo(dtype).max
    return np.array(
        [1e4, -1e4, 90.0, -90.0, 800.0, -800.0, big, -big, 1e-30, -1e-30, 0.0, -0.0]
        + [np.inf, -np.inf, np.nan],
        dtype=dtype,
    )


def _torch_elementwise(name: str, x: np.ndarray, grad_output: np.ndarray):
    torch = import_torch()
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(torch, name)(xt)
    yt.backward(torch.tensor(grad_output))
    return yt.detach().numpy(), xt.grad.numpy()


@requires_torch
@pytest.mark.filterwarnings("error")  # no overflow / invalid-value warnings
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_matches_torch(name, dtype, rng):
    x = np.concatenate([rng.standard_normal(40) * 4, _extremes(dtype)]).astype(dtype)
    x = x.reshape(5, 11)
    grad_output = rng.standard_normal(x.shape).astype(dtype)
    want, want_grad = _torch_elementwise(name, x, grad_output)
    got = getattr(fastnn, name)(x, backend="reference")
    assert got.dtype == dtype
    assert_close(got, want, dtype, what=name)
    grad = fastnn.activation_backward(name, grad_output, got, backend="reference")
    assert grad.dtype == dtype
    assert_close(grad, want_grad, dtype, what=f"{name} backward")


def test_sigmoid_saturates_without_overflow(dtype):
    x = np.array([-1e4, -800.0, 800.0, 1e4], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is fine
        got = fastnn.sigmoid(x, backend="reference")
    np.testing.assert_array_equal(got, np.array([0.0, 0.0, 1.0, 1.0], dtype=dtype))


@pytest.mark.parametrize("shape", [(0,), (3, 0), ()], ids=str)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_empty_and_0d(name, shape):
    x = np.full(shape, 0.5)
    got = getattr(fastnn, name)(x, backend="reference")
    assert got.shape == shape and got.dtype == x.dtype
    grad = fastnn.activation_backward(name, np.ones(shape), got, backend="reference")
    assert grad.shape == shape


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_backward_matches_finite_differences(name, rng):
    x = rng.standard_normal((3, 4)) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep away from relu's kink
    grad_output = rng.standard_normal(x.shape)
    y = getattr(fastnn, name)(x, backend="reference")
    (numeric,) = numerical_vjp(
        lambda x_: getattr(fastnn, name)(x_, backend="reference"), [x], grad_output
    )
    got = fastnn.activation_backward(name, grad_output, y, backend="reference")
    assert_grad_close(got, numeric, name)


# ---------------------------------------------------------------------------------------
# softmax / log_softmax
# ---------------------------------------------------------------------------------------

SHAPES = [(), (1,), (7,), (3, 4), (2, 1, 5), (2, 3, 4), (0, 3), (3, 0), (2, 3, 1, 2)]
SOFTMAX = ["softmax", "log_softmax"]


def _dims(shape: tuple[int, ...]) -> list[int]:
    rank = max(len(shape), 1)
    return list(range(-rank, rank))


CASES = [(shape, dim) for shape in SHAPES for dim in _dims(shape)]


def _torch_softmax(name: str, x: np.ndarray, dim: int, grad_output: np.ndarray):
    torch = import_torch()
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(torch.nn.functional, name)(xt, dim)
    yt.backward(torch.tensor(grad_output))
    return yt.detach().numpy(), xt.grad.numpy()


@requires_torch
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("scale", [1.0, 1e4], ids=["unit", "huge"])
@pytest.mark.parametrize("name", SOFTMAX)
@pytest.mark.parametrize(("shape", "dim"), CASES, ids=[f"{s}-dim{d}" for s, d in CASES])
def test_softmax_matches_torch(name, shape, dim, scale, rng):
    """Every dim, negative ones too; inputs of size 1e4 must not overflow."""
    x = rng.standard_normal(shape) * scale
    grad_output = rng.standard_normal(shape)
    want, want_grad = _torch_softmax(name, x, dim, grad_output)
    backward = getattr(fastnn, f"{name}_backward")
    for dtype in FLOAT_DTYPES:
        got = getattr(fastnn, name)(x.astype(dtype), dim, backend="reference")
        assert got.dtype == dtype and got.shape == shape
        assert_close(got, want, dtype, what=f"{name} {shape} dim={dim}")
        grad = backward(grad_output.astype(dtype), got, dim, backend="reference")
        assert grad.dtype == dtype and grad.shape == shape
        # float32 outputs feed the backward, so its error is relative to the output's
        rtol = (
            None if dtype == np.float64 else 1e-4 * max(1.0, np.abs(grad_output).max(initial=0.0))
        )
        assert_close(grad, want_grad, dtype, rtol=rtol, what=f"{name} backward {shape}")


@requires_torch
@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_special_values_follow_torch(name):
    """A row with +inf or NaN gives NaN, a row of -inf gives NaN, a single -inf among
    finite values gets probability 0 (log-probability -inf)."""
    torch = import_torch()
    x = np.array(
        [[np.inf, 1.0, 2.0], [np.nan, 1.0, 0.0], [-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, 1.0]]
    )
    want = getattr(torch.nn.functional, name)(torch.tensor(x), 1).numpy()
    got = getattr(fastnn, name)(x, 1, backend="reference")
    assert_close(got, want, np.float64, what=name)


@pytest.mark.parametrize("name", SOFTMAX)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_backward_matches_finite_differences(name, dim, rng):
    x = rng.standard_normal((3, 4))
    grad_output = rng.standard_normal(x.shape)
    forward = getattr(fastnn, name)
    y = forward(x, dim, backend="reference")
    (numeric,) = numerical_vjp(lambda x_: forward(x_, dim, backend="reference"), [x], grad_output)
    got = getattr(fastnn, f"{name}_backward")(grad_output, y, dim, backend="reference")
    assert_grad_close(got, numeric, f"{name} dim={dim}")


@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_of_0d_input(name):
    """A 0-d input is a distribution over one element: softmax 1, log_softmax 0."""
    y = getattr(fastnn, name)(np.array(3.5), backend="reference")
    assert y.shape == () and y == (1.0 if name == "softmax" else 0.0)
    g = getattr(fastnn, f"{name}_backward")(np.array(2.0), y, backend="reference")
    assert g.shape == () and g == 0.0


def test_layouts_give_identical_results(dtype, rng):
    x = (rng.standard_normal((3, 4, 5)) * 3).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    for name in ELEMENTWISE:
        y = getattr(fastnn, name)(x, backend="reference")
        assert_layout_independent(
            lambda x_, n=name: getattr(fastnn, n)(x_, backend="reference"), x, what=name
        )
        assert_layout_independent(
            lambda g_, y_, n=name: fastnn.activation_backward(n, g_, y_, backend="reference"),
            g,
            y,
            what=f"{name} backward",
        )
    for name in SOFTMAX:
        for dim in (0, -1, 1):
            y = getattr(fastnn, name)(x, dim, backend="reference")
            assert_layout_independent(
                lambda x_, n=name, d=dim: getattr(fastnn, n)(x_, d, backend="reference"),
                x,
                what=f"{name} dim={dim}",
            )
            assert_layout_independent(
                lambda g_, y_, n=name, d=dim: getattr(fastnn, f"{n}_backward")(
                    g_, y_, d, backend="reference"
                ),
                g,
                y,
                what=f"{name} backward dim={dim}",
            )
