"""Activations, softmax / log_softmax and their backward on the numba-cuda backend
(simulator), against the reference backend."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.cudasim.devices import check, dev, device_layouts

pytestmark = [
    pytest.mark.cudasim,
    # the simulator computes with numpy scalars, which warn where a GPU silently gives NaN
    pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning"),
]

F32 = np.float32
ACTIVATIONS = ["relu", "sigmoid", "tanh"]


def _special(rng, shape, dtype=F32):
    """Random values with NaN, +-inf, +-0 and large magnitudes mixed in."""
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    flat = x.reshape(-1)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0]
    flat[: len(specials)] = specials
    return x


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward(rng, name):
    x = _special(rng, (3, 4, 5))
    want = getattr(fastnn, name)(x, backend="reference")
    for layout, d in device_layouts(x):
        check(getattr(fastnn, name)(d), want, f"{name} {layout}")


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward(rng, name):
    gy = _special(rng, (4, 6))
    y = getattr(fastnn, name)(rng.standard_normal((4, 6)).astype(F32), backend="reference")
    y[0, 0] = np.nan  # relu passes the gradient where the output is NaN
    want = fastnn.activation_backward(name, gy, y, backend="reference")
    check(fastnn.activation_backward(name, dev(gy), dev(y)), want, name)


def test_activation_float64_empty_and_zero_d(rng):
    x = rng.standard_normal((2, 3))
    check(fastnn.tanh(dev(x)), np.tanh(x), "float64")
    check(fastnn.relu(dev(np.zeros((0, 3), F32))), np.zeros((0, 3), F32), "empty")
    check(fastnn.sigmoid(dev(np.array(0.5, F32))), np.array(1 / (1 + np.exp(-0.5)), F32), "0-d")


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_any_dim(rng, log, dim):
    name = "log_softmax" if log else "softmax"
    x = (rng.standard_normal((3, 4, 5)) * 4).astype(F32)
    x[1, 2, 3] = np.nan  # its rows become NaN
    x[2, 0, :] = -np.inf  # a row of -inf along dim -1: NaN
    want = getattr(fastnn, name)(x, dim, backend="reference")
    for layout, d in device_layouts(x):
        check(getattr(fastnn, name)(d, dim), want, f"{name} dim={dim} {layout}")
    g = rng.standard_normal(x.shape).astype(F32)
    y = getattr(fastnn, name)(rng.standard_normal(x.shape).astype(F32), dim, backend="reference")
    backward = getattr(fastnn, f"{name}_backward")
    check(backward(dev(g), dev(y), dim), backward(g, y, dim, backend="reference"), "backward")


@pytest.mark.parametrize("length", [9, 100])
def test_softmax_long_rows_use_teams(rng, length):
    """Rows long enough for teams of 4 and 32 threads."""
    x = (rng.standard_normal((2, length)) * 10).astype(F32)
    check(fastnn.log_softmax(dev(x)), fastnn.log_softmax(x, backend="reference"), "long")
    g = rng.standard_normal(x.shape).astype(F32)
    y = fastnn.softmax(x, backend="reference")
    want = fastnn.softmax_backward(g, y, backend="reference")
    check(fastnn.softmax_backward(dev(g), dev(y)), want, "long backward")


def test_softmax_empty_zero_d_and_float64(rng):
    x = np.zeros((2, 0, 3), F32)
    check(fastnn.softmax(dev(x), 1), x, "empty dim")
    check(fastnn.softmax(dev(np.zeros((0, 4), F32))), np.zeros((0, 4), F32), "no rows")
    check(fastnn.log_softmax(dev(np.array(3.0, F32))), np.array(0.0, F32), "0-d")
    x = rng.standard_normal((3, 7))
    check(fastnn.softmax(dev(x), 0), fastnn.softmax(x, 0, backend="reference"), "float64")


# ---------------------------------------------------------------------------------------
# hardtanh / relu6 / leaky_relu / silu / gelu, out=
# ---------------------------------------------------------------------------------------

#: (name, forward(x, **kw), backward(g, x, y, **kw)): the gradient from the output
#: (hardtanh, relu6, leaky_relu) or from the input (silu, gelu).
EXTRA = [
    ("hardtanh", lambda x, **kw: fastnn.hardtanh(x, -2.0, 3.0, **kw),
     lambda g, x, y, **kw: fastnn.activation_backward("hardtanh", g, y, min_val=-2.0,
                                                      max_val=3.0, **kw)),
    ("relu6", lambda x, **kw: fastnn.relu6(x, **kw),
     lambda g, x, y, **kw: fastnn.activation_backward("relu6", g, y, **kw)),
    ("leaky_relu", lambda x, **kw: fastnn.leaky_relu(x, 0.2, **kw),
     lambda g, x, y, **kw: fastnn.activation_backward("leaky_relu", g, y, negative_slope=0.2,
                                                      **kw)),
    ("silu", lambda x, **kw: fastnn.silu(x, **kw),
     lambda g, x, y, **kw: fastnn.silu_backward(g, x, **kw)),
    ("gelu", lambda x, **kw: fastnn.gelu(x, **kw),
     lambda g, x, y, **kw: fastnn.gelu_backward(g, x, **kw)),
    ("gelu_tanh", lambda x, **kw: fastnn.gelu(x, "tanh", **kw),
     lambda g, x, y, **kw: fastnn.gelu_backward(g, x, approximate="tanh", **kw)),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("name, forward, backward", EXTRA, ids=[e[0] for e in EXTRA])
def test_extra_activations_forward_and_backward(rng, name, forward, backward, dtype):
    for shape in [(), (7,), (3, 4, 5)]:
        x = (
            _special(rng, shape, dtype)
            if shape and np.prod(shape) >= 7
            else (rng.standard_normal(shape).astype(dtype))
        )
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            y = forward(x, backend="reference")
        g = rng.standard_normal(shape).astype(dtype)
        with np.errstate(all="ignore"):
            want = backward(g, x, y, backend="reference")
        for layout, d in device_layouts(x):
            check(forward(d), y, f"{name} {layout}")
            for glayout, dg in device_layouts(g):
                got = backward(dg, d, dev(y))
                check(got, want, f"{name} backward {layout} {glayout}")


@pytest.mark.parametrize("name", ["relu", "relu6", "hardtanh", "leaky_relu"])
def test_out_in_place_and_separate_on_the_device(rng, name):
    args = {"hardtanh": (-0.5, 2.0), "leaky_relu": (0.1,)}.get(name, ())
    f = getattr(fastnn, name)
    x = _special(rng, (4, 5))
    want = f(x, *args, backend="reference")
    d = dev(x)
    assert f(d, *args, out=d) is d
    np.testing.assert_array_equal(d.copy_to_host(), want)
    out = dev(np.zeros_like(x))
    d = dev(x)
    assert f(d, *args, out=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), want)
    np.testing.assert_array_equal(d.copy_to_host(), x)
    for layout, view in device_layouts(x):  # any input layout into a contiguous out
        out = dev(np.zeros_like(x))
        f(view, *args, out=out)
        np.testing.assert_array_equal(out.copy_to_host(), want, err_msg=layout)
    with pytest.raises(ValueError, match="C-contiguous"):
        f(dev(x), *args, out=dev(np.zeros((5, 4), F32)).T)
    with pytest.raises(ValueError, match="shape"):
        f(dev(x), *args, out=dev(np.zeros((5, 4), F32)))
    with pytest.raises(ValueError, match="kind"):
        f(dev(x), *args, out=np.zeros_like(x))
    big = dev(np.zeros(21, F32))
    with pytest.raises(ValueError, match="overlaps"):
        f(big[1:].reshape(4, 5), *args, out=big[:20].reshape(4, 5))
