"""CPU convolution forward (conv1d, conv2d): both algorithms and "auto" against the float64
reference backend and PyTorch, on random configurations and memory layouts.

The random cases (``random_case``) are shared with the backward and chunking tests.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn._geometry import conv_geometry
from fastnn.kernels.cpu import conv_direct as direct_kernels
from tests.conv_cases import ConvCase, valid_layer
from tests.utils import FLOAT_DTYPES, HAS_TORCH, assert_close, layouts

ALGOS = ("im2col", "direct", "auto")


def random_case(rng: np.random.Generator, nd: int, batch: int | None = None) -> ConvCase:
    """A random valid configuration: odd sizes, strides, dilations, int/tuple/"same"/
    "valid" padding (asymmetric "same" for even kernels), groups including depthwise."""
    while True:
        groups = int(rng.choice([1, 1, 1, 2, 3, -1]))  # -1: depthwise
        cg = int(rng.integers(1, 5))
        if groups == -1:
            groups, cg = int(rng.integers(2, 6)), 1
        kg = int(rng.integers(1, 8))
        kernel = tuple(int(k) for k in rng.integers(1, 6, size=nd))
        dilation = tuple(int(d) for d in rng.choice([1, 1, 2, 3], size=nd))
        size = tuple(int(s) for s in rng.integers(4, 23, size=nd))
        roll = rng.random()
        if roll < 0.2:
            padding, stride = "same", (1,) * nd
        else:
            stride = tuple(int(s) for s in rng.choice([1, 1, 2, 3], size=nd))
            if roll < 0.3:
                padding = "valid"
            elif roll < 0.6:
                padding = int(rng.integers(0, 3))
            else:
                padding = tuple(int(p) for p in rng.integers(0, 4, size=nd))
        n = int(rng.integers(1, 4)) if batch is None else batch
        layer = valid_layer(n, groups, cg, kg, size, kernel, stride, padding, dilation)
        if layer is not None:
            return ConvCase.of_layer(*layer)


def conv_fn(nd: int):
    return fastnn.conv1d if nd == 1 else fastnn.conv2d


def reference(case: ConvCase, x, w, b):
    return conv_fn(case.nd)(x, w, b, *case.params, backend="reference")


@pytest.mark.parametrize("nd", (1, 2))
def test_random_configurations_match_reference(rng, nd, dtype):
    for _ in range(14):
        case = random_case(rng, nd)
        x, w, b = case.arrays(rng, dtype, bias=bool(rng.integers(0, 2)))
        want = reference(case, x, w, b)
        for algo in ALGOS:
            got = conv_fn(nd)(x, w, b, *case.params, algo=algo, backend="cpu")
            assert got.dtype == dtype and got.flags.c_contiguous
            assert_close(got, want, dtype, what=f"{algo} {case}")


@pytest.mark.parametrize("nd", (1, 2))
@pytest.mark.parametrize("batch", (0, 1))
def test_batch_zero_and_one(rng, nd, batch):
    for _ in range(4):
        case = random_case(rng, nd, batch=batch)
        x, w, b = case.arrays(rng, np.float64)
        want = reference(case, x, w, b)
        for algo in ALGOS:
            got = conv_fn(nd)(x, w, b, *case.params, algo=algo, backend="cpu")
            assert got.shape == want.shape
            assert_close(got, want, what=f"{algo} {case}")


@pytest.mark.parametrize("nd", (1, 2))
def test_memory_layouts(rng, nd):
    """Fortran-ordered, strided and negative-stride inputs and weights."""
    case = ConvCase(
        nd, 2, 4, 6, 2, (9, 11)[:nd] if nd == 2 else (13,), (3, 2)[:nd], (2, 1)[:nd], 1, (1, 2)[:nd]
    )
    for dtype in FLOAT_DTYPES:
        x, w, b = case.arrays(rng, dtype)
        want = reference(case, x, w, b)
        for (xname, xl), (wname, wl) in zip(layouts(x), layouts(w)):
            for algo in ALGOS:
                got = conv_fn(nd)(xl, wl, b, *case.params, algo=algo, backend="cpu")
                assert_close(got, want, dtype, what=f"{algo} x={xname} w={wname}")


@pytest.mark.parametrize("nd", (1, 2))
def test_same_padding_even_kernels(rng, nd):
    """padding="same" with an even dilated kernel pads one more after than before."""
    for kernel, dilation in (((4, 2)[:nd], (1, 1)[:nd]), ((2, 6)[:nd], (3, 1)[:nd])):
        case = ConvCase(nd, 2, 3, 5, 1, (10, 7)[:nd], kernel, (1,) * nd, "same", dilation)
        x, w, b = case.arrays(rng, np.float64)
        want = reference(case, x, w, b)
        assert want.shape[2:] == x.shape[2:]
        for algo in ALGOS:
            got = conv_fn(nd)(x, w, b, *case.params, algo=algo, backend="cpu")
            assert_close(got, want, what=f"{algo} kernel={kernel} dilation={dilation}")


@pytest.mark.parametrize("nd", (1, 2))
def test_depthwise(rng, nd):
    for multiplier in (1, 3):
        case = ConvCase(
            nd, 3, 5, 5 * multiplier, 5, (12, 9)[:nd], (3, 3)[:nd], (1, 2)[:nd], 1, (1, 1)[:nd]
        )
        for dtype in FLOAT_DTYPES:
            x, w, b = case.arrays(rng, dtype)
            want = reference(case, x, w, b)
            for algo in ALGOS:
                got = conv_fn(nd)(x, w, b, *case.params, algo=algo, backend="cpu")
                assert_close(got, want, dtype, what=f"{algo} multiplier={multiplier}")


def test_long_spectra_and_wide_kernels(rng):
    """The direct kernel's home ground: 1-D signals of a few channels, long kernels."""
    for c, length, k, kernel, stride, pad in ((1, 1000, 16, 21, 1, 10), (4, 777, 9, 7, 3, 3)):
        case = ConvCase(1, 3, c, k, 1, (length,), (kernel,), (stride,), pad, (1,))
        for dtype in FLOAT_DTYPES:
            x, w, b = case.arrays(rng, dtype)
            want = reference(case, x, w, b)
            for algo in ALGOS:
                got = fastnn.conv1d(x, w, b, *case.params, algo=algo, backend="cpu")
                assert_close(got, want, dtype, what=f"{algo} L={length} k={kernel}")


