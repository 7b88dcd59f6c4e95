"""1x1 convolutions as one GEMM over the whole batch (what "im2col:blocked" runs for an
unpadded 1x1 layer: _conv_pointwise on gemm_mapped.h): all three passes and the fused
bias + activation against the float64 reference backend, at every instruction-set
level of the GEMM, on random problems -- strides 1-3, groups, batch 1, maps whose
images end inside a register tile, every memory layout of the input -- and with the
blocks forced small so that every block of columns, rows and reduction is crossed."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import _isa
from fastnn._backends.cpu import _conv_im2col, _conv_pointwise
from fastnn._backends.cpu import conv as cpu_conv
from fastnn._backends.cpu._conv_choice import ranked
from fastnn.kernels.cpu import conv_pointwise as _pointwise_kernels
from tests.utils import assert_close, layouts

NAME = _conv_im2col.BLOCKED_GEMM


@pytest.fixture
def pointwise_first(monkeypatch):
    """algo="auto" with tuning off runs im2col on the blocked GEMM for every pass, and
    counts the passes that took the whole-batch 1x1 path."""
    fastnn.autotune(False)

    def first(geom, which="forward"):
        return [NAME, *(a for a in ranked(geom, which) if a != NAME)]

    monkeypatch.setattr(cpu_conv, "ranked", first)
    calls = {"forward": 0, "grad_input": 0, "grad_weight": 0}
    for name in calls:
        original = getattr(_conv_pointwise, name)

        def counted(*args, original=original, name=name, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(_conv_pointwise, name, counted)
    return calls


def random_problem(rng):
    groups = int(rng.choice([1, 1, 1, 2, 3]))
    cg, kg = int(rng.choice([1, 3, 8, 17])), int(rng.choice([1, 5, 16, 19, 33]))
    n = int(rng.integers(1, 4))
    size = tuple(int(v) for v in rng.integers(1, 16, size=2))
    stride = tuple(int(v) for v in rng.choice([1, 1, 2, 3], size=2))
    return n, groups, cg, kg, size, stride


def check(rng, dtype, what, count=8, activations=(None, "relu", "relu6")):
    for _ in range(count):
        n, groups, cg, kg, size, stride = random_problem(rng)
        x0 = rng.standard_normal((n, groups * cg, *size)).astype(dtype)
        w = rng.standard_normal((groups * kg, cg, 1, 1)).astype(dtype)
        b = rng.standard_normal(groups * kg).astype(dtype)
        act = activations[int(rng.integers(len(activations)))]
        params = dict(stride=stride, groups=groups)
        want = fastnn.conv2d(x0, w, b, activation=act, backend="reference", **params)
        gy = rng.standard_normal(want.shape).astype(dtype)
        ref = fastnn.conv2d_backward(gy, x0, w, backend="reference", **params)
        shape = f"{what} {x0.shape} -> {w.shape[0]} stride {stride} groups {groups} {act}"
        for layout, x in layouts(x0):
            got = fastnn.conv2d(x, w, b, activation=act, **params)
            assert got.dtype == dtype and got.flags.c_contiguous
            assert_close(got, want, dtype, what=f"{shape} {layout} forward")
            grads = fastnn.conv2d_backward(gy, x, w, **params)
            for name, g, r in zip(("gx", "gw", "gb"), grads, ref):
                assert_close(g, r, dtype, what=f"{shape} {layout} {name}")


def test_every_pass_every_level(rng, dtype, pointwise_first):
    for level in _isa.supported():
        with _isa.forced("gemm", level):
            check(rng, dtype, level)
    assert all(count > 0 for count in pointwise_first.values()), pointwise_first


def test_smallest_column_blocks(rng, dtype, pointwise_first, monkeypatch):
    """A cache of a few bytes: every block of packed columns is one register tile wide,
    so every block boundary (and image end) is crossed."""
    monkeypatch.setattr(_conv_pointwise, "l2_bytes", lambda: 64)
    check(rng, dtype, "one-panel blocks", count=6)


@pytest.mark.parametrize(
    "dims",
    [
        (2, 300, 5, (3, 4), 1),  # a reduction of several slices
        (3, 700, 11, (5, 3), 1),  # three slices: partial sums staged between them
        (1, 4, 150, (5, 5), 1),  # more output channels than one block of rows
        (3, 333, 7, (7, 7), 2),  # the weight gradient reduces over slices of images
        (2, 6, 9, (1, 1), 1),  # one position per image
    ],
    ids=["long-reduction", "three-slices", "many-rows", "strided-long", "one-position"],
)
def test_blocks_of_the_reduction_and_rows(rng, dtype, pointwise_first, dims):
    check_layer(rng, dtype, dims)


@pytest.mark.parametrize("ratio", [0.5, 2.0], ids=["wide-tile", "narrow-tile"])
def test_both_register_tiles(rng, dtype, pointwise_first, ratio):
    """At AVX-512 each product runs on the 2- or the 3-vector register tile, by the
    measured speed of the two (set_t48_time): forced each way, on layers whose every
    pass reduces far enough for either (elsewhere both tiles give the same results)."""
    previous = _pointwise_kernels.t48_time()
    _pointwise_kernels.set_t48_time(ratio)
    try:
        for dims in [(2, 40, 50, (5, 7), 1), (3, 64, 33, (6, 6), 2), (1, 300, 100, (7, 7), 1)]:
            check_layer(rng, dtype, dims)
    finally:
        _pointwise_kernels.set_t48_time(previous)


def check_layer(rng, dtype, dims):
    """Forward with bias + relu and every gradient of one layer against the reference."""
    n, c, k, size, stride = dims
    x = rng.standard_normal((n, c, *size)).astype(dtype)
    w = rng.standard_normal((k, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    want = fastnn.conv2d(x, w, b, stride=stride, activation="relu", backend="reference")
    assert_close(fastnn.conv2d(x, w, b, stride=stride, activation="relu"), want, dtype,
                 what=f"forward {dims}")  # fmt: skip
    gy = rng.standard_normal(want.shape).astype(dtype)
    ref = fastnn.conv2d_backward(gy, x, w, stride=stride, backend="reference")
    got = fastnn.conv2d_backward(gy, x, w, stride=stride)
    for name, g, r in zip(("gx", "gw", "gb"), got, ref):
        assert_close(g, r, dtype, what=f"{name} {dims}")


def test_padded_or_wider_kernels_keep_im2col(rng, pointwise_first):
    """Padding (or a kernel wider than 1) takes the column-matrix path."""
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 1, 1))
    want = fastnn.conv2d(x, w, None, padding=1, backend="reference")
    assert_close(fastnn.conv2d(x, w, None, padding=1), want, np.float64)
    assert pointwise_first["forward"] == 0


def test_empty_batch(pointwise_first):
    x = np.zeros((0, 3, 4, 4), dtype=np.float32)
    w = np.ones((2, 3, 1, 1), dtype=np.float32)
    assert fastnn.conv2d(x, w, None).shape == (0, 2, 4, 4)
    gx, gw, _ = fastnn.conv2d_backward(np.zeros((0, 2, 4, 4), np.float32), x, w)
    assert gx.shape == x.shape and np.all(gw == 0)
