"""The depthwise convolution kernels (groups == input channels; what algo="direct" runs
on such layers), plane by plane and with channels in SIMD lanes: forward and both
gradients against the float64 reference backend and PyTorch, at every instruction-set
level this CPU runs, on random problems: channel multipliers (several tiles of output
channels in the weight gradient), kernels 1-5, strides 1-3, dilation, asymmetric
padding, 1-D, batch 1, and every memory layout; and the plane-by-plane kernel on layers
of a single input channel (groups 1), where "auto" may choose it."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import _isa
from fastnn._backends.cpu import _conv_choice, _conv_depthwise
from fastnn._backends.cpu import conv as cpu_conv
from fastnn._geometry import conv_geometry
from tests.utils import HAS_TORCH, assert_close, import_torch, layouts


def random_depthwise(rng, nd=2):
    while True:
        c = int(rng.integers(2, 9))
        km = int(rng.choice([1, 1, 2, 3, 6]))
        n = int(rng.integers(1, 4))
        size = tuple(int(v) for v in rng.integers(1, 24, size=nd))
        kernel = tuple(int(v) for v in rng.integers(1, 6, size=nd))
        stride = tuple(int(v) for v in rng.choice([1, 1, 2, 3], size=nd))
        dilation = tuple(int(v) for v in rng.choice([1, 1, 2], size=nd))
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        if rng.random() < 0.15:
            padding, stride = "same", (1,) * nd
        try:
            conv_geometry("conv", nd, (n, c, *size), (c * km, 1, *kernel), stride, padding,
                          dilation, c)  # fmt: skip
        except ValueError:
            continue
        return (n, c, km, size, kernel), (stride, padding, dilation, c)


def arrays(rng, dims, dtype):
    n, c, km, size, kernel = dims
    x = rng.standard_normal((n, c, *size)).astype(dtype)
    w = rng.standard_normal((c * km, 1, *kernel)).astype(dtype)
    b = rng.standard_normal(c * km).astype(dtype)
    return x, w, b


def conv(nd):
    return (fastnn.conv1d, fastnn.conv1d_backward) if nd == 1 else (
        fastnn.conv2d, fastnn.conv2d_backward)  # fmt: skip


@pytest.fixture(params=["planes", "lanes"])
def variant(request, monkeypatch):
    """Run a test with each depthwise variant (plane by plane, channels in lanes) as the
    one algo="direct" picks."""

    monkeypatch.setattr(_conv_choice, "prefer_lanes", lambda geom: request.param == "lanes")
    return request.param


@pytest.mark.parametrize("nd", (1, 2))
def test_every_pass_every_level(rng, nd, dtype, variant):
    forward, backward = conv(nd)
    family = "depthwise_lanes" if variant == "lanes" else "depthwise"
    for level in _isa.supported():
        with _isa.forced(family, level):
            for _ in range(12):
                dims, params = random_depthwise(rng, nd)
                x, w, b = arrays(rng, dims, dtype)
                want = forward(x, w, b, *params, backend="reference")
                got = forward(x, w, b, *params, algo="direct")
                assert got.dtype == dtype and got.flags.c_contiguous
                assert_close(got, want, dtype, what=f"{level} forward {dims} {params}")
                gy = rng.standard_normal(want.shape).astype(dtype)
                ref = backward(gy, x, w, *params, backend="reference")
                grads = backward(gy, x, w, *params, algo="direct")
                for name, g, r in zip(("gx", "gw", "gb"), grads, ref):
                    assert_close(g, r, dtype, what=f"{level} {name} {dims} {params}")


@pytest.mark.parametrize("stride", (1, 2))
def test_three_by_three_rows_of_every_group_size(rng, variant, stride):
    """3x3 (and 1-D 9-tap) kernels, whose tap loop the lanes kernel unrolls: output rows
    of 15 (groups of 8 + 4 + 2 + 1) and 7 positions, every level, against the reference."""
    for level in _isa.supported():
        with _isa.forced("depthwise", level), _isa.forced("depthwise_lanes", level):
            for nd, size, kernel in ((2, 29, (3, 3)), (2, 14, (3, 3)), (1, 37, (9,))):
                forward, backward = conv(nd)
                dims = (2, 19, 1, (size,) * nd, kernel)
                x, w, b = arrays(rng, dims, np.float32)
                params = (stride, kernel[0] // 2, 1, 19)
                for act in (None, "relu"):
                    want = forward(x, w, b, *params, activation=act, backend="reference")
                    got = forward(x, w, b, *params, activation=act, algo="direct")
                    assert_close(got, want, what=f"{level} {nd}-d stride {stride} {act}")
                gy = rng.standard_normal(want.shape).astype(np.float32)
                ref = backward(gy, x, w, *params, backend="reference")
                for name, g, r in zip(("gx", "gw", "gb"),
                                      backward(gy, x, w, *params, algo="direct"), ref):  # fmt: skip
                    assert_close(g, r, what=f"{level} {nd}-d stride {stride} {name}")


def test_each_variant_runs_at_its_own_level(rng, monkeypatch, variant):
    """The variants are separate instruction-set families ("depthwise" plane by plane,
    "depthwise_lanes" channels in lanes): every pass of a variant runs at its family's
    level, whatever the other family's."""
    levels = _isa.supported()
    real, seen = _conv_depthwise._k, []

    class Spy:
        @staticmethod
        def forward(*a):
            seen.append((a[6], a[7]))
            return real.forward(*a)

        @staticmethod
        def backward_input(*a):
            seen.append((a[5], a[6]))
            return real.backward_input(*a)

        @staticmethod
        def backward_weight(*a):
            seen.append((a[4], a[5]))
            return real.backward_weight(*a)

    monkeypatch.setattr(_conv_depthwise, "_k", Spy)
    x, w, b = arrays(rng, (2, 6, 1, (9, 9), (3, 3)), np.float32)
    mine, other = ("depthwise_lanes", "depthwise")[:: 1 if variant == "lanes" else -1]
    for level in levels:
        for other_level in levels:
            seen.clear()
            with _isa.forced(mine, level), _isa.forced(other, other_level):
                y = fastnn.conv2d(x, w, b, 1, 1, 1, 6, algo="direct")
                fastnn.conv2d_backward(y, x, w, 1, 1, 1, 6, algo="direct")
            code = _isa.LEVELS.index(level)
            assert seen == [(code, variant == "lanes")] * 3, (level, other_level)


