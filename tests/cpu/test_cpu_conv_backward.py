"""CPU convolution backward (conv1d_backward, conv2d_backward): grad_input, grad_weight and
grad_bias of both algorithms and "auto", for every output_mask, against the float64
reference backend and PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from fastnn.kernels.cpu import conv_direct as direct_kernels
from tests.conv_cases import ConvCase
from tests.cpu.test_cpu_conv import ALGOS, every_isa_case, random_case, supported_isas
from tests.utils import FLOAT_DTYPES, HAS_TORCH, assert_close, layouts, torch_grads

MASKS = list(itertools.product((False, True), repeat=3))
NAMES = ("grad_input", "grad_weight", "grad_bias")


def backward_fn(nd: int):
    return fastnn.conv1d_backward if nd == 1 else fastnn.conv2d_backward


def output_shape(case: ConvCase, x, w) -> tuple[int, ...]:
    conv = fastnn.conv1d if case.nd == 1 else fastnn.conv2d
    return conv(x[:1], w, None, *case.params, backend="reference").shape[2:]


def problem(rng, case: ConvCase, dtype):
    x, w, _ = case.arrays(rng, dtype, bias=False)
    gy = rng.standard_normal((case.batch, case.out_channels, *output_shape(case, x, w)))
    return gy.astype(dtype), x, w


def reference(case: ConvCase, gy, x, w):
    return backward_fn(case.nd)(gy, x, w, *case.params, backend="reference")


def check(got, want, mask, dtype, what: str) -> None:
    for name, g, r, m in zip(NAMES, got, want, mask):
        if not m:
            assert g is None, f"{what}: {name} was not asked for"
            continue
        assert g.dtype == dtype and g.flags.c_contiguous, f"{what}: {name}"
        assert_close(g, r, dtype, what=f"{what}: {name}")


@pytest.mark.parametrize("nd", (1, 2))
def test_random_configurations_every_mask(rng, nd, dtype):
    for _ in range(8):
        case = random_case(rng, nd)
        gy, x, w = problem(rng, case, dtype)
        want = reference(case, gy, x, w)
        for algo in ALGOS:
            for mask in MASKS:
                got = backward_fn(nd)(
                    gy, x, w, *case.params, algo=algo, output_mask=mask, backend="cpu"
                )
                check(got, want, mask, dtype, f"{algo} mask={mask} {case}")


@pytest.mark.parametrize("nd", (1, 2))
@pytest.mark.parametrize("batch", (0, 1))
def test_batch_zero_and_one(rng, nd, batch):
    for _ in range(3):
        case = random_case(rng, nd, batch=batch)
        gy, x, w = problem(rng, case, np.float64)
        want = reference(case, gy, x, w)
        for algo in ALGOS:
            got = backward_fn(nd)(gy, x, w, *case.params, algo=algo, backend="cpu")
            check(got, want, (True, True, True), np.float64, f"{algo} batch={batch}")


@pytest.mark.parametrize("nd", (1, 2))
def test_memory_layouts(rng, nd):
    """grad_output, input and weight in Fortran, strided and negative-stride layouts."""
    case = ConvCase(
        nd, 2, 4, 6, 2, (9, 11)[:nd] if nd == 2 else (13,), (3, 2)[:nd], (2, 1)[:nd], 1, (1, 2)[:nd]
    )
    for dtype in FLOAT_DTYPES:
        gy, x, w = problem(rng, case, dtype)
        want = reference(case, gy, x, w)
        for (gname, gl), (xname, xl), (_, wl) in zip(layouts(gy), layouts(x), layouts(w)):
            for algo in ALGOS:
                got = backward_fn(nd)(gl, xl, wl, *case.params, algo=algo, backend="cpu")
                check(got, want, (True, True, True), dtype, f"{algo} gy={gname} x={xname}")


def test_same_padding_depthwise_and_long_signals(rng):
    cases = [
        ConvCase(2, 2, 3, 5, 1, (10, 7), (4, 2), (1, 1), "same", (1, 3)),
        ConvCase(1, 2, 3, 4, 1, (17,), (6,), (1,), "same", (2,)),
        ConvCase(2, 3, 6, 12, 6, (11, 13), (3, 3), (2, 1), 1, (1, 1)),
        ConvCase(1, 3, 1, 16, 1, (1000,), (21,), (1,), 10, (1,)),
        ConvCase(1, 2, 4, 9, 1, (777,), (7,), (3,), 3, (1,)),
    ]
    for case in cases:
        for dtype in FLOAT_DTYPES:
            gy, x, w = problem(rng, case, dtype)
            want = reference(case, gy, x, w)
            for algo in ALGOS:
                got = backward_fn(case.nd)(gy, x, w, *case.params, algo=algo, backend="cpu")
                check(got, want, (True, True, True), dtype, f"{algo} {case}")


def test_nan_in_unread_input_does_not_reach_grad_weight(rng):
    """Vector lanes past a row's end are cleared, so an input no window reads (column 20
    with stride 3) cannot poison grad_weight, while a read NaN does."""
    case = ConvCase(2, 2, 2, 7, 1, (9, 21), (3, 3), (2, 3), 1, (1, 1))
    gy, x, w = problem(rng, case, np.float32)
    x[:, :, :, 20] = np.nan
    want = reference(case, gy, x, w)
    assert not np.isnan(want[1]).any()
    for algo in ALGOS:
        got = backward_fn(2)(gy, x, w, *case.params, algo=algo, backend="cpu")
        check(got, want, (True, True, True), np.float32, algo)
    x[0, 1, 3, 5] = np.nan
    want = reference(case, gy, x, w)
    for algo in ALGOS:
        got = backward_fn(2)(gy, x, w, *case.params, algo=algo, backend="cpu")
        np.testing.assert_array_equal(np.isnan(got[1]), np.isnan(want[1]))


def test_inputs_are_not_modified(rng):
    case = random_case(rng, 2)
    gy, x, w = problem(rng, case, np.float32)
    copies = [a.copy() for a in (gy, x, w)]
    for algo in ALGOS:
        backward_fn(2)(gy, x, w, *case.params, algo=algo, backend="cpu")
    for a, c in zip((gy, x, w), copies):
        np.testing.assert_array_equal(a, c)


@pytest.fixture
def restore_isa():
    before = direct_kernels.current_isa()
    yield
    direct_kernels.set_isa(before)


def test_every_instruction_set_path(rng, restore_isa):
    for isa, case, dtype in every_isa_case(rng):
        gy, x, w = problem(rng, case, dtype)
        want = reference(case, gy, x, w)
        got = backward_fn(case.nd)(gy, x, w, *case.params, algo="direct", backend="cpu")
        check(got, want, (True, True, True), dtype, f"{isa} {case}")


# Stride-1 layers on maps narrower than a vector block: the direct input gradient lays
# several rows of grad_output in one strip (a 40-row map takes two strips of 8 channels in
# float64, one in float32), and orders each channel chunk's columns taps-outer; chunks of
# 3 of 5 channels leave a smaller last chunk.
NARROW_STRIDE_ONE = [
    ConvCase(2, 2, 5, 8, 1, (40, 9), (3, 3), 1, 1, 1),
    ConvCase(2, 1, 5, 8, 1, (41, 6), (3, 2), 1, "same", (2, 1)),
    ConvCase(2, 2, 6, 8, 2, (37, 12), (5, 5), 1, (2, 0), 1),
    ConvCase(2, 3, 6, 16, 1, (14, 14), (5, 5), 1, 0, 1),
]


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("channels", (None, 3))
@pytest.mark.parametrize("case", NARROW_STRIDE_ONE, ids=str)
def test_direct_input_gradient_on_narrow_stride_one_maps(rng, restore_isa, case, channels):
    from fastnn._backends.cpu._conv_plan import chunking

    for isa in supported_isas():
        assert direct_kernels.set_isa(isa) == isa
        for dtype in FLOAT_DTYPES:
            gy, x, w = problem(rng, case, dtype)
            want = reference(case, gy, x, w)
            with chunking(channels=channels):
                got = backward_fn(case.nd)(
                    gy, x, w, *case.params, algo="direct", output_mask=(True, False, False),
                    backend="cpu",
                )  # fmt: skip
            check(got, want, (True, False, False), dtype, f"{isa} {case}")


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("nd", (1, 2))
def test_random_configurations_match_torch(rng, nd):
    import torch.nn.functional as F

    torch_conv = F.conv1d if nd == 1 else F.conv2d
    for _ in range(8):
        case = random_case(rng, nd)
        gy, x, w = problem(rng, case, np.float64)
        _, (gx, gw) = torch_grads(
            lambda x, w, case=case: torch_conv(x, w, None, *case.params), x, w, grad_output=gy
        )
        want = (gx, gw, gy.sum(axis=(0, *range(2, gy.ndim))))
        for algo in ALGOS:
            got = backward_fn(nd)(gy, x, w, *case.params, algo=algo, backend="cpu")
            check(got, want, (True, True, True), np.float64, f"{algo} {case}")
