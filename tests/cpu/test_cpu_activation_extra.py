"""hardtanh, relu6, leaky_relu, silu and gelu (both approximations), their gradients and
the ``out=`` argument of relu / relu6 / hardtanh / leaky_relu: the reference against
PyTorch, the CPU kernels against the float64 reference and PyTorch, on random shapes
(0-d to 4-d, odd sizes, large enough for several threads), every memory layout,
float32 and float64, and special values (+-inf, NaN, -0.0, tiny and huge)."""

from __future__ import annotations

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

SHAPES = [(), (0,), (1,), (17,), (3, 5), (2, 3, 4, 5), (70001,)]
_DEFAULT_THREADS = fastnn.get_num_threads()

EXTREMES = [0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, 5.9,
            6.0, 6.1, 9.0, -9.0, 20.0, -20.0, 50.0, -88.0, 89.0, -100.0, 710.0, -750.0,
            1e30, -1e30, np.inf, -np.inf, np.nan]  # fmt: skip


class Case:
    """One activation: its forward, its gradient (from the output or from the input, as
    fastnn defines it) and PyTorch's functional form."""

    def __init__(self, name, forward, backward, torch_fn):
        self.name, self.forward, self.backward, self.torch_fn = name, forward, backward, torch_fn

    def grad(self, g, x, y, **kw):
        return self.backward(g, x, y, **kw)

    def __repr__(self) -> str:
        return self.name


def _torch_f():
    return import_torch().nn.functional


def _label(name: str, params: dict) -> str:
    values = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in params.values())
    return f"{name}({values})" if params else name


def _from_output(name: str, **params) -> Case:
    """An activation whose gradient fastnn takes from the output (activation_backward),
    with ``params`` (by name) for the forward, the gradient and PyTorch alike."""
    return Case(
        _label(name, params),
        lambda x, **kw: getattr(fastnn, name)(x, **params, **kw),
        lambda g, x, y, **kw: fastnn.activation_backward(name, g, y, **params, **kw),
        lambda t: getattr(_torch_f(), name)(t, **params),
    )


def _from_input(name: str, **params) -> Case:
    """An activation whose gradient fastnn takes from the input (``<name>_backward``)."""
    return Case(
        _label(name, params),
        lambda x, **kw: getattr(fastnn, name)(x, **params, **kw),
        lambda g, x, y, **kw: getattr(fastnn, f"{name}_backward")(g, x, **params, **kw),
        lambda t: getattr(_torch_f(), name)(t, **params),
    )


CASES = [
    _from_output("hardtanh", min_val=-2.0, max_val=3.0),
    _from_output("hardtanh"),
    _from_output("relu6"),
    _from_output("leaky_relu", negative_slope=0.2),
    _from_output("leaky_relu"),
    _from_output("leaky_relu", negative_slope=0.0),
    _from_input("silu"),
    _from_input("gelu"),
    _from_input("gelu", approximate="tanh"),
]
IN_PLACE = ["relu", "relu6", "hardtanh", "leaky_relu"]


def _values(rng, shape, dtype):
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    if x.size >= len(EXTREMES):
        x.reshape(-1)[: len(EXTREMES)] = np.array(EXTREMES).astype(dtype)
    return x


def _reference(case, x, g):
    with np.errstate(over="ignore", invalid="ignore"):
        y = case.forward(x, backend="reference")
        return y, case.grad(g, x, y, backend="reference")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_forward_and_backward_match_reference(case, shape, dtype, rng):
    x = _values(rng, shape, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    want_y, want_g = _reference(case, x, g)
    y = case.forward(x)
    assert y.dtype == dtype and y.shape == x.shape and y.flags.c_contiguous
    assert_close(y, want_y, dtype, what=f"{case} forward")
    grad = case.grad(g, x, y)
    assert grad.dtype == dtype and grad.shape == x.shape and grad.flags.c_contiguous
    assert_close(grad, want_g, dtype, what=f"{case} backward")


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_special_values(case, dtype):
    x = np.array(EXTREMES, dtype=dtype)
    g = np.linspace(-1.0, 2.0, x.size).astype(dtype)
    want_y, want_g = _reference(case, x, g)
    y = case.forward(x)
    assert_close(y, want_y, dtype, what=f"{case} forward")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want_y))
    np.testing.assert_array_equal(np.isnan(x), np.isnan(y) & ~np.isin(x, [-np.inf]))
    grad = case.grad(g, x, y)
    assert_close(grad, want_g, dtype, what=f"{case} backward")
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(want_g))


