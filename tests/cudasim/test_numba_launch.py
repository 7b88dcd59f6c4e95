"""The numba-cuda backend under the simulator: availability, registration of every op, and
the launch-size helpers (pure host arithmetic, checked against CUDA's limits)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from fastnn import _dispatch
from fastnn._backends.numba_cuda import _gemm as matmul
from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda import _reduce as reductions
from fastnn._backends.numba_cuda.conv import chunk_images, heuristic, ranked
from fastnn._backends.numba_cuda.conv import window as conv_window
from fastnn._backends.numba_cuda.pool import window
from fastnn._backends.numba_cuda.softmax import softmax_launch
from fastnn._geometry import conv_geometry, pool_geometry
from fastnn.kernels.numba_cuda.gemm import LARGE, SMALL, WIDE
from fastnn.ops import OPS

pytestmark = pytest.mark.cudasim

MAX_THREADS = 1024
SIZES = [0, 1, 2, 31, 32, 33, 255, 256, 257, 1000, 10**6, 10**9]


def test_backend_available_under_the_simulator():
    available, reason = fastnn.backends()["numba-cuda"]
    assert available, reason
    assert "simulator" in reason


def test_every_op_is_registered():
    registry = _dispatch.registered()
    missing = [op for op in (*OPS, "_value_range") if "numba-cuda" not in registry.get(op, [])]
    assert not missing


def test_numba_arrays_default_to_numba_cuda():
    from numba import cuda

    impl = _dispatch.resolve("relu", _dispatch.array_kind(cuda.to_device(np.zeros(2))))
    assert impl is _dispatch.registered("relu")["numba-cuda"]


@pytest.mark.parametrize("n", SIZES)
def test_elementwise_covers_every_item(n):
    blocks, threads = _launch.elementwise(n)
    if n == 0:
        assert (blocks, threads) == (0, 0)
        return
    assert 1 <= threads <= 256 and threads % _launch.WARP == 0
    assert 1 <= blocks <= _launch.MAX_BLOCKS
    assert threads <= _launch.WARP * -(-n // _launch.WARP)  # tiny n: a tiny block
    # the kernels loop grid-stride, so the grid may be smaller than n, never empty
    assert blocks * threads >= min(n, _launch.MAX_BLOCKS * threads)


@pytest.mark.parametrize("rows, length", list(itertools.product(SIZES[:-1], [1, 3, 5, 100, 10**5])))
def test_teams_shape(rows, length):
    blocks, threads, team = _launch.teams(rows, length)
    if rows == 0:
        assert blocks == threads == 0
        return
    assert team & (team - 1) == 0 and 1 <= team <= 256  # a power of two
    assert threads % team == 0 and threads <= 256
    per_block = threads // team
    assert per_block <= rows  # no block wider than the rows need
    assert 1 <= blocks <= _launch.MAX_BLOCKS
    assert blocks * per_block >= min(rows, _launch.MAX_BLOCKS * per_block)
    assert team == 1 or length > 4 * (team // 2)  # short rows: one lane per few items


def test_next_pow2_and_ceil_div():
    assert [_launch.next_pow2(n) for n in (0, 1, 2, 3, 4, 5, 255, 256, 257)] == [
        1, 1, 2, 4, 4, 8, 256, 256, 512,
    ]  # fmt: skip
    assert [_launch.ceil_div(a, 4) for a in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("n", SIZES)
def test_flat_reduction(n):
    blocks, threads = reductions.flat_reduction(n)
    assert threads & (threads - 1) == 0 and 1 <= threads <= 256
    assert 1 <= blocks <= reductions.MAX_PARTIALS  # one block even for n == 0


@pytest.mark.parametrize(
    "batch, m, n", [(1, 1, 1), (1, 5, 3), (1, 4096, 4096), (64, 128, 128), (3, 10**6, 7)]
)
def test_gemm_grid_within_cuda_limits(batch, m, n):
    tile = matmul.choose_tile(batch, m, n)
    gx, gy, gz = matmul.gemm_grid(tile, batch, m, n)
    assert gx * tile.bm >= m  # every row tile has a block
    assert 1 <= gy <= matmul.MAX_GRID_YZ and 1 <= gz <= matmul.MAX_GRID_YZ
    x, y = tile.threads
    assert x * y <= MAX_THREADS


def test_tile_choice():
    assert matmul.choose_tile(1, 8, 8) is SMALL
    assert matmul.choose_tile(1, 2048, 2048) is LARGE
    assert matmul.choose_tile(64, 128, 128) is LARGE
    assert matmul.choose_tile(32, 64, 3136) is WIDE  # a ResNet conv: 64 channels
    assert matmul.choose_tile(1, 2048, 2048, itemsize=8) is SMALL  # doubles: registers
    for tile in (LARGE, WIDE, SMALL):
        assert tile.bm % tile.tm == 0 and tile.bn % tile.tn == 0
        x, y = tile.threads
        assert (tile.bm * tile.bk) % (x * y) == 0  # every thread loads the same count


def test_softmax_launch_skips_empty_rows():
    class Shape:
        def __init__(self, *shape):
            self.shape = shape

    assert softmax_launch(Shape(3, 0, 2))[:2] == (0, 0)
    blocks, threads, team = softmax_launch(Shape(2, 1000, 1))
    assert team == 256 and threads == 256 and blocks == 2
    blocks, threads, team = softmax_launch(Shape(4, 3, 50))
    assert team == 1 and threads == 200 and blocks == 1


def test_conv_window_and_prior():
    geom = conv_geometry("conv1d", 1, (2, 3, 9), (3, 1, 3), 2, 1, 2, 3)
    p = geom.plane
    assert (p.h, p.w, p.ho, p.wo) == (1, 9, 1, geom.out_size[0])
    assert conv_window(p) == (1, 3, 1, 2, 0, 1, 1, 2)  # kh, kw, sh, sw, pt, pl, dh, dw
    assert heuristic(geom) == "direct"  # K = 1 * 3: too small for a GEMM
    assert ranked(geom) == ["direct", "im2col"]
    big = conv_geometry("conv2d", 2, (2, 16, 9, 9), (4, 16, 3, 3), 1, 1, 1, 1)
    assert heuristic(big) == "im2col" and ranked(big) == ["im2col", "direct"]
    assert chunk_images(big, 1) == 2 and chunk_images(big, 1 << 40) == 1


def test_pool_window_1d():
    geom = pool_geometry("max_pool1d", 1, (2, 3, 10), 3, 2, 1, 2, True)
    assert window(geom) == (1, 10, 1, 3, 1, 2, 0, 1, 1, 2, 1, geom.out_size[0])
