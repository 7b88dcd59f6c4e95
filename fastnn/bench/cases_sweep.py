"""The sweep: every public op, forward and backward, over a grid of small, medium and large
shapes, against PyTorch -- the cases that find a slow shape before a user does.

The grid spans batch 1-256, channels 1-1024, maps 1-224 and odd sizes; a case is kept
only under :data:`MAX_BYTES` of data and :data:`MAX_FLOPS`.  Each case is built by its
family's own builder (cases_dense, cases_conv, cases_pool, ...), so it runs exactly what
that family's cases run, and is filed under the family "sweep" with the op's family in
its name.  The "tiny" suite keeps a handful of cases, "quick" about a hundred, "full"
the whole grid.  bench/scripts/sweep.py runs it and lists the worst ratios against torch;
``fastnn bench --families sweep`` puts its summary in the report.

Not swept: the optimizer updates (no torch peer with the same arguments) and the training
step (family "train").
"""

from __future__ import annotations

from dataclasses import replace

from fastnn.bench import (
    cases_activation,
    cases_backprop,
    cases_conv,
    cases_dense,
    cases_loss,
    cases_pool,
    shapes,
)
from fastnn.bench.building import Context
from fastnn.bench.case import Case, is_subject

__all__ = ["FAMILY", "MAX_BYTES", "MAX_FLOPS", "cases", "grid"]

FAMILY = "sweep"
#: Largest case: bytes of its arrays, and arithmetic operations.
MAX_BYTES = 256 * 2**20
MAX_FLOPS = 2e10

_GEMM_SIZES = (1, 7, 64, 257, 1024)
_LINEAR = ((1, 3, 10), (16, 100, 10), (64, 784, 300), (256, 1024, 1024), (1024, 100, 10),
           (7, 33, 5), (256, 4096, 10))  # fmt: skip
_ELEMENTS = (1, 37, 1000, 65_537, 1 << 20, 1 << 24)
_ROWS = ((1, 10), (7, 3), (128, 10), (64, 1000), (256, 33), (4096, 1000))
_POOL2D = ((1, 1, 5, 2, 2), (128, 6, 28, 2, 2), (128, 16, 10, 2, 2), (32, 64, 56, 3, 2),
           (8, 256, 14, 2, 2), (256, 3, 33, 3, 3), (2, 512, 7, 7, 7))  # fmt: skip
_POOL1D = ((64, 16, 1000, 4, 4), (1, 1, 7, 2, 2), (128, 32, 1001, 3, 2), (8, 1024, 50, 2, 2))
# (batch, in channels, out channels, map side, kernel side, stride, padding)
_CONV2D = ((1, 1, 1, 5, 3, 1, 1), (128, 6, 16, 14, 5, 1, 0), (8, 64, 128, 56, 3, 2, 1),
           (8, 3, 64, 224, 7, 2, 3), (1, 256, 256, 14, 3, 1, 1), (8, 960, 160, 7, 1, 1, 0),
           (32, 16, 33, 31, 3, 1, 1), (256, 1, 32, 28, 3, 1, 1),
           (2, 1024, 1024, 7, 1, 1, 0))  # fmt: skip
_CONV1D = ((64, 1, 16, 1000, 7, 1, 3), (8, 64, 64, 4096, 3, 2, 1), (1, 3, 5, 17, 3, 1, 0))
_MLP = ((1, (2, 4, 1)), (64, (784, 300, 10)), (256, (100, 64, 10)))


def _fits(nbytes: float, flops: float) -> bool:
    return nbytes <= MAX_BYTES and flops <= MAX_FLOPS