def test_special_values_take_torchs_conventions():
    """NaN where PyTorch's float64 gives NaN (-inf * 0 and 0 * inf), saturation else."""
    x = np.array([-np.inf, np.inf, np.nan, -1e30, 1e30, -1e300, 1e300])
    nan, inf = np.nan, np.inf
    for backend in ("reference", "cpu"):
        np.testing.assert_array_equal(
            fastnn.silu(x, backend=backend), [nan, inf, nan, -0.0, 1e30, -0.0, 1e300]
        )
        for approx in ("none", "tanh"):
            np.testing.assert_array_equal(
                fastnn.gelu(x, approx, backend=backend), [nan, inf, nan, -0.0, 1e30, -0.0, 1e300]
            )
            grad = fastnn.gelu_backward(np.ones_like(x), x, approx, backend=backend)
            np.testing.assert_array_equal(grad, [nan, nan, nan, 0.0, 1.0, 0.0, 1.0])
        grad = fastnn.silu_backward(np.ones_like(x), x, backend=backend)
        np.testing.assert_array_equal(grad, [nan, nan, nan, 0.0, 1.0, 0.0, 1.0])
        np.testing.assert_array_equal(fastnn.relu6(x, backend=backend), [0, 6, nan, 0, 6, 0, 6])


def test_hardtanh_and_leaky_relu_backward_through_nan_output():
    """As PyTorch: NaN passes g through hardtanh (only y <= min or y >= max zero it) and
    takes the negative slope in leaky_relu (y > 0 is false)."""
    y = np.array([np.nan, -1.0, 1.0, 0.5, 0.0])
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    for backend in ("reference", "cpu"):
        got = fastnn.activation_backward("hardtanh", g, y, backend=backend)
        np.testing.assert_array_equal(got, [1.0, 0.0, 0.0, 4.0, 5.0])
        got = fastnn.activation_backward("leaky_relu", g, y, negative_slope=0.5, backend=backend)
        np.testing.assert_array_equal(got, [0.5, 1.0, 3.0, 4.0, 2.5])


def test_float_accuracy_in_ulps(dtype):
    """silu and gelu stay within a few ulps of the float64 reference wherever the result
    is not the cancellation-limited tail near zero (which torch shares)."""
    x = np.linspace(-0.5, 12.0, 200001).astype(dtype)
    xs = np.concatenate([x, np.geomspace(1e-30, 1.0, 2000).astype(dtype)])
    for name, f in [("silu", fastnn.silu), ("gelu", fastnn.gelu)]:
        want = f(xs.astype(np.float64), backend="reference").astype(dtype)
        ulp = np.spacing(np.abs(want)).astype(np.float64)
        err = np.abs(f(xs).astype(np.float64) - want.astype(np.float64)) / ulp
        limit = 8 if dtype == np.float32 else 4
        assert err.max() <= limit, f"{name} {np.dtype(dtype)}: {err.max()} ulp"


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_every_memory_layout(case, rng):
    x = rng.standard_normal((7, 9)).astype(np.float32)
    g = rng.standard_normal((7, 9)).astype(np.float32)
    y = case.forward(x)
    assert_layout_independent(case.forward, x, what=case.name)
    assert_layout_independent(lambda gg, xx: case.grad(gg, xx, y), g, x, what=case.name)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_threads_give_identical_results(case, dtype, rng):
    n = (1 << 17) + 37
    x = _values(rng, (n,), dtype)
    g = rng.standard_normal(n).astype(dtype)
    fastnn.set_num_threads(1)
    try:
        y1 = case.forward(x)
        g1 = case.grad(g, x, y1)
        for threads in (2, 3):
            fastnn.set_num_threads(threads)
            np.testing.assert_array_equal(case.forward(x), y1)
            np.testing.assert_array_equal(case.grad(g, x, y1), g1)
    finally:
        fastnn.set_num_threads(_DEFAULT_THREADS)


@requires_torch
@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_match_torch_autograd(case, backend, rng):
    torch = import_torch()
    for shape in [(1,), (40, 31), (2, 3, 5, 7)]:
        x = 3 * rng.standard_normal(shape)
        x.reshape(-1)[:4] = [0.0, 6.0, -2.0, 3.0][: x.size]  # hardtanh's edges
        gy = rng.standard_normal(shape)
        t = torch.tensor(x, requires_grad=True)
        want = case.torch_fn(t)
        want.backward(torch.tensor(gy))
        for dtype in FLOAT_DTYPES:
            y = case.forward(x.astype(dtype), backend=backend)
            assert_close(y, want.detach().numpy(), dtype, what=f"{case} forward")
            grad = case.grad(gy.astype(dtype), x.astype(dtype), y, backend=backend)
            assert_close(grad, t.grad.numpy(), dtype, what=f"{case} backward")


