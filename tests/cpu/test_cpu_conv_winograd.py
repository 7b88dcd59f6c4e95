"""Winograd convolution on the CPU (algo="winograd", "winograd2/4/6"): forward and input
gradient against the float64 reference backend and PyTorch, for every tile size and every
instruction-set level this CPU runs, on random 3x3 stride-1 problems (odd sizes, batch 1,
padding 0-3 and "same", groups, non-contiguous inputs), plus the kernel's blocking and
thread grids forced through every boundary, and the accuracy bound per tile size."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import _isa
from fastnn._backends.cpu import _conv_winograd
from fastnn.kernels.cpu import conv_winograd as kernels
from tests.utils import FLOAT_DTYPES, HAS_TORCH, assert_close, import_torch, layouts

TILES = (2, 4, 6)
#: Relative error bound (max |y - y64| / max |y64|) per tile size in float32 on unit-scale
#: data with a few dozen channels; docs/API.md gives the bounds measured at C = 512.
F32_BOUND = {2: 2e-6, 4: 3e-5, 6: 6e-5}


def relative_error(got, want) -> float:
    want = np.asarray(want, dtype=np.float64)
    return float(np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max())


def random_problem(rng, dtype, batch=None):
    groups = int(rng.choice([1, 1, 2, 3]))
    cg, kg = int(rng.integers(1, 9)), int(rng.integers(1, 11))
    n = int(rng.integers(1, 4)) if batch is None else batch
    h, w = (int(v) for v in rng.integers(1, 19, size=2))
    choices = ["same", 0, 1, 1, 1, 2, 3, (1, 2), (2, 0), "same"]
    padding = choices[int(rng.integers(0, len(choices)))]
    pads = (padding, padding) if isinstance(padding, int) else padding
    if padding != "same" and (h + 2 * pads[0] < 3 or w + 2 * pads[1] < 3):
        padding = "same"
    x = rng.standard_normal((n, cg * groups, h, w)).astype(dtype)
    wt = rng.standard_normal((kg * groups, cg, 3, 3)).astype(dtype)
    b = rng.standard_normal(kg * groups).astype(dtype) if rng.random() < 0.7 else None
    return x, wt, b, padding, groups


def levels() -> list[str]:
    return list(_isa.supported())


def every_level(rng, dtype, count: int):
    """``(level, problem)``: ``count`` random problems (:func:`random_problem`) for each
    instruction-set level this CPU supports, with winograd forced to that level while its
    problems run."""
    for level in levels():
        with _isa.forced("winograd", level):
            for _ in range(count):
                yield level, random_problem(rng, dtype)


def tolerance(m: int, dtype) -> float:
    return F32_BOUND[m] * 10 if dtype == np.float32 else 1e-12


@pytest.mark.parametrize("m", TILES)
def test_forward_matches_reference_every_level(rng, m, dtype):
    for level, (x, w, b, padding, groups) in every_level(rng, dtype, 6):
        want = fastnn.conv2d(x, w, b, 1, padding, 1, groups, backend="reference")
        got = fastnn.conv2d(x, w, b, 1, padding, 1, groups, algo=f"winograd{m}")
        assert got.dtype == dtype and got.flags.c_contiguous
        assert relative_error(got, want) <= tolerance(m, dtype), (level, x.shape, w.shape, padding)


@pytest.mark.parametrize("m", TILES)
def test_gradients_match_reference_every_level(rng, m, dtype):
    tol = tolerance(m, dtype)
    for level, (x, w, _, padding, groups) in every_level(rng, dtype, 5):
        y = fastnn.conv2d(x, w, None, 1, padding, 1, groups, backend="reference")
        gy = rng.standard_normal(y.shape).astype(dtype)
        args = (gy, x, w, 1, padding, 1, groups)
        want = fastnn.conv2d_backward(*args, backend="reference")
        got = fastnn.conv2d_backward(*args, algo=f"winograd{m}")
        assert relative_error(got[0], want[0]) <= tol, (level, x.shape, padding)
        assert relative_error(got[1], want[1]) <= tol, (level, x.shape, padding)
        assert got[1].dtype == dtype and got[1].flags.c_contiguous
        assert_close(got[2], want[2], dtype)


def test_batch_one_and_large_padding(rng):
    """Padding beyond the kernel (the input gradient's window then starts inside)."""
    x = rng.standard_normal((1, 5, 6, 7))
    w = rng.standard_normal((4, 5, 3, 3))
    for padding in (3, 4, (0, 3)):
        want = fastnn.conv2d(x, w, None, 1, padding, backend="reference")
        for m in TILES:
            assert_close(fastnn.conv2d(x, w, None, 1, padding, algo=f"winograd{m}"), want)
            gy = rng.standard_normal(want.shape)
            gx = fastnn.conv2d_backward(gy, x, w, 1, padding, algo=f"winograd{m}")[0]
            assert_close(gx, fastnn.conv2d_backward(gy, x, w, 1, padding, backend="reference")[0])


def test_memory_layouts(rng):
    """Fortran-ordered, strided and negative-stride inputs give identical results."""
    x = rng.standard_normal((2, 6, 9, 11)).astype(np.float32)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    want = fastnn.conv2d(x, w, None, 1, 1, 1, 2, algo="winograd4")
    gy = rng.standard_normal(want.shape).astype(np.float32)
    gx_want = fastnn.conv2d_backward(gy, x, w, 1, 1, 1, 2, algo="winograd4")[0]
    for name, xl in layouts(x):
        for _, wl in layouts(w):
            got = fastnn.conv2d(xl, wl, None, 1, 1, 1, 2, algo="winograd4")
            np.testing.assert_array_equal(got, want, err_msg=name)
        for _, gyl in layouts(gy):
            gx = fastnn.conv2d_backward(gyl, xl, w, 1, 1, 1, 2, algo="winograd4")[0]
            np.testing.assert_array_equal(gx, gx_want, err_msg=name)


@pytest.mark.parametrize("m", TILES)
def test_blocks_chunks_and_thread_grids(rng, m):
    """Every way the kernel cuts the work gives the same answer: blocks of one panel of
    tiles, several chunks of output channels, threads split over blocks, over channels,
    or both, and filters transformed once (global) or per thread (just in time)."""
    for dtype in FLOAT_DTYPES:
        x = rng.standard_normal((3, 7, 10, 13)).astype(dtype)
        w = rng.standard_normal((19, 7, 3, 3)).astype(dtype)
        b = rng.standard_normal(19).astype(dtype)
        want = fastnn.conv2d(x, w, b, 1, 1, backend="reference")
        wf = w.reshape(-1)
        for level in levels():
            code = _isa.LEVELS.index(level)
            mr, nr = kernels.register_tile(code, dtype == np.float64)
            for pb, kc, tk, tp, jit in [
                (nr, mr, 1, 1, True),
                (nr, mr, 2, 2, True),
                (2 * nr, 2 * mr, 1, 3, False),
                (nr, mr, 3, 1, False),
                (4 * nr, 3 * mr, 2, 1, True),
            ]:
                u = None if jit else kernels.transform_filters(wf, False, 1, 19, 7, m, code, 2)
                y = np.empty(want.size, dtype=dtype)
                kernels.convolve(x, u, wf, False, b, y, 19, 1, 10, 13, 1, 1, m, code, pb, kc,
                                 tk, tp)  # fmt: skip
                tol = F32_BOUND[m] * 10 if dtype == np.float32 else 1e-12
                err = relative_error(y.reshape(want.shape), want)
                assert err <= tol, (level, pb, kc, tk, tp, jit)


@pytest.mark.parametrize("m", TILES)
def test_weight_gradient_items_blocks_and_thread_splits(rng, m):
    """The weight-gradient kernel cut every way: items of a few channels, blocks of a
    few tiles, threads over items or over the tiles of one item (partial sums added)."""
    for dtype in FLOAT_DTYPES:
        x = rng.standard_normal((3, 9, 11, 10)).astype(dtype)
        w = rng.standard_normal((12, 9, 3, 3)).astype(dtype)
        gy = rng.standard_normal((3, 12, 11, 10)).astype(dtype)
        want = fastnn.conv2d_backward(gy, x, w, 1, 1, backend="reference")[1]
        for level in levels():
            code = _isa.LEVELS.index(level)
            for pb, kc, cc, threads in [(8, 3, 4, 1), (16, 12, 9, 2), (5, 7, 2, 3), (64, 5, 9, 2)]:
                gw = np.full(want.size, np.nan, dtype=dtype)
                kernels.weight_gradient(x, gy.reshape(-1), gw, 12, 1, 11, 10, 1, 1, m, code, pb,
                                        kc, cc, threads)  # fmt: skip
                tol = F32_BOUND[m] * 10 if dtype == np.float32 else 1e-12
                err = relative_error(gw.reshape(want.shape), want)
                assert err <= tol, (level, pb, kc, cc, threads)


def test_plan_splits_small_maps_over_channels():
    """A 7x7 map at batch 8 has too few tiles for every thread: the plan splits the
    output channels instead; a 56x56 map is split over blocks of tiles."""
    small = _conv_winograd.plan(8, 512, 512, 1, 7, 7, 4, 4, 2)
    assert small.tk == 2 and small.tp == 1
    large = _conv_winograd.plan(8, 64, 64, 1, 56, 56, 4, 4, 2)
    assert large.tk == 1 and large.tp == 2
    mr, nr = kernels.register_tile(large.isa, False)
    assert large.pb % nr == 0 and large.kc % mr == 0


def test_kernel_rejects_bad_blocking(rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal(3 * 2 * 9).astype(np.float32)
    y = np.empty(3 * 25, dtype=np.float32)
    with pytest.raises(ValueError, match="multiple"):
        kernels.convolve(x, None, w, False, None, y, 3, 1, 5, 5, 1, 1, 4, 0, 3, 4, 1, 1)
    with pytest.raises(ValueError, match="tile size"):
        kernels.convolve(x, None, w, False, None, y, 3, 1, 5, 5, 1, 1, 3, 0, 8, 4, 1, 1)
    with pytest.raises(ValueError, match="weight size"):
        kernels.convolve(x, None, w[:-1], False, None, y, 3, 1, 5, 5, 1, 1, 4, 0, 8, 4, 1, 1)
    with pytest.raises(ValueError, match="^winograd: output size does not match$"):
        kernels.convolve(x, None, w, False, None, y[:-1], 3, 1, 5, 5, 1, 1, 4, 0, 8, 4, 1, 1)
    with pytest.raises(ValueError, match="divide into groups"):
        kernels.convolve(x, None, w, False, None, y, 3, 2, 5, 5, 1, 1, 4, 0, 8, 4, 1, 1)


def test_weight_gradient_kernel_rejects_mismatched_sizes(rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    gy = rng.standard_normal(3 * 25).astype(np.float32)
    gw = np.empty(3 * 2 * 9, dtype=np.float32)
    args = (5, 5, 1, 1, 4, 0, 8, 4, 2, 1)  # ho, wo, pt, pl, m, isa, pb, kc, cc, threads
    with pytest.raises(ValueError, match="^winograd: grad_output size does not match$"):
        kernels.weight_gradient(x, gy[:-1], gw, 3, 1, *args)
    with pytest.raises(ValueError, match="weight size does not match the channels"):
        kernels.weight_gradient(x, gy, gw[:-1], 3, 1, *args)
    with pytest.raises(ValueError, match="divide into groups"):
        kernels.weight_gradient(x, gy, gw, 3, 2, *args)
    kernels.weight_gradient(x, gy, gw, 3, 1, *args)  # the sizes that match run
    assert np.isfinite(gw).all()


def test_nan_and_inf_propagate_to_their_outputs(rng):
    """A NaN in the input reaches the outputs whose window holds it (Winograd mixes a
    tile's inputs, so it may reach the rest of that tile too, never other tiles)."""
    x = rng.standard_normal((1, 2, 12, 12))
    w = rng.standard_normal((3, 2, 3, 3))
    x[0, 1, 5, 6] = np.nan
    want = fastnn.conv2d(x, w, None, 1, 1, backend="reference")
    for m in TILES:
        got = fastnn.conv2d(x, w, None, 1, 1, algo=f"winograd{m}")
        assert np.isnan(got[np.isnan(want)]).all()
        finite = ~np.isnan(got)
        assert_close(got[finite], want[finite])


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the torch extra) is missing")
def test_matches_torch(rng):
    torch = import_torch()
    x = rng.standard_normal((2, 24, 15, 17)).astype(np.float32)
    w = (rng.standard_normal((20, 24, 3, 3)) / 15).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    want = torch.nn.functional.conv2d(*(torch.from_numpy(a) for a in (x, w, b)), padding=1)
    for m in TILES:
        got = fastnn.conv2d(x, w, b, 1, 1, algo=f"winograd{m}")
        assert_close(got, want.numpy(), rtol=F32_BOUND[m] * 10)


def test_algo_winograd_picks_a_tile(rng):
    x = rng.standard_normal((1, 3, 3, 3))
    w = rng.standard_normal((2, 3, 3, 3))
    want = fastnn.conv2d(x, w, None, 1, 1, backend="reference")
    assert_close(fastnn.conv2d(x, w, None, 1, 1, algo="winograd"), want)
    assert _conv_winograd.default_tile(3, 3) == 2 and _conv_winograd.default_tile(14, 14) == 4


@pytest.mark.parametrize("m", TILES)
def test_float32_error_bound(rng, m):
    """The documented accuracy, on a small stand-in (64 channels): unit-scale data."""
    x = rng.standard_normal((1, 64, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 64, 3, 3)).astype(np.float32)
    want = fastnn.conv2d(x.astype(np.float64), w.astype(np.float64), None, 1, 1,
                         backend="reference")  # fmt: skip
    assert (
        relative_error(fastnn.conv2d(x, w, None, 1, 1, algo=f"winograd{m}"), want) <= (F32_BOUND[m])
    )


def test_generated_matrices_are_up_to_date():
    """kernels/cpu/winograd_matrices.h is what kernels/cpu/gen_winograd.py writes."""
    from pathlib import Path

    script = Path(__file__).parents[2] / "kernels" / "cpu" / "gen_winograd.py"
    if not script.exists():
        pytest.skip("not a source checkout")
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_plan_scales_with_the_l2_cache(monkeypatch):
    """The blocks a thread keeps near its core are sized from this CPU's L2, not from the
    CPU the constants were fitted on: twice the L2, twice the tiles per block."""
    from fastnn import _machine

    assert _machine.l2_bytes() >= 64 << 10
    monkeypatch.setattr(_conv_winograd, "l2_bytes", lambda: 1 << 20)
    small = _conv_winograd.plan(32, 256, 256, 1, 28, 28, 4, 4, 2)
    monkeypatch.setattr(_conv_winograd, "l2_bytes", lambda: 2 << 20)
    large = _conv_winograd.plan(32, 256, 256, 1, 28, 28, 4, 4, 2)
    assert large.pb == 2 * small.pb