def grid(suite: str) -> dict[str, list]:
    """The shapes of each op family for ``suite``: the full grid, a sample of it
    ("quick": every other shape), or its first shapes ("tiny")."""
    gemm = [
        shapes.GemmShape(f"{m}x{n}x{k}-{t}", m, n, k, t)
        for m in _GEMM_SIZES
        for n in _GEMM_SIZES
        for k in _GEMM_SIZES
        for t in ("NN", "TN")
        if (m * n * k) ** (1 / 3) < 300 or (m == n == k and t == "NN")
    ]
    table = {
        "gemm": gemm,
        "linear": [
            shapes.LinearShape(f"{n}x{i}->{o}-{a or 'none'}", n, i, o, a)
            for n, i, o in _LINEAR
            for a in (None, "relu", "tanh")
        ],
        "elementwise": [(f"{n}", n) for n in _ELEMENTS],
        "rows": [(f"{r}x{c}", (r, c)) for r, c in _ROWS],
        "pool": [
            shapes.PoolShape(f"{n}x{c}x{s}x{s}-k{k}s{st}", n, c, (s, s), k, st)
            for n, c, s, k, st in _POOL2D
        ]
        + [
            shapes.PoolShape(f"{n}x{c}x{s}-k{k}s{st}", n, c, (s,), k, st)
            for n, c, s, k, st in _POOL1D
        ],
        "conv": [
            shapes.ConvShape(f"{n}x{c}x{s}x{s}->{k} {r}x{r}/{st}", n, c, (s, s), k, (r, r), st, p)
            for n, c, k, s, r, st, p in _CONV2D
        ]
        + [
            shapes.ConvShape(f"{n}x{c}x{s}->{k} k{r}/{st}", n, c, (s,), k, (r,), st, p)
            for n, c, k, s, r, st, p in _CONV1D
        ],
        "mlp": [shapes.MlpShape(f"{n}x{'-'.join(map(str, w))}", n, w) for n, w in _MLP],
    }
    if suite == "quick":
        return {name: items[::2] for name, items in table.items()}
    if suite == "tiny":
        return {name: items[:1] for name, items in table.items()}
    return table


#: Peers a sweep case keeps besides fastnn's fast backends: torch everywhere, NumPy for the
#: products (the reference backend is left out: the grid is about speed).
_PEERS = ("torch", "torch-cuda")
_NUMPY_FAMILIES = ("gemm", "linear")
#: The params entry that keeps a sweep case's own op family (its family is "sweep").
OP_FAMILY = "op_family"


def _as_sweep(case: Case) -> Case:
    def keep(name: str) -> bool:
        return (
            is_subject(name)
            or name in _PEERS
            or (name == "numpy" and case.family in _NUMPY_FAMILIES)
        )

    impls = tuple(impl for impl in case.impls if keep(impl.name))
    shape = f"{case.family}:{case.op} {case.shape}"
    params = {**case.params, OP_FAMILY: case.family}  # e.g. for the runner's BLAS peers
    return replace(case, family=FAMILY, shape=shape, params=params, impls=impls)


def cases(ctx: Context) -> list[Case]:
    """Every op of the grid, forward then backward, as "sweep" cases."""
    g = grid(ctx.suite)
    found: list[Case] = [cases_dense.gemm_case(ctx, s) for s in g["gemm"]]
    for backward in (False, True):
        found += [cases_dense.linear_case(ctx, s, backward) for s in g["linear"]]
        for name in cases_activation.ACTIVATIONS:
            found += [
                cases_activation.elementwise_case(ctx, name, n, size, backward)
                for n, size in g["elementwise"]
            ]
        for name in cases_activation.SOFTMAXES:
            found += [
                cases_activation.softmax_case(ctx, name, n, shape, backward)
                for n, shape in g["rows"]
            ]
        for name in cases_loss.LOSSES:
            found += [cases_loss.loss_case(ctx, name, n, shape, backward) for n, shape in g["rows"]]
        for kind in cases_pool.KINDS:
            found += [cases_pool.pool_case(ctx, s, kind, backward) for s in g["pool"]]
        found += [cases_conv.conv_case(ctx, s, backward) for s in g["conv"]]
    found += [cases_backprop.output_sensitivity_case(ctx, n, shape) for n, shape in g["rows"]]
    for shape in g["mlp"]:
        for op in ("sensitivity", "dense_grads", "mlp_backward"):
            found.append(cases_backprop.mlp_case(ctx, shape, op))
    return [_as_sweep(c) for c in found if _fits(c.bytes, c.flops)]
