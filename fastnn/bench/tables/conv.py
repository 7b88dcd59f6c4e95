"""Convolution timing table: fastnn's CPU algorithms against PyTorch CPU, same process.

For every convolution shape of docs/BENCHMARKS.md (fastnn.bench.shapes; those matching
--only), fastnn's algorithms and torch are timed by fastnn.bench.timing (a warm-up call,
then one call each per round in a new seeded random order) and the median per
implementation is reported with the speed-up of fastnn over PyTorch (torch time / fastnn
time; > 1 means fastnn is faster).  Forward includes the bias; backward is grad_input +
grad_weight (torch's aten.convolution_backward, no autograd).  --settle S pauses S seconds
before each timed call (default 0), so that one library's spinning OpenMP threads do not
land on the other's clock.  On a virtual machine a pause can cost more than it saves: an
idle vCPU is slow to wake (ms), so check both ways.

    env -u OPENBLAS_CORETYPE fastnn bench --table conv [--backward]
        [--only R50,Spec] [--rounds 7] [--threads 2] [--clock wall|thread]
        [--dtype float32] [--algos auto,direct,winograd]

"winograd" runs only on the 3x3 stride-1 shapes ("-" elsewhere; its geomean is over those).
"auto" tunes into the default autotune cache on its warm-up call (fastnn.autotune).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

import fastnn
from fastnn.bench import shapes
from fastnn.bench.building import randn
from fastnn.bench.case import Case, Impl
from fastnn.bench.runner import run_case
from fastnn.bench.tables.common import (
    add_clock,
    check_clock,
    geomean,
    medians,
    set_threads,
    skip_on_value_error,
)
from fastnn.bench.timing import TimingPlan

__all__ = ["SHAPES", "main", "table_case"]

SHAPES = shapes.CONV2D + shapes.CONV1D
#: The gradients the backward pass computes: input and weight, not the bias.
MASK = (True, True, False)


def _out_size(shape: shapes.ConvShape) -> tuple[int, ...]:
    return tuple(
        (n + 2 * shape.pad - k) // shape.stride + 1 for n, k in zip(shape.size, shape.kernel)
    )


def table_case(shape: shapes.ConvShape, algos: list[str], backward: bool, dtype: Any) -> Case:
    """The case of one table row: torch, then fastnn with each of ``algos`` ("-" in the
    table where an algorithm refuses the layer)."""
    nd = shape.nd
    stride, pad = shape.stride, shape.pad
    x_shape = (shape.n, shape.c, *shape.size)
    w_shape = (shape.k, shape.c, *shape.kernel)
    y_shape = (shape.n, shape.k, *_out_size(shape))
    flops = 2 * math.prod(y_shape) * math.prod(w_shape[1:]) * (2 if backward else 1)
    forward_fn = fastnn.conv1d if nd == 1 else fastnn.conv2d
    backward_fn = fastnn.conv1d_backward if nd == 1 else fastnn.conv2d_backward

    def data(rng: np.random.Generator) -> dict[str, Any]:
        arrays = {
            "x": randn(rng, x_shape, dtype),
            "w": randn(rng, w_shape, dtype) * dtype(0.1),
            "b": randn(rng, (shape.k,), dtype),
        }
        if backward:
            arrays["gy"] = randn(rng, y_shape, dtype)
        return arrays

    def run_torch(d: dict) -> Any:
        from fastnn.bench import impl_torch

        if backward:
            return impl_torch.conv_backward(d["gy"], d["x"], d["w"], stride, pad, 1, MASK)
        return impl_torch.conv(d["x"], d["w"], d["b"], stride, pad, 1)

    def fastnn_call(algo: str) -> Any:
        def run(d: dict) -> Any:
            if backward:
                return backward_fn(
                    d["gy"], d["x"], d["w"], stride, pad, algo=algo, output_mask=MASK
                )
            return forward_fn(d["x"], d["w"], d["b"], stride, pad, algo=algo)

        return skip_on_value_error(run)

    impls = [Impl("torch", run_torch, "torch")]
    impls += [Impl(algo, fastnn_call(algo)) for algo in algos]
    op = f"conv{nd}d{'_backward' if backward else ''}"
    params = {"input": x_shape, "weight": w_shape, "stride": stride, "padding": pad}
    nbytes = (math.prod(x_shape) + math.prod(w_shape) + math.prod(y_shape)) * np.dtype(
        dtype
    ).itemsize
    return Case(f"conv{nd}d", op, shape.name, params, flops, nbytes, data, tuple(impls))


def _plan(args: argparse.Namespace, implementations: int) -> TimingPlan:
    """--rounds rounds, at least three (or --rounds) within --budget seconds per shape."""
    return TimingPlan(
        budget=args.budget / implementations,
        repeats=args.rounds,
        min_runs=min(3, args.rounds),
        min_sample=0.0,
        settle=args.settle,
        clock=args.clock,
    )


def run(args: argparse.Namespace) -> None:
    """Print the table for parsed arguments."""
    set_threads(args.threads)
    dtype = np.dtype(args.dtype).type
    algos = args.algos.split(",")
    only = args.only.split(",") if args.only else None
    kind = "backward (grad_input + grad_weight)" if args.backward else "forward (+ bias)"
    print(
        f"conv {kind}, {np.dtype(dtype)}, {args.threads} threads, {args.clock} clock; median "
        "ms; speed-up = torch / fastnn"
    )
    cols = ["shape", "GFLOP", "torch ms"] + [f"{a} ms" for a in algos]
    cols += [f"{a} x" for a in algos]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    ratios: dict[str, list[float]] = {a: [] for a in algos}
    plan = _plan(args, 1 + len(algos))
    for shape in SHAPES:
        if only and not any(o in shape.name for o in only):
            continue
        case = table_case(shape, algos, args.backward, dtype)
        t = medians(run_case(case, plan).measurements, shape.name)
        if "torch" not in t:
            continue
        row = [shape.name, f"{case.flops / 1e9:.2f}", f"{t['torch'] * 1e3:.2f}"]
        row += [f"{t[a] * 1e3:.2f}" if a in t else "-" for a in algos]
        for a in algos:
            if a not in t:
                row.append("-")
                continue
            ratios[a].append(t["torch"] / t[a])
            row.append(f"{t['torch'] / t[a]:.2f}")
        print("| " + " | ".join(row) + " |", flush=True)
    for a in algos:
        if ratios[a]:
            print(f"geomean speed-up {a}: {geomean(ratios[a]):.2f}x over {len(ratios[a])} shapes")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="fastnn bench --table conv", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--backward", action="store_true", help="time grad_input+grad_weight")
    parser.add_argument("--only", default="", help="comma-separated name fragments")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--settle", type=float, default=0.0, help="pause before a call, s")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per shape, at most")
    parser.add_argument("--threads", type=int, default=2)
    add_clock(parser)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--algos", default="auto,im2col,direct,winograd")
    args = parser.parse_args(argv)
    check_clock(parser, args)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    run(args)
    return 0