def test_auto_runs_the_depthwise_kernel(rng):
    x, w, b = arrays(rng, (2, 16, 1, (9, 9), (3, 3)), np.float32)
    want = fastnn.conv2d(x, w, b, 1, 1, 1, 16, backend="reference")
    assert_close(fastnn.conv2d(x, w, b, 1, 1, 1, 16), want)


def test_memory_layouts(rng, variant):
    x, w, b = arrays(rng, (2, 4, 2, (10, 11), (3, 3)), np.float32)
    params = ((2, 1), 1, 1, 4)
    want = fastnn.conv2d(x, w, b, *params, algo="direct")
    gy = rng.standard_normal(want.shape).astype(np.float32)
    want_grads = fastnn.conv2d_backward(gy, x, w, *params, algo="direct")
    for name, xl in layouts(x):
        for _, wl in layouts(w):
            np.testing.assert_array_equal(
                fastnn.conv2d(xl, wl, b, *params, algo="direct"), want, err_msg=name
            )
        for _, gyl in layouts(gy):
            for g, r in zip(fastnn.conv2d_backward(gyl, xl, w, *params, algo="direct"),
                            want_grads):  # fmt: skip
                np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the torch extra) is missing")
def test_matches_torch_mobilenet_shapes(rng):
    torch = import_torch()
    for c, hw, stride in ((32, 16, 1), (24, 15, 2), (40, 7, 1)):
        x, w, b = arrays(rng, (2, c, 1, (hw, hw), (3, 3)), np.float32)
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        want = torch.nn.functional.conv2d(tx, tw, tb, stride, 1, 1, c).numpy()
        assert_close(fastnn.conv2d(x, w, b, stride, 1, 1, c), want)


@pytest.fixture
def planes_first(monkeypatch):
    """algo="auto" with tuning off runs the plane-by-plane depthwise kernel for every pass
    of a single-channel layer."""
    fastnn.autotune(False)
    ranked = cpu_conv.ranked

    def first(geom, which="forward"):
        order = ranked(geom, which)
        planes = _conv_depthwise.PLANES
        return [planes, *(a for a in order if a != planes)] if planes in order else order

    monkeypatch.setattr(cpu_conv, "ranked", first)


@pytest.mark.parametrize("nd", (1, 2))
def test_single_channel_layers_every_pass_every_level(rng, nd, dtype, planes_first):
    """One input channel, one group, any number of outputs (tiles of output channels and
    their remainders in the weight gradient), strides, dilation, padding, a strided
    input: the depthwise kernel with the outputs as its channel multiplier."""
    forward, backward = conv(nd)
    for level in _isa.supported():
        with _isa.forced("depthwise", level):
            for _ in range(8):
                while True:
                    dims, (stride, padding, dilation, _) = random_depthwise(rng, nd)
                    k = int(rng.choice([1, 3, 4, 5, 9, 33]))
                    n, size, kernel = dims[0], dims[3], dims[4]
                    params = (stride, padding, dilation, 1)
                    try:
                        conv_geometry("conv", nd, (n, 1, *size), (k, 1, *kernel), *params)
                    except ValueError:
                        continue
                    break
                wide = rng.standard_normal((n, 1, *size[:-1], 2 * size[-1])).astype(dtype)
                x = wide[..., ::2]  # a strided input
                w = rng.standard_normal((k, 1, *kernel)).astype(dtype)
                b = rng.standard_normal(k).astype(dtype)
                assert _conv_depthwise.PLANES in cpu_conv.ranked(
                    conv_geometry("conv", nd, x.shape, w.shape, *params), "weight"
                )
                want = forward(x, w, b, *params, backend="reference")
                got = forward(x, w, b, *params)
                what = f"{level} {x.shape} -> {k} {params}"
                assert_close(got, want, dtype, what=f"forward {what}")
                gy = rng.standard_normal(want.shape).astype(dtype)
                ref = backward(gy, x, w, *params, backend="reference")
                grads = backward(gy, x, w, *params)
                for name, g, r in zip(("gx", "gw", "gb"), grads, ref):
                    assert_close(g, r, dtype, what=f"{name} {what}")
