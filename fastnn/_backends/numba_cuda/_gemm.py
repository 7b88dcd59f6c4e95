"""Host side of the GEMM kernel (kernels/numba_cuda/gemm.py): tile choice, grid, launch.

:func:`matmul` is the one entry point: gemm, linear, linear_backward, the sensitivity
recursion and convolution as GEMM all call it with 3-d device arrays (a batch axis first;
``as3d`` adds a unit one to a matrix).
"""

from __future__ import annotations

from typing import Any

from fastnn._backends.numba_cuda._device import launch
from fastnn._backends.numba_cuda._launch import ceil_div
from fastnn.kernels.numba_cuda.gemm import LARGE, SMALL, WIDE, Tile, gemm_kernel
from fastnn.kernels.numba_cuda.pointwise import CODES

__all__ = ["as3d", "choose_tile", "gemm_grid", "matmul"]

#: Grid dimensions y and z may not exceed this; the kernel loops over the rest.
MAX_GRID_YZ = 65535
#: A big tile is used once it gives at least this many blocks (about half the
#: multiprocessors of a big GPU); smaller problems get more, smaller blocks.
BIG_TILE_MIN_BLOCKS = 64


def _blocks(tile: Tile, batch: int, m: int, n: int) -> int:
    return batch * ceil_div(m, tile.bm) * ceil_div(n, tile.bn)


def choose_tile(batch: int, m: int, n: int, itemsize: int = 4) -> Tile:
    """LARGE (or WIDE when M <= 64, which would leave half of LARGE's rows idle) when the
    problem fills the GPU with such tiles, else SMALL.  float64 always gets SMALL: 64
    double accumulators per thread would not fit in the registers."""
    if itemsize > 4:
        return SMALL
    big = WIDE if m <= WIDE.bm else LARGE
    return big if _blocks(big, batch, m, n) >= BIG_TILE_MIN_BLOCKS else SMALL


def gemm_grid(tile: Tile, batch: int, m: int, n: int) -> tuple[int, int, int]:
    """The grid for an output of ``batch`` x ``m`` x ``n``: M tiles along x (unbounded),
    N tiles along y and the batch along z (capped; the kernel loops over the rest)."""
    return (
        ceil_div(m, tile.bm),
        min(ceil_div(n, tile.bn), MAX_GRID_YZ),
        min(batch, MAX_GRID_YZ),
    )


def as3d(x: Any) -> Any:
    """A C-contiguous matrix as a batch of one."""
    return x.reshape(1, *x.shape)


def matmul(
    a: Any,
    b: Any,
    out: Any,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    c: Any = None,
    bias: Any = None,
    bias_axis: int = 1,
    activation: str | None = None,
    preact: Any = None,
    derivative: str | None = None,
    tile: Tile | None = None,
) -> Any:
    """``out[z] = activation(alpha * op(a) @ op(b) + beta * c + bias) * f'(preact)`` for
    each batch index z of the 3-d ``out`` (see kernels/numba_cuda/gemm.py for the exact
    epilogue).  ``a``/``b`` batches of 1 are shared by every z.  Returns ``out``."""
    batch, m, n = out.shape
    tile = tile or choose_tile(batch, m, n, out.dtype.itemsize)
    scalar = out.dtype.type
    launch(
        gemm_kernel(out.dtype, tile),
        gemm_grid(tile, batch, m, n),
        tile.threads,
        a,
        b,
        out,
        trans_a,
        trans_b,
        scalar(alpha),
        scalar(beta),
        c,
        bias,
        bias_axis,
        CODES[activation],
        preact,
        CODES[derivative],
    )
    return out
