"""The channel-blocked direct convolution (candidate "direct:blocked" of algo="auto":
output channels in SIMD lanes, broadcast inputs): all three passes against the
float64 reference backend and PyTorch, at every instruction-set level this CPU runs, on
random problems -- kernels 1-5, strides 1-3, dilation, asymmetric and "same" padding,
groups, 1-D, batch 1, channel counts that do not fill a block, every memory layout --
and with every blocking forced to its smallest (one row, one channel block, one input
channel per chunk), so that every chunk boundary is crossed."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import _isa
from fastnn._backends.cpu import _conv_blocked
from fastnn._backends.cpu import conv as cpu_conv
from fastnn._backends.cpu._conv_choice import ranked
from fastnn._geometry import conv_geometry
from tests.conv_cases import valid_layer
from tests.utils import HAS_TORCH, assert_close, import_torch, layouts

BLOCKED = _conv_blocked.NAME


@pytest.fixture
def blocked_first(monkeypatch):
    """algo="auto" with tuning off runs the channel-blocked kernel for every pass."""
    fastnn.autotune(False)

    def first(geom, which="forward"):
        return [BLOCKED, *(a for a in ranked(geom, which) if a != BLOCKED)]

    monkeypatch.setattr(cpu_conv, "ranked", first)


def random_problem(rng, nd=2):
    while True:
        g = int(rng.choice([1, 1, 1, 2, 3]))
        cg, kg = int(rng.integers(1, 7)), int(rng.choice([1, 5, 16, 19, 33]))
        n = int(rng.integers(1, 4))
        size = tuple(int(v) for v in rng.integers(1, 20, size=nd))
        kernel = tuple(int(v) for v in rng.integers(1, 6, size=nd))
        stride = tuple(int(v) for v in rng.choice([1, 1, 2, 3], size=nd))
        dilation = tuple(int(v) for v in rng.choice([1, 1, 2], size=nd))
        padding: object = tuple(int(rng.integers(0, k + 1)) for k in kernel)
        if rng.random() < 0.15:
            padding, stride = "same", (1,) * nd
        elif nd == 2 and rng.random() < 0.2:  # asymmetric: (top, bottom, left, right)
            padding = tuple(int(v) for v in rng.integers(0, 3, size=4))
        layer = valid_layer(n, g, cg, kg, size, kernel, stride, padding, dilation)
        if layer is not None:
            return layer


def arrays(rng, dims, groups, dtype):
    n, c, k, size, kernel = dims
    x = rng.standard_normal((n, c, *size)).astype(dtype)
    w = rng.standard_normal((k, c // groups, *kernel)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    return x, w, b


def conv(nd):
    return (fastnn.conv1d, fastnn.conv1d_backward) if nd == 1 else (
        fastnn.conv2d, fastnn.conv2d_backward)  # fmt: skip


def check(rng, nd, dtype, what, count=10):
    forward, backward = conv(nd)
    for _ in range(count):
        dims, params = random_problem(rng, nd)
        x, w, b = arrays(rng, dims, params[3], dtype)
        want = forward(x, w, b, *params, backend="reference")
        got = forward(x, w, b, *params)
        assert got.dtype == dtype and got.flags.c_contiguous
        assert_close(got, want, dtype, what=f"{what} forward {dims} {params}")
        gy = rng.standard_normal(want.shape).astype(dtype)
        ref = backward(gy, x, w, *params, backend="reference")
        grads = backward(gy, x, w, *params)
        for name, g, r in zip(("gx", "gw", "gb"), grads, ref):
            assert_close(g, r, dtype, what=f"{what} {name} {dims} {params}")


@pytest.mark.parametrize("nd", (1, 2))
def test_every_pass_every_level(rng, nd, dtype, blocked_first):
    for level in _isa.supported():
        with _isa.forced("conv_blocked", level):
            check(rng, nd, dtype, level)


@pytest.mark.parametrize("nd", (1, 2))
def test_streamed_outputs_every_level(rng, nd, dtype, blocked_first, monkeypatch):
    """Outputs written with streaming stores (as for outputs that outgrow the last-level
    cache; forced here on small ones), forward and input gradient, every level."""
    monkeypatch.setattr(_conv_blocked, "STREAM_LLC_MULTIPLE", 0.0)
    assert _conv_blocked.streams(np.ones(1, dtype))
    for level in _isa.supported():
        with _isa.forced("conv_blocked", level):
            check(rng, nd, dtype, f"streamed {level}")


def test_smallest_blocks(rng, dtype, blocked_first, monkeypatch):
    """One output row, one channel block and one input channel per work item: every
    chunk of the reduction accumulates into the partial sums of the one before."""
    for name in ("plan", "weight_plan"):
        original = getattr(_conv_blocked, name)

        def tiny(*args, original=original, **kwargs):
            return original(*args, **kwargs)._replace(rows=1, kbs=1, kc=1)

        monkeypatch.setattr(_conv_blocked, name, tiny)
    check(rng, 2, dtype, "tiny blocks", count=8)


@pytest.mark.parametrize("rows", (1, 2, 64))
def test_weight_gradient_tiles_over_several_images(rng, dtype, rows, blocked_first, monkeypatch):
    """Register tiles of the weight gradient that reduce over the rows of two images per
    call (what small maps get), forced on random problems of 1-3 images -- a last chunk
    of one image, blocks of one or two rows, or whole maps -- with one input channel per
    work item."""
    original = _conv_blocked.weight_plan

    def two_images(*args, **kwargs):
        return original(*args, **kwargs)._replace(imgs=2, rows=rows, kc=1)

    monkeypatch.setattr(_conv_blocked, "weight_plan", two_images)
    check(rng, 2, dtype, "two images per tile", count=8)


def test_small_maps_reduce_over_several_images_per_tile(monkeypatch):
    """Whole 7x7 maps are too few positions for one call: the plan groups images (in
    equal chunks) and keeps each image's packed rows within the cache budget; 56x56 maps
    need none.  (A 1 MiB L2 cache, as on the CPUs measured so far.)"""
    monkeypatch.setattr(_conv_blocked, "l2_bytes", lambda: 1 << 20)
    small = _conv_blocked.weight_plan(8, 256, 512, 1, (3, 3), (2, 2), (1, 1), (7, 7),
                                      False, 2)  # fmt: skip
    assert small.rows == 7 and small.imgs == 4
    large = _conv_blocked.weight_plan(8, 64, 64, 1, (3, 3), (1, 1), (1, 1), (56, 56),
                                      False, 2)  # fmt: skip
    assert large.imgs == 1 and large.rows < 56
    one = _conv_blocked.weight_plan(1, 256, 512, 1, (3, 3), (2, 2), (1, 1), (7, 7), False, 2)
    assert one.imgs == 1


@pytest.mark.parametrize("kbs", (1, 3))
def test_weights_packed_just_in_time(rng, dtype, kbs, blocked_first, monkeypatch):
    """Layers whose weights outweigh their maps pack each chunk of weights inside the
    kernel (work items of channel blocks over every image): forced here on random
    problems, with one input channel per chunk so that the partial sums of every image
    accumulate across chunks."""
    original = _conv_blocked.plan

    def jit(*args, **kwargs):
        return original(*args, **kwargs)._replace(jit=True, kbs=kbs, kc=1)

    monkeypatch.setattr(_conv_blocked, "plan", jit)
    check(rng, 2, dtype, "jit", count=8)


def test_jit_plan_for_weights_that_outweigh_the_maps():
    """ResNet-50's 512x14x14 -> 512 stride-2 layer packs just in time; ResNet-18's first
    stride-2 layer (64x56x56 -> 128), whose input is 5x its weights, packs up front
    (two images: their partial sums fit any L2 cache)."""
    late = _conv_blocked.plan(2, 512, 512, 1, (3, 3), 2, 1, (7, 7), False, 2, (14, 14))
    early = _conv_blocked.plan(2, 64, 128, 1, (3, 3), 2, 1, (28, 28), False, 2, (56, 56))
    assert late.jit and not early.jit


@pytest.mark.parametrize("jit", (False, True))
def test_short_rows_run_two_per_tile(rng, blocked_first, monkeypatch, jit):
    """Maps narrower than half the register tile put two output rows in one tile; odd
    row counts leave one row alone, except with weights packed just in time, where the
    rows of all images form one sequence and pair up across images."""
    original = _conv_blocked.plan
    monkeypatch.setattr(
        _conv_blocked, "plan", lambda *args: original(*args)._replace(jit=jit) if jit else
        original(*args))  # fmt: skip
    for hw in ((7, 7), (5, 3), (2, 2), (9, 1), (3, 3)):
        for n in (1, 3):
            x, w, b = arrays(rng, (n, 6, 40, hw, (3, 3)), 1, np.float32)
            want = fastnn.conv2d(x, w, b, 1, 1, backend="reference")
            assert_close(fastnn.conv2d(x, w, b, 1, 1), want, what=f"{hw} n={n}")
            gy = rng.standard_normal(want.shape).astype(np.float32)
            gx = fastnn.conv2d_backward(gy, x, w, 1, 1, output_mask=(True, False, False))[0]
            want_gx = fastnn.conv2d_backward(gy, x, w, 1, 1, backend="reference")[0]
            assert_close(gx, want_gx, what=f"gx {hw} n={n}")


def test_memory_layouts(rng, blocked_first):
    x, w, b = arrays(rng, (2, 4, 20, (10, 11), (3, 3)), 1, np.float32)
    params = ((2, 1), 1, 1, 1)
    want = fastnn.conv2d(x, w, b, *params, backend="reference")
    gy = rng.standard_normal(want.shape).astype(np.float32)
    want_gx, want_gw, _ = fastnn.conv2d_backward(gy, x, w, *params, backend="reference")
    for name, xl in layouts(x):
        for _, wl in layouts(w):
            assert_close(fastnn.conv2d(xl, wl, b, *params), want, what=name)
        for _, gyl in layouts(gy):
            gx, gw, _ = fastnn.conv2d_backward(gyl, xl, w, *params)
            assert_close(gx, want_gx, what=name)
            assert_close(gw, want_gw, what=name)


def test_ranked_first_with_channels_to_fill_its_lanes():
    geom = conv_geometry("conv", 2, (8, 64, 56, 56), (128, 64, 3, 3), 2, 1, 1, 1)
    for which in ("forward", "input", "weight"):
        assert ranked(geom, which)[0] == BLOCKED
    few = conv_geometry("conv", 2, (8, 64, 56, 56), (4, 64, 3, 3), 2, 1, 1, 1)
    assert ranked(few, "forward")[-1] == BLOCKED  # four channels do not fill its lanes


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the torch extra) is missing")
def test_matches_torch_resnet_shapes(rng, blocked_first):
    torch = import_torch()
    for c, hw, k, r, stride, pad in ((16, 15, 32, 3, 2, 1), (8, 9, 48, 1, 2, 0),
                                     (3, 23, 16, 7, 2, 3)):  # fmt: skip
        x, w, b = arrays(rng, (2, c, k, (hw, hw), (r, r)), 1, np.float32)
        tx, tw = (torch.from_numpy(a).requires_grad_() for a in (x, w))
        ty = torch.nn.functional.conv2d(tx, tw, torch.from_numpy(b), stride, pad)
        gy = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
        ty.backward(torch.from_numpy(gy))
        assert_close(fastnn.conv2d(x, w, b, stride, pad), ty.detach().numpy())
        gx, gw, _ = fastnn.conv2d_backward(gy, x, w, stride, pad)
        assert_close(gx, tx.grad.numpy())
        assert_close(gw, tw.grad.numpy())


@pytest.mark.parametrize("narrow_level", ("avx2", "avx512"))
def test_half_empty_blocks_step_down_a_level(narrow_level):
    """Channels that fill the next level's blocks but only half of this level's (16 in
    AVX-512's 32 lanes) run at the next level down, or at AVX-512 in the narrow tile
    (one vector of channels) when the "conv_blocked_narrow" family chose AVX-512; three
    times as many (48: 64 lanes, 75% full) keep this level.  On a CPU with only the base
    level nothing steps."""
    from fastnn.kernels.cpu import conv_blocked as kernels

    top = _isa.supported()[-1]
    code = _isa.LEVELS.index(top)
    args = ((3, 3), 1, 1, (9, 9), False, 2)
    with _isa.forced("conv_blocked", top), _isa.forced("conv_blocked_narrow", narrow_level):
        if code == 0:
            assert _conv_blocked.plan(8, 8, 4, 1, *args).isa == 0
            return
        narrow = kernels.register_tile(code - 1, False)[0]
        to_narrow = top == "avx512" and _isa.level("conv_blocked_narrow") == "avx512"
        want = _conv_blocked.NARROW if to_narrow else code - 1
        assert _conv_blocked.plan(8, 8, narrow, 1, *args).isa == want
        assert _conv_blocked.plan(8, 8, 3 * narrow, 1, *args).isa == code
        if to_narrow:  # the narrow tile: as many lanes as AVX2's blocks, more positions
            assert kernels.register_tile(_conv_blocked.NARROW, False) == (16, 28)
            assert kernels.register_tile(_conv_blocked.NARROW, True) == (8, 28)
            half = narrow // 2  # 8 floats: half of the narrow tile too -> a level down
            assert _conv_blocked.plan(8, 8, half, 1, *args).isa < code


@pytest.mark.parametrize("nd", (1, 2))
def test_narrow_tile_every_pass(rng, nd, dtype, blocked_first, monkeypatch):
    """Layers of 9-16 channels per group (float32; 5-8 in float64) on AVX-512, every
    pass, with the narrow AVX-512 tile and with AVX2's tile, against the reference;
    short rows pair up to 14 positions a row, long ones run 28-position tiles.  On a
    CPU without AVX-512 the levels are capped and the narrow tile never runs."""
    has_avx512 = "avx512" in _isa.supported()
    forward, backward = conv(nd)
    few = (9, 12, 16) if dtype == np.float32 else (5, 8)
    levels = []
    real = _conv_blocked._lanes_level
    monkeypatch.setattr(
        _conv_blocked, "_lanes_level", lambda *a: levels.append(real(*a)) or levels[-1]
    )
    for narrow_level in ("avx512", "avx2"):
        levels.clear()
        with (
            _isa.forced("conv_blocked", "avx512"),
            _isa.forced("conv_blocked_narrow", narrow_level),
        ):
            for i in range(8):
                kg, g = few[i % len(few)], 1 + i % 2
                cg = int(rng.choice([1, 3, *few]))  # the input gradient's lanes
                size = (int(rng.integers(1, 6)) if nd == 2 else 1, int(rng.integers(1, 45)))
                size = size[-nd:]
                kernel = tuple(int(v) for v in rng.integers(1, 4, size=nd))
                stride = tuple(int(v) for v in rng.choice([1, 2], size=nd))
                pad = tuple(int(rng.integers(0, k)) for k in kernel)
                layer = valid_layer(1 + i % 3, g, cg, kg, size, kernel, stride, pad, (1,) * nd)
                if layer is None:
                    continue
                dims, params = layer
                x, w, b = arrays(rng, dims, params[3], dtype)
                got = forward(x, w, b, *params)
                assert_close(got, forward(x, w, b, *params, backend="reference"), dtype)
                gy = rng.standard_normal(got.shape).astype(dtype)
                ref = backward(gy, x, w, *params, backend="reference")
                for g_, r_ in zip(backward(gy, x, w, *params), ref):
                    assert_close(g_, r_, dtype, what=f"{narrow_level} {dims} {params}")
        want = narrow_level == "avx512" and has_avx512
        assert (_conv_blocked.NARROW in levels) == want, levels


def test_explicit_direct_runs_it_where_channels_fill_its_lanes(rng, monkeypatch):
    """algo="direct" means the channel-blocked kernel for a pass that produces at least
    16 channels per group, the row kernel for fewer (and the depthwise kernels on
    depthwise layers)."""
    calls = []
    for name in ("forward", "grad_input", "grad_weight"):
        original = getattr(_conv_blocked, name)

        def spy(*args, name=name, original=original, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(_conv_blocked, name, spy)
    x, w, b = arrays(rng, (2, 4, 16, (9, 9), (3, 3)), 1, np.float32)
    y = fastnn.conv2d(x, w, b, 2, 1, algo="direct")
    assert_close(y, fastnn.conv2d(x, w, b, 2, 1, backend="reference"))
    fastnn.conv2d_backward(np.ones_like(y), x, w, 2, 1, algo="direct")
    # the input gradient produces 4 channels: the row kernel's
    assert calls == ["forward", "grad_weight"]
    calls.clear()
    fastnn.conv2d(x, w[:8], b[:8], 2, 1, algo="direct")
    assert calls == []


@pytest.mark.parametrize("dtype_", (np.float32, np.float64))
def test_simd_transpose_any_shape_and_strides(rng, dtype_):
    """The transpose the kernels pack with, at every level: matrices narrower than a
    vector, whose last columns are read a whole vector at a time on into the next row,
    blocks that do not fill a vector, rows with gaps, and the last row gathered alone."""
    from fastnn.kernels.cpu import conv_blocked as k

    for level in _isa.supported():
        code = _isa.LEVELS.index(level)
        for _ in range(60):
            ni, nj = (int(v) for v in rng.integers(1, 40, size=2))
            gap_s, gap_d = (int(v) for v in rng.integers(0, 3, size=2))
            base = rng.standard_normal((ni, nj + gap_s)).astype(dtype_)
            src = base[:, :nj]
            dst_base = np.full((nj, ni + gap_d), -7.0, dtype=dtype_)
            dst = dst_base[:, :ni]
            k.transpose(src, dst, code)
            np.testing.assert_array_equal(dst, src.T, err_msg=f"{level} {ni}x{nj}")
            assert (dst_base[:, ni:] == -7.0).all(), "wrote past a row"


def aligned_full(shape, dtype, value=-7.0):
    """An array filled with ``value`` whose data starts on a 64-byte boundary."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(size + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start : start + size].view(dtype).reshape(shape)
    out[...] = value
    return out


@pytest.mark.parametrize("dtype_", (np.float32, np.float64))
@pytest.mark.parametrize("act", (0, 1, 4))
def test_simd_transpose_epilogue(rng, dtype_, act):
    """The variant the output stores run: the bias per destination row and the
    activation on each transposed vector (NaN kept), the same shapes as the plain
    transpose, every level; with no bias, only the activation; with streaming stores
    (taken where a destination vector is one aligned line) or without."""
    from fastnn.kernels.cpu import conv_blocked as k

    acts = {0: lambda v: v, 1: lambda v: np.where(v < 0, 0, v),
            4: lambda v: np.where(v < 0, 0, np.where(v > 6, 6, v))}  # fmt: skip
    for level in _isa.supported():
        code = _isa.LEVELS.index(level)
        for i in range(60):
            ni, nj = (int(v) for v in rng.integers(1, 40, size=2))
            gap_s, gap_d = (int(v) for v in rng.integers(0, 3, size=2))
            base = (4 * rng.standard_normal((ni, nj + gap_s))).astype(dtype_)
            base.flat[::7] = np.nan
            src = base[:, :nj]
            bias = None if i % 4 == 0 else rng.standard_normal(nj).astype(dtype_)
            dst_base = np.full((nj, ni + gap_d), -7.0, dtype=dtype_)
            if i % 2:  # rows of whole lines from an aligned start: every block streams
                ni = 64 // dtype_().itemsize * int(rng.integers(1, 4))
                src = (4 * rng.standard_normal((ni, nj))).astype(dtype_)
                dst_base = aligned_full((nj, ni + gap_d * 64 // dtype_().itemsize), dtype_)
            dst = dst_base[:, :ni]
            k.transpose(src, dst, code, True, bias, act, bool(i % 3))
            want = acts[act](src.T + (0 if bias is None else bias[:, None]))
            np.testing.assert_array_equal(dst, want, err_msg=f"{level} {ni}x{nj} act {act}")
            assert (dst_base[:, ni:] == -7.0).all(), "wrote past a row"
    with pytest.raises(ValueError, match="act"):
        k.transpose(np.ones((2, 2), dtype_), np.ones((2, 2), dtype_), 0, True, None, 2)
    with pytest.raises(ValueError, match="bias"):
        k.transpose(np.ones((2, 3), dtype_), np.ones((3, 2), dtype_), 0, True, np.ones(2, dtype_))
