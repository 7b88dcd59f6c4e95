"""The CPU convolution splits its work into blocks (im2col tiles of output positions,
direct row/channel chunks) sized per thread, never per batch.  These tests force tiny
blocks so that every block boundary is crossed, and check that the column buffer of a
large batch is never allocated whole."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn._backends.cpu import _conv_plan
from fastnn._backends.cpu._conv_plan import chunking, im2col_tile, shape_tuple
from tests.conv_cases import ConvCase
from tests.cpu.test_cpu_conv import ALGOS
from tests.utils import assert_close

CASES = [
    ConvCase(2, 37, 3, 5, 1, (9, 8), (3, 3), (1, 2), 1, (1, 1)),
    ConvCase(2, 19, 4, 6, 2, (7, 11), (2, 3), (2, 1), "valid", (2, 1)),
    ConvCase(1, 41, 2, 7, 1, (29,), (5,), (2,), 2, (1,)),
    ConvCase(2, 23, 6, 6, 6, (6, 7), (3, 3), (1, 1), "same", (1, 1)),
]

# (tile, rows, channels, kblocks): tiles that straddle output rows, tiles of one to a few
# whole images (1000), single rows and channels, one output-channel block per item
BLOCKS = [(1, 1, 1, 1), (5, 1, 1, 1), (13, 2, 2, 1), (7, 3, 1, 2), (1000, 4, 3, 3)]


@pytest.mark.parametrize("blocks", BLOCKS, ids=lambda b: "tile{}-rows{}-ch{}-kb{}".format(*b))
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.nd}d-n{c.batch}-g{c.groups}")
def test_tiny_blocks_match_reference(rng, case, blocks):
    tile, rows, channels, kblocks = blocks
    conv = fastnn.conv1d if case.nd == 1 else fastnn.conv2d
    back = fastnn.conv1d_backward if case.nd == 1 else fastnn.conv2d_backward
    for dtype in (np.float32, np.float64):
        x, w, b = case.arrays(rng, dtype)
        want = conv(x, w, b, *case.params, backend="reference")
        gy = rng.standard_normal(want.shape).astype(dtype)
        want_grads = back(gy, x, w, *case.params, backend="reference")
        with chunking(tile=tile, rows=rows, channels=channels, kblocks=kblocks):
            for algo in ALGOS:
                got = conv(x, w, b, *case.params, algo=algo, backend="cpu")
                assert_close(got, want, dtype, what=f"forward {algo}")
                grads = back(gy, x, w, *case.params, algo=algo, backend="cpu")
                for name, g, r in zip(("gx", "gw", "gb"), grads, want_grads):
                    assert_close(g, r, dtype, what=f"{name} {algo}")


def test_threads_do_not_change_results(rng):
    """One thread and several threads split the same work differently."""
    case = CASES[0]
    x, w, b = case.arrays(rng, np.float64)
    gy = rng.standard_normal(fastnn.conv2d(x, w, b, *case.params).shape)
    before = fastnn.get_num_threads()
    try:
        results = {}
        for threads in (1, 3):
            fastnn.set_num_threads(threads)
            for algo in ("im2col", "direct"):
                y = fastnn.conv2d(x, w, b, *case.params, algo=algo, backend="cpu")
                grads = fastnn.conv2d_backward(gy, x, w, *case.params, algo=algo, backend="cpu")
                results[threads, algo] = (y, *grads)
        for algo in ("im2col", "direct"):
            for one, many in zip(results[1, algo], results[3, algo]):
                assert_close(many, one, what=algo)
    finally:
        fastnn.set_num_threads(before)


@pytest.mark.parametrize("threads", (1, 2))
def test_weight_gradient_over_many_small_images(rng, threads):
    """The direct weight gradient sums several small images per micro-kernel call."""
    case = ConvCase(2, 45, 3, 10, 1, (7, 6), (3, 2), (1, 1), 1, (1, 2))
    x, w, _ = case.arrays(rng, np.float32, bias=False)
    gy = rng.standard_normal(fastnn.conv2d(x, w, None, *case.params).shape).astype(np.float32)
    want = fastnn.conv2d_backward(gy, x, w, *case.params, backend="reference")
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        got = fastnn.conv2d_backward(gy, x, w, *case.params, algo="direct", backend="cpu")
    finally:
        fastnn.set_num_threads(before)
    for name, g, r in zip(("gx", "gw", "gb"), got, want):
        assert_close(g, r, what=name)


def test_large_batch_never_allocates_the_whole_column_matrix(rng):
    """im2col of the whole batch would take N*C*R*S*Ho*Wo elements; the kernels allocate
    per-thread buffers of a fixed budget only (numpy reports its allocations to
    tracemalloc)."""

    case = ConvCase(2, 256, 8, 8, 1, (32, 32), (5, 5), (1, 1), 2, (1, 1))
    x, w, b = case.arrays(rng, np.float32)
    whole = case.batch * 8 * 25 * 32 * 32 * 4  # bytes of the batch's column matrix
    output = case.batch * 8 * 32 * 32 * 4
    buffers = 2 * fastnn.get_num_threads() * _conv_plan.COLUMN_BUFFER_ELEMENTS * 4
    assert output + buffers < whole // 4
    for algo in ("im2col", "direct"):
        tracemalloc.start()
        try:
            fastnn.conv2d(x, w, b, 1, 2, algo=algo, backend="cpu")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < output + buffers, f"{algo}: peak {peak} bytes, whole columns {whole}"


def test_tile_is_bounded_by_the_buffer_limit():
    from fastnn._geometry import conv_geometry

    geom = conv_geometry("conv2d", 2, (512, 256, 56, 56), (256, 256, 3, 3), 1, 1, 1, 1)
    tile, images = im2col_tile(shape_tuple(geom), threads=2)
    assert images == 1
    assert 256 * 9 * tile <= max(_conv_plan.COLUMN_BUFFER_ELEMENTS, 256 * 9 * _conv_plan.MIN_TILE)


def test_chunking_rejects_bad_sizes():
    with pytest.raises(ValueError, match="tile"):
        with chunking(tile=0):
            pass