# ---------------------------------------------------------------------------------------
# out=
# ---------------------------------------------------------------------------------------


def _call(name, x, backend, **kw):
    args = {"hardtanh": (-0.5, 2.0), "leaky_relu": (0.1,)}.get(name, ())
    return getattr(fastnn, name)(x, *args, backend=backend, **kw)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("name", IN_PLACE)
def test_out_in_place_and_separate(name, dtype, backend, rng):
    for shape in [(), (1,), (5, 3), (70001,)]:
        x = _values(rng, shape, dtype)
        want = _call(name, x, backend)  # a new array
        assert_close(want, _call(name, x, "reference"), dtype)
        inplace = np.array(x)  # (a 0-d array, never a numpy scalar)
        got = _call(name, inplace, backend, out=inplace)
        assert got is inplace
        np.testing.assert_array_equal(got, want)
        out = np.full(shape, 7.0, dtype=dtype)
        before = x.copy()
        got = _call(name, x, backend, out=out)
        assert got is out
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("name", IN_PLACE)
def test_out_from_non_contiguous_input(name, rng):
    x = _values(rng, (9, 12), np.float32)
    for layout in (x.T, x[::-1], x[:, ::2]):
        out = np.empty(layout.shape, np.float32)
        assert _call(name, layout, "cpu", out=out) is out
        np.testing.assert_array_equal(out, _call(name, np.ascontiguousarray(layout), "cpu"))


@pytest.mark.parametrize("name", IN_PLACE)
def test_out_is_validated(name):
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    bad = [
        (np.empty((4, 3)), ValueError, "shape"),
        (np.empty((3, 4), np.float32), TypeError, "dtype"),
        (np.empty((4, 3)).T, ValueError, "C-contiguous"),
        ([0.0] * 12, TypeError, "out must be an array"),
    ]
    ro = np.empty((3, 4))
    ro.flags.writeable = False
    bad.append((ro, ValueError, "writeable"))
    big = np.zeros(13)
    shifted_in = big[1:].reshape(3, 4)
    big[1:] = x.ravel()
    for out, error, message in bad:
        with pytest.raises(error, match=message):
            _call(name, x, None, out=out)
    with pytest.raises(ValueError, match="overlaps"):
        _call(name, shifted_in, None, out=big[:12].reshape(3, 4))
    square = np.arange(16.0).reshape(4, 4)
    with pytest.raises(ValueError, match="overlaps"):
        _call(name, square.T, None, out=square)


def test_parameters_are_validated():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="max_val"):
        fastnn.hardtanh(x, 1.0, -1.0)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="min_val must be finite"):
            fastnn.hardtanh(x, bad, 1.0)
        with pytest.raises(ValueError, match="max_val must be finite"):
            fastnn.hardtanh(x, -1.0, bad)
        with pytest.raises(ValueError, match="negative_slope must be finite"):
            fastnn.leaky_relu(x, bad)
        with pytest.raises(ValueError, match="negative_slope must be finite"):
            fastnn.activation_backward("leaky_relu", x, x, negative_slope=bad)
    with pytest.raises(TypeError, match="negative_slope"):
        fastnn.leaky_relu(x, "0.1")
    with pytest.raises(ValueError, match="sign does not tell"):
        fastnn.activation_backward("leaky_relu", x, x, negative_slope=-0.1)
    with pytest.raises(ValueError, match="max_val"):
        fastnn.activation_backward("hardtanh", x, x, min_val=2.0, max_val=1.0)
    for name in ("silu", "gelu", "elu", 3):
        with pytest.raises(ValueError, match="activation must be one of"):
            fastnn.activation_backward(name, x, x)
    for bad in ("exact", None, "TANH"):
        with pytest.raises(ValueError, match="approximate"):
            fastnn.gelu(x, bad)
        with pytest.raises(ValueError, match="approximate"):
            fastnn.gelu_backward(x, x, bad)
    with pytest.raises(ValueError, match="shape"):
        fastnn.silu_backward(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match="dtype"):
        fastnn.gelu_backward(np.zeros(3), np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        fastnn.silu(np.zeros(3, np.int64))
    # a negative slope is fine for the forward (torch allows it too)
    np.testing.assert_array_equal(fastnn.leaky_relu(np.array([-2.0, 1.0]), -0.5), [1.0, 1.0])
    # min_val == max_val is allowed, as in torch
    np.testing.assert_array_equal(fastnn.hardtanh(np.array([-2.0, 1.0]), 0.5, 0.5), [0.5, 0.5])
