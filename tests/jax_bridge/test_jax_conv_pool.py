"""fastnn.jax convolution and pooling against XLA (lax.conv_general_dilated, reduce_window):
values and gradients under jit, float32 and float64, random configurations."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="pip install 'fastnn[jax]' (CI installs it)")

import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import fastnn  # noqa: E402
import fastnn.jax as fj  # noqa: E402
from tests.jax_bridge.jax_helpers import assert_close, normal, precision, value_and_grads  # noqa: E402

DTYPES = ("float32", "float64")


def _conv_config(rng: np.random.Generator, nd: int) -> dict:
    groups = int(rng.choice([1, 1, 2, 3]))
    return {
        "n": int(rng.integers(1, 4)),
        "cin": groups * int(rng.integers(1, 4)),
        "cout": groups * int(rng.integers(1, 4)),
        "groups": groups,
        "size": tuple(int(s) for s in rng.integers(5, 12, nd)),
        "kernel": tuple(int(k) for k in rng.integers(1, 4, nd)),
        "stride": tuple(int(s) for s in rng.integers(1, 4, nd)),
        "padding": tuple(int(p) for p in rng.integers(0, 3, nd)),
        "dilation": tuple(int(d) for d in rng.integers(1, 3, nd)),
        "bias": bool(rng.integers(0, 2)),
    }


def _lax_conv(x, w, b, c):
    nd = len(c["size"])
    y = lax.conv_general_dilated(
        x, w, c["stride"], [(p, p) for p in c["padding"]], rhs_dilation=c["dilation"],
        feature_group_count=c["groups"], precision=lax.Precision.HIGHEST,
    )  # fmt: skip
    return y if b is None else y + b.reshape(-1, *([1] * nd))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("seed", range(3))
def test_conv_matches_xla(nd, seed, dtype):
    rng = np.random.default_rng(1000 * nd + seed)
    c = _conv_config(rng, nd)
    with precision(dtype):
        x = normal(rng, (c["n"], c["cin"], *c["size"]), dtype)
        w = normal(rng, (c["cout"], c["cin"] // c["groups"], *c["kernel"]), dtype)
        b = normal(rng, (c["cout"],), dtype) if c["bias"] else None
        ours = {1: fj.conv1d, 2: fj.conv2d}[nd]
        params = (c["stride"], c["padding"], c["dilation"], c["groups"])
        y, grads = value_and_grads(
            lambda x, w, b: ours(x, w, b, *params), (x, w, b), (0, 1, 2) if c["bias"] else (0, 1)
        )
        y_ref, grads_ref = value_and_grads(
            lambda x, w, b: _lax_conv(x, w, b, c), (x, w, b), (0, 1, 2) if c["bias"] else (0, 1)
        )
        assert y.dtype == jnp.dtype(dtype)
        assert_close(y, y_ref, dtype, scale=10)
        for g, g_ref in zip(grads, grads_ref):
            assert_close(g, g_ref, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_same_padding_and_batch_one(dtype):
    rng = np.random.default_rng(3)
    with precision(dtype):
        x = normal(rng, (1, 3, 7, 6), dtype)
        w = normal(rng, (4, 3, 3, 2), dtype)
        y = jax.jit(lambda x, w: fj.conv2d(x, w, padding="same"))(x, w)
        ref = lax.conv_general_dilated(x, w, (1, 1), "SAME", precision=lax.Precision.HIGHEST)
        assert y.shape == (1, 4, 7, 6)
        # torch's "same" pads an even kernel's extra column on the right, as XLA's SAME
        assert_close(y, ref, dtype, scale=10)


def _window(nd, c):
    return (
        (1, 1, *c["kernel"]),
        (1, 1, *c["stride"]),
        [(0, 0), (0, 0)] + [(p, p) for p in c["padding"]],
    )


def _lax_max(x, c):
    dims, strides, pads = _window(len(c["kernel"]), c)
    dilation = (1, 1, *c["dilation"])  # a Python -inf: the differentiable max monoid
    return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, pads, window_dilation=dilation)


def _lax_avg(x, c):
    dims, strides, pads = _window(len(c["kernel"]), c)
    total = lax.reduce_window(x, 0.0, lax.add, dims, strides, pads)
    return total / np.prod(c["kernel"])  # count_include_pad=True


def _pool_config(rng: np.random.Generator, nd: int, dilated: bool) -> dict:
    kernel = tuple(int(k) for k in rng.integers(1, 5, nd))
    return {
        "shape": (int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                  *(int(s) for s in rng.integers(6, 13, nd))),
        "kernel": kernel,
        "stride": tuple(int(s) for s in rng.integers(1, 4, nd)),
        "padding": tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel),
        "dilation": tuple(int(d) for d in rng.integers(1, 3, nd)) if dilated else (1,) * nd,
    }  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("seed", range(2))
def test_pool_matches_reduce_window(kind, nd, seed, dtype):
    rng = np.random.default_rng(100 * nd + seed + (50 if kind == "avg" else 0))
    c = _pool_config(rng, nd, dilated=False)  # XLA has no gradient of a dilated max pool
    ours = getattr(fj, f"{kind}_pool{nd}d")
    with precision(dtype):
        x = normal(rng, c["shape"], dtype)
        if kind == "max":
            fn = lambda x: ours(x, c["kernel"], c["stride"], c["padding"], c["dilation"])  # noqa: E731
            ref = lambda x: _lax_max(x, c)  # noqa: E731
        else:
            fn = lambda x: ours(x, c["kernel"], c["stride"], c["padding"])  # noqa: E731
            ref = lambda x: _lax_avg(x, c)  # noqa: E731
        y, (g,) = value_and_grads(fn, (x,), (0,))
        y_ref, (g_ref,) = value_and_grads(ref, (x,), (0,))
        assert_close(y, y_ref, dtype)
        assert_close(g, g_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2])
def test_dilated_max_pool(nd, dtype):
    """Values against reduce_window; gradients against fastnn's reference backend (XLA
    cannot differentiate a dilated max pool)."""
    rng = np.random.default_rng(77 + nd)
    c = _pool_config(rng, nd, dilated=True)
    c["dilation"] = (2,) * nd
    args = (c["kernel"], c["stride"], c["padding"], c["dilation"])
    with precision(dtype):
        x = normal(rng, c["shape"], dtype)
        y, vjp = jax.vjp(lambda x: getattr(fj, f"max_pool{nd}d")(x, *args), x)
        assert_close(y, _lax_max(x, c), dtype)
        g = normal(rng, y.shape, dtype)
        backward = getattr(fastnn, f"max_pool{nd}d_backward")
        x64, g64 = np.asarray(x, np.float64), np.asarray(g, np.float64)
        assert_close(vjp(g)[0], backward(g64, x64, *args, backend="reference"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_ceil_mode_and_exclude_pad_follow_fastnn(dtype):
    """Options XLA's reduce_window has no form of: checked against fastnn's float64
    reference backend (values and gradients)."""
    rng = np.random.default_rng(11)
    with precision(dtype):
        x = normal(rng, (2, 3, 9, 8), dtype)
        cases = [
            ("max_pool2d", (3, 2, 1, 1, True)),
            ("avg_pool2d", (3, 2, 1, True, False)),
        ]
        for name, args in cases:
            y, vjp = jax.vjp(lambda x, a=args, n=name: getattr(fj, n)(x, *a), x)
            x64 = np.asarray(x, np.float64)
            ref = getattr(fastnn, name)(x64, *args, backend="reference")
            assert y.shape == ref.shape
            g = normal(rng, y.shape, dtype)
            ref_grad = getattr(fastnn, f"{name}_backward")(
                np.asarray(g, np.float64), x64, *args, backend="reference"
            )
            assert_close(y, ref, dtype)
            assert_close(vjp(g)[0], ref_grad, dtype)
