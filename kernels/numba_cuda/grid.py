"""Grid-stride scaffolding shared by the kernels that give one thread an element of a
C-contiguous 3-d or 4-d array: the flat index split back into coordinates.

Inline device functions: after inlining the code is what the kernels wrote by hand
(one division and one remainder per axis), with no extra branch."""

from __future__ import annotations

from numba import cuda


@cuda.jit(device=True, inline=True)
def split3(f, rows, cols):
    """(outer, row, col) of flat index ``f`` in a C-contiguous (outer, rows, cols) array;
    neighbouring ``f`` are neighbouring columns."""
    col = f % cols
    t = f // cols
    return t // rows, t % rows, col


@cuda.jit(device=True, inline=True)
def split4(f, b, c, d):
    """(i, j, k, l) of flat index ``f`` in a C-contiguous (a, b, c, d) array."""
    outer, k, l = split3(f, c, d)
    return outer // b, outer % b, k, l


@cuda.jit(device=True, inline=True)
def team_slots(team):
    """(tid, lane, row0, row_step) for a kernel whose teams of ``team`` consecutive
    threads each take one row: ``for base in range(row0, rows, row_step)``, the team's
    row being ``base + tid // team`` (kernels/numba_cuda/reduce.py describes teams)."""
    tid = cuda.threadIdx.x
    per_block = cuda.blockDim.x // team
    return tid, tid % team, cuda.blockIdx.x * per_block, cuda.gridDim.x * per_block


@cuda.jit(device=True, inline=True)
def team_row(base, tid, team, rows):
    """(row, active): the row of thread ``tid``'s team in the pass that starts at ``base``
    (see :func:`team_slots`), and whether it is one of the ``rows`` (a team is wholly
    active or wholly idle)."""
    row = base + tid // team
    return row, row < rows
