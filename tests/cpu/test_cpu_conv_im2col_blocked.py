"""im2col with its GEMMs on fastnn's blocked kernel (candidate "im2col:blocked" of
algo="auto"; "im2col" runs them on SciPy's BLAS): all three passes against the float64
reference backend on random problems, at every instruction-set level of the GEMM, and
with the tilings forced that make its GEMMs accumulate (per-thread weight gradients over
tiles, several images per tile, the shared-column weight gradient), and on shapes whose
products have one row or one column."""

from __future__ import annotations

import pytest

import fastnn
from fastnn import _isa
from fastnn._backends.cpu import _conv_im2col, _conv_plan
from fastnn._backends.cpu import conv as cpu_conv
from fastnn._backends.cpu._conv_choice import ranked
from fastnn._backends.cpu._conv_plan import chunking
from tests.cpu.test_cpu_conv_blocked import arrays, check, conv
from tests.utils import assert_close

NAME = _conv_im2col.BLOCKED_GEMM


@pytest.fixture
def blocked_gemm_first(monkeypatch):
    """algo="auto" with tuning off runs im2col on the blocked GEMM for every pass (also
    on depthwise layers, whose ranking does not list it)."""
    fastnn.autotune(False)

    def first(geom, which="forward"):
        return [NAME, *(a for a in ranked(geom, which) if a != NAME)]

    monkeypatch.setattr(cpu_conv, "ranked", first)


def test_ranked_right_after_im2col():
    from fastnn._geometry import conv_geometry

    geom = conv_geometry("conv2d", 2, (2, 64, 14, 14), (128, 64, 1, 1), 1, 0, 1, 1)
    for which in ("forward", "input", "weight"):
        order = ranked(geom, which)
        assert order.index(NAME) == order.index("im2col") + 1, order


@pytest.mark.parametrize("nd", (1, 2))
def test_every_pass_every_level(rng, nd, dtype, blocked_gemm_first):
    for level in _isa.supported():
        with _isa.forced("gemm", level):
            check(rng, nd, dtype, level)


@pytest.mark.parametrize("tile", (1, 5, 1000))
def test_tiles_that_accumulate(rng, dtype, blocked_gemm_first, tile):
    """Tiles of one or five positions, or of whole images (1000 spans several): the
    weight gradient adds every tile's product into its per-thread sum, the forward pass
    adds it on top of the bias."""
    with chunking(tile=tile, channels=2):
        check(rng, 2, dtype, f"tile {tile}", count=6)


def test_shared_column_weight_gradient(rng, dtype, blocked_gemm_first, monkeypatch):
    """Large weights: one column matrix per chunk of images, shared by the threads; each
    chunk after the first adds into the gradient (beta = 1)."""
    monkeypatch.setattr(_conv_plan, "SHARED_WEIGHT_ELEMENTS", 0)
    monkeypatch.setattr(_conv_plan, "SHARED_COLUMN_ELEMENTS", 2000)
    forward, backward = conv(2)
    for dims, params in [
        ((5, 12, 9, (7, 6), (3, 3)), (1, 1, 1, 1)),
        ((4, 6, 20, (9, 9), (1, 1)), (1, 0, 1, 2)),
        ((3, 3, 1, (8, 5), (2, 2)), (1, 1, 1, 1)),  # one output channel: one-row products
    ]:
        x, w, _ = arrays(rng, dims, params[3], dtype)
        y = forward(x, w, None, *params, backend="reference")
        gy = rng.standard_normal(y.shape).astype(dtype)
        want = backward(gy, x, w, *params, backend="reference")
        got = backward(gy, x, w, *params, output_mask=(False, True, False))
        assert_close(got[1], want[1], dtype, what=f"shared {dims} {params}")


@pytest.mark.parametrize(
    "dims",
    [
        (3, 1, 7, (9, 8), (1, 1)),  # one input channel: one-column weight-gradient products
        (2, 5, 1, (6, 7), (3, 3)),  # one output channel: one-row forward products
        (2, 4, 3, (1, 1), (1, 1)),  # one position per image
    ],
    ids=["one-input-channel", "one-output-channel", "one-position"],
)
def test_one_row_or_column_products(rng, dtype, blocked_gemm_first, dims):
    forward, backward = conv(2)
    x, w, b = arrays(rng, dims, 1, dtype)
    want = forward(x, w, b, backend="reference")
    assert_close(forward(x, w, b), want, dtype, what=f"forward {dims}")
    gy = rng.standard_normal(want.shape).astype(dtype)
    ref = backward(gy, x, w, backend="reference")
    for tile in (None, 1):
        with chunking(tile=tile):
            for name, g, r in zip(("gx", "gw", "gb"), backward(gy, x, w), ref):
                assert_close(g, r, dtype, what=f"{name} {dims} tile {tile}")


def test_engine_variant_is_timed_with_its_algorithm():
    """algo="auto" times the first TIMED algorithms of the ranking; an engine variant
    ranked right after one of them comes along without taking a place."""
    from fastnn._selection import TIMED, timed

    assert TIMED == 3
    assert timed(["direct:blocked", "im2col", NAME, "direct"]) == [
        "direct:blocked", "im2col", NAME, "direct"]  # fmt: skip
    assert timed(["direct:blocked", "direct", "winograd4", "im2col", NAME]) == [
        "direct:blocked", "direct", "winograd4"]  # fmt: skip
    # a variant is one only right after its algorithm
    assert timed(["direct:blocked", "direct", "im2col", "winograd2"]) == [
        "direct:blocked", "direct", "im2col"]  # fmt: skip