def test_pointwise_fast_path(rng):
    """1x1, stride 1, no padding: im2col runs its GEMM on the image itself."""
    case = ConvCase(2, 3, 8, 5, 1, (6, 7), (1, 1), (1, 1), 0, (1, 1))
    x, w, b = case.arrays(rng, np.float64)
    want = reference(case, x, w, b)
    for _, xl in layouts(x):
        got = fastnn.conv2d(xl, w, b, algo="im2col", backend="cpu")
        assert_close(got, want)


def test_inputs_are_not_modified(rng):
    case = random_case(rng, 2)
    x, w, b = case.arrays(rng, np.float32)
    copies = [a.copy() for a in (x, w, b)]
    for algo in ALGOS:
        fastnn.conv2d(x, w, b, *case.params, algo=algo, backend="cpu")
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


def test_nan_propagates_only_to_windows_that_read_it(rng):
    """A NaN reaches exactly the outputs whose window covers it, as in the reference: lanes
    past a row's end never leak into stored results."""
    case = ConvCase(2, 2, 2, 7, 1, (9, 21), (3, 3), (2, 3), 1, (1, 1))
    x, w, b = case.arrays(rng, np.float64)
    x[1, 0, 4, 20] = np.nan  # column 20 is in no window (stride 3)
    x[0, 1, 3, 5] = np.nan
    want = reference(case, x, w, b)
    assert np.isnan(want).any() and not np.isnan(want[1]).any()
    for algo in ALGOS:
        got = fastnn.conv2d(x, w, b, *case.params, algo=algo, backend="cpu")
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        assert_close(got, want, what=algo)


@pytest.fixture
def restore_isa():
    before = direct_kernels.current_isa()
    yield
    direct_kernels.set_isa(before)


def supported_isas() -> list[str]:
    """The instruction-set levels of the direct micro-kernels this CPU can run."""
    order = ("base", "avx2", "avx512")
    return list(order[: order.index(direct_kernels.best_isa()) + 1])


def every_isa_case(rng: np.random.Generator, per_nd: int = 3):
    """``(isa, case, dtype)``: for each instruction set of the direct micro-kernels this
    CPU supports (set while its cases run), ``per_nd`` random 1-D and 2-D cases in each
    floating dtype."""
    for isa in supported_isas():
        assert direct_kernels.set_isa(isa) == isa
        for nd in (1, 2):
            for _ in range(per_nd):
                case = random_case(rng, nd)
                for dtype in FLOAT_DTYPES:
                    yield isa, case, dtype


