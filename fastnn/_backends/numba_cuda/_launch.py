"""Launch-size arithmetic shared by the numba-cuda host modules.

Pure Python, no CUDA: the tests check these helpers directly.  Every helper returns sizes
that scale with the problem (a tiny array gets a tiny launch: that is also what keeps the
CUDA simulator fast) and stay inside CUDA's limits; kernels loop (grid-stride) over what
a capped grid does not cover.
"""

from __future__ import annotations

#: Most blocks a 1-d grid gets; grid-stride loops cover the rest.
MAX_BLOCKS = 65535
#: Threads of one warp; block sizes are multiples of it where the problem allows.
WARP = 32


def ceil_div(a: int, b: int) -> int:
    """The smallest integer >= a / b for a >= 0, b > 0."""
    return -(-a // b)


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def elementwise(n: int, threads: int = 256) -> tuple[int, int]:
    """(blocks, threads) for ``n`` independent items, one per thread: a block is a whole
    number of warps (fewer for a tiny n), at most ``threads``; at most MAX_BLOCKS blocks.
    ``(0, 0)`` for n == 0 (nothing to launch)."""
    if n <= 0:
        return 0, 0
    per_block = min(threads, WARP * ceil_div(n, WARP))
    return min(MAX_BLOCKS, ceil_div(n, per_block)), per_block


def teams(rows: int, length: int, block: int = 256, per_lane: int = 4) -> tuple[int, int, int]:
    """(blocks, threads, team) for ``rows`` independent reductions of ``length`` items each.

    A team of ``team`` threads (a power of two, at most ``block``, about ``length /
    per_lane``: 1 for short rows, so a thread reduces a whole row) reduces one row; a
    block holds ``threads // team`` teams.  ``(0, 0, 1)`` when there are no rows.
    """
    if rows <= 0:
        return 0, 0, 1
    team = min(block, next_pow2(ceil_div(max(length, 1), per_lane)))
    per_block = min(block // team, rows)
    return min(MAX_BLOCKS, ceil_div(rows, per_block)), per_block * team, team
