"""Pooling on the CPU: fastnn's Cython kernels against PyTorch, interleaved in one process.

Usage: env -u OPENBLAS_CORETYPE fastnn bench --table pool [--threads 2]
       [--dtype float32] [--rounds 7] [--only NAME,NAME] [--ops max,max_idx,...]
       [--clock wall|thread]

Ops: max (values only), max_idx (with indices), max_bwd (from indices, as in training),
max_bwd_re (indices recomputed; fastnn only), avg, avg_bwd.  Each round runs a block of
calls of every implementation, in a new seeded random order (fastnn.bench.timing), so
machine noise hits all alike; the table shows the median over rounds of the time per
call, the speed-up over PyTorch (> 1: fastnn faster), fastnn's bandwidth (bytes read +
written per second) and that bandwidth as a fraction of a copy's: a copy moving as many
bytes (read + write) with as many threads takes part in the same rounds.

On a shared machine, ``--threads 1 --clock thread`` times the CPU time of the calling
thread (where both libraries compute when limited to one thread): other processes then
barely disturb the ratios, though they still share the memory bus.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

import fastnn
from fastnn.bench.building import randn
from fastnn.bench.case import Case, Impl
from fastnn.bench.runner import run_case
from fastnn.bench.tables.common import add_clock, check_clock, medians, set_threads
from fastnn.bench.timing import TimingPlan

__all__ = ["OPS", "SHAPES", "main", "parallel_copy", "table_case"]

# name, (N, C, *spatial), kernel, stride, padding
SHAPES = [
    ("big-2x2s2", (32, 64, 112, 112), 2, 2, 0),
    ("big-3x3s2p1", (32, 64, 112, 112), 3, 2, 1),
    ("LeNet-S2", (128, 6, 28, 28), 2, 2, 0),
    ("LeNet-S4", (128, 16, 10, 10), 2, 2, 0),
    ("R50-maxpool", (32, 64, 112, 112), 3, 2, 1),
    ("R50-avgpool", (32, 2048, 7, 7), 7, 7, 0),
    ("VGG-pool1", (8, 64, 224, 224), 2, 2, 0),
    ("Spec-pool", (32, 64, 1000), 2, 2, 0),
    ("Spec-pool-k3", (32, 100, 1000), 3, 2, 1),
]
OPS = ("max", "max_idx", "max_bwd", "max_bwd_re", "avg", "avg_bwd")
#: Seconds of calls in one timed block.
BLOCK_SECONDS = 0.02


def parallel_copy(nbytes: int, threads: int, pool: ThreadPoolExecutor) -> Callable[[], Any]:
    """A callable copying ``nbytes / 2`` bytes (so reading + writing ``nbytes``) with
    ``threads`` threads of ``pool``, the destination touched beforehand."""
    src = np.ones(max(1, nbytes // 16))
    dst = np.zeros_like(src)
    dst[:] = 2.0
    if threads == 1:  # in the calling thread, so that a thread clock sees it
        return lambda: np.copyto(dst, src)
    bounds = np.linspace(0, src.size, threads + 1).astype(int)
    parts = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return lambda: list(pool.map(lambda part: np.copyto(*part), parts))


def _out_shape(shape: tuple[int, ...], k: int, s: int, p: int) -> tuple[int, ...]:
    return (*shape[:2], *((n + 2 * p - k) // s + 1 for n in shape[2:]))


def _moved(op: str, x_size: int, y_size: int, itemsize: int) -> int:
    """Bytes read and written by ``op`` (indices are 8 bytes each)."""
    io = (x_size + y_size) * itemsize
    if op in ("max_idx", "max_bwd"):
        return io + 8 * y_size
    if op == "max_bwd_re":
        return io + y_size * itemsize
    return io


def _fastnn_call(op: str, nd: int, k: int, s: int, p: int) -> Callable[[dict], Any]:
    kind = "avg" if op.startswith("avg") else "max"
    forward = getattr(fastnn, f"{kind}_pool{nd}d")
    backward = getattr(fastnn, f"{kind}_pool{nd}d_backward")
    calls = {
        "max": lambda d: forward(d["x"], k, s, p),
        "max_idx": lambda d: forward(d["x"], k, s, p, return_indices=True),
        "max_bwd": lambda d: backward(d["gy"], d["x"], k, s, p, indices=d["indices"]),
        "max_bwd_re": lambda d: backward(d["gy"], d["x"], k, s, p),
        "avg": lambda d: forward(d["x"], k, s, p),
        "avg_bwd": lambda d: backward(d["gy"], d["x"], k, s, p),
    }
    return calls[op]


def _torch_call(op: str, k: int, s: int, p: int) -> Callable[[dict], Any] | None:
    from fastnn.bench import impl_torch

    calls = {
        "max": lambda d: impl_torch.max_pool(d["x"], k, s, p),
        "max_idx": lambda d: impl_torch.max_pool(d["x"], k, s, p, return_indices=True),
        "max_bwd": lambda d: impl_torch.max_pool_backward(d["gy"], d["x"], k, s, p, d["indices"]),
        "avg": lambda d: impl_torch.avg_pool(d["x"], k, s, p),
        "avg_bwd": lambda d: impl_torch.avg_pool_backward(d["gy"], d["x"], k, s, p),
    }
    return calls.get(op)


def table_case(
    name: str,
    shape: tuple[int, ...],
    k: int,
    s: int,
    p: int,
    op: str,
    dtype: Any,
    copy: Callable[[int], Callable[[], Any]],
) -> Case:
    """One row: fastnn, a copy of as many bytes (``copy(nbytes)`` makes it) and torch
    (every op but max_bwd_re)."""
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    nd = len(shape) - 2
    y_shape = _out_shape(shape, k, s, p)
    nbytes = _moved(op, math.prod(shape), math.prod(y_shape), np.dtype(dtype).itemsize)
    forward = getattr(fastnn, f"max_pool{nd}d")

    def data(rng: np.random.Generator) -> dict[str, Any]:
        x = randn(rng, shape, dtype)
        _, indices = forward(x, k, s, p, return_indices=True)
        return {"x": x, "gy": randn(rng, y_shape, dtype), "indices": indices}

    copier = copy(nbytes)
    impls = [Impl("fastnn", _fastnn_call(op, nd, k, s, p)), Impl("copy", lambda d: copier())]
    theirs = _torch_call(op, k, s, p)
    if theirs is not None:
        impls.append(Impl("torch", theirs, "torch"))
    params = {"input": shape, "kernel": k, "stride": s, "padding": p}
    flops = math.prod(y_shape) * k**nd
    return Case("pool", op, name, params, flops, nbytes, data, tuple(impls), "bytes")


def _applies(name: str, op: str) -> bool:
    """Max ops are not run on the average-pooling layer, nor average ops on the max one."""
    return not (
        (op.startswith("max") and name.endswith("avgpool"))
        or (op.startswith("avg") and name.endswith("maxpool"))
    )


def table_rows(name, shape, k, s, p, args, pool) -> None:
    """Measure and print every requested op on one shape."""
    plan = TimingPlan.rounds(
        args.rounds, min_sample=BLOCK_SECONDS, settle=args.settle, clock=args.clock
    )
    for op in args.ops.split(","):
        if not _applies(name, op):
            continue
        case = table_case(
            name, shape, k, s, p, op, np.dtype(args.dtype).type,
            lambda nbytes: parallel_copy(nbytes, args.threads, pool),
        )  # fmt: skip
        times = medians(run_case(case, plan).measurements, f"{name} {op}")
        ours = times["fastnn"]
        theirs = times.get("torch")
        torch_ms = f"{theirs * 1e3:9.3f}" if theirs else f"{'-':>9}"
        ratio = f"{theirs / ours:7.2f}x" if theirs else f"{'-':>8}"
        gbps = case.bytes / ours / 1e9
        print(
            f"{name:14} {op:10} {ours * 1e3:10.3f} {torch_ms} {ratio} "
            f"{gbps:6.1f} {times['copy'] / ours:6.0%}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="fastnn bench --table pool", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated shape names")
    parser.add_argument("--ops", default=",".join(OPS))
    add_clock(parser)
    parser.add_argument("--settle", type=float, default=0.0, help="pause before a block, s")
    args = parser.parse_args(argv)
    check_clock(parser, args)
    unknown = set(args.ops.split(",")) - set(OPS)
    if unknown:
        parser.error(f"unknown ops {sorted(unknown)}; expected some of {', '.join(OPS)}")
    set_threads(args.threads)
    print(f"{args.threads} threads, {args.clock} clock, dtype {args.dtype}")
    print(
        f"{'shape':14} {'op':10} {'fastnn ms':>10} {'torch ms':>9} {'speed-up':>8} "
        f"{'GB/s':>6} {'of copy':>7}"
    )
    wanted = set(filter(None, args.only.split(",")))
    with ThreadPoolExecutor(args.threads) as pool:
        for name, shape, k, s, p in SHAPES:
            if not wanted or name in wanted:
                table_rows(name, shape, k, s, p, args, pool)
    return 0