def test_every_instruction_set_path(rng, restore_isa):
    """The direct micro-kernels are compiled for several instruction sets; run each one
    this CPU supports (forcing lower ones than the best) against the reference."""
    for isa, case, dtype in every_isa_case(rng):
        x, w, b = case.arrays(rng, dtype)
        want = reference(case, x, w, b)
        got = conv_fn(case.nd)(x, w, b, *case.params, algo="direct", backend="cpu")
        assert_close(got, want, dtype, what=f"{isa} {case}")


def test_every_row_width_every_instruction_set(rng, restore_isa):
    """The direct forward stores a row narrower than its block of columns in pieces (a
    last vector overlapping the one before, then power-of-two runs below one vector):
    every output width from 1 to past two blocks, at every instruction set, with and
    without a fused activation, against the reference."""
    for isa in supported_isas():
        assert direct_kernels.set_isa(isa) == isa
        for width in range(1, 42):
            for dtype in FLOAT_DTYPES:
                x = rng.standard_normal((2, 2, 3, width + 2)).astype(dtype)
                w = rng.standard_normal((7, 2, 3, 3)).astype(dtype)
                b = rng.standard_normal(7).astype(dtype)
                for activation in (None, "relu"):
                    want = fastnn.conv2d(x, w, b, backend="reference")
                    if activation:
                        want = np.maximum(want, 0)
                    got = fastnn.conv2d(x, w, b, algo="direct", activation=activation)
                    assert got.shape == (2, 7, 1, width)
                    assert_close(got, want, dtype, what=f"{isa} width {width} {activation}")


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
@pytest.mark.parametrize("nd", (1, 2))
def test_random_configurations_match_torch(rng, nd):
    import torch
    import torch.nn.functional as F

    torch_conv = F.conv1d if nd == 1 else F.conv2d
    for _ in range(10):
        case = random_case(rng, nd)
        x, w, b = case.arrays(rng, np.float64)
        want = torch_conv(
            torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), *case.params
        ).numpy()
        for algo in ALGOS:
            got = conv_fn(nd)(x, w, b, *case.params, algo=algo, backend="cpu")
            assert_close(got, want, what=f"{algo} {case}")


def test_unknown_algorithm_is_rejected(rng):
    x, w, b = ConvCase(2, 1, 1, 1, 1, (5, 5), (3, 3), (1, 1), 0, (1, 1)).arrays(rng, np.float32)
    with pytest.raises(ValueError, match="algo"):
        fastnn.conv2d(x, w, b, algo="fft", backend="cpu")


def test_problems_too_large_for_blas_run_direct(rng, monkeypatch):
    """BLAS takes 32-bit sizes: past them "auto" runs the direct kernel and an explicit
    "im2col" is refused (simulated by lowering the limit)."""
    from fastnn._backends.cpu import _conv_plan

    monkeypatch.setattr(_conv_plan, "BLAS_INT_MAX", 20)
    case = ConvCase(2, 2, 3, 4, 1, (6, 7), (3, 3), (1, 1), 1, (1, 1))
    x, w, b = case.arrays(rng, np.float64)
    want = reference(case, x, w, b)
    assert_close(fastnn.conv2d(x, w, b, *case.params, algo="auto", backend="cpu"), want)
    with pytest.raises(ValueError, match="im2col"):
        fastnn.conv2d(x, w, b, *case.params, algo="im2col", backend="cpu")
    gy = rng.standard_normal(want.shape)
    with pytest.raises(ValueError, match="im2col"):
        fastnn.conv2d_backward(gy, x, w, *case.params, algo="im2col", backend="cpu")
    grads = fastnn.conv2d_backward(gy, x, w, *case.params, backend="cpu")
    for got, ref in zip(grads, fastnn.conv2d_backward(gy, x, w, *case.params, backend="reference")):
        assert_close(got, ref)


def test_auto_avoids_huge_direct_buffers(rng, monkeypatch):
    """With the direct kernels' buffer limit lowered, "auto" runs im2col, on either GEMM
    engine (still correct)."""
    from fastnn._backends.cpu import _conv_plan, conv

    monkeypatch.setattr(_conv_plan, "DIRECT_MAX_PACKED", 10)
    case = ConvCase(1, 2, 3, 4, 1, (40,), (3,), (1,), 1, (1,))
    x, w, b = case.arrays(rng, np.float64)
    geom = conv_geometry("conv1d", 1, x.shape, w.shape, 1, 1, 1, 1)
    candidates = conv._candidates(geom, _conv_plan.shape_tuple(geom), "forward")
    assert candidates == ["im2col", "im2col:blocked"]
    assert_close(fastnn.conv1d(x, w, b, *case.params, backend="cpu"), reference(case, x, w, b))
