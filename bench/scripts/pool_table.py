"""Pooling on the CPU: fastnn's Cython kernels against PyTorch, interleaved in one process.

Usage: env -u OPENBLAS_CORETYPE python bench/scripts/pool_table.py [--threads 2]
       [--dtype float32] [--rounds 7] [--only NAME,NAME] [--ops max,max_idx,...]
       [--clock wall|thread]

Ops: max (values only), max_idx (with indices), max_bwd (from indices, as in training),
max_bwd_re (indices recomputed; fastnn only), avg, avg_bwd.  Each round runs a block of
calls of every implementation in turn, the starting one rotating, so machine noise hits
all alike; the table shows the median over rounds of the time per call, the speed-up
over PyTorch (> 1: fastnn faster), fastnn's bandwidth (bytes read + written per second)
and that bandwidth as a fraction of a copy's: a copy moving as many bytes (read + write)
with as many threads takes part in the same rounds.

On a shared machine, ``--threads 1 --clock thread`` times the CPU time of the calling
thread (where both libraries compute when limited to one thread): other processes then
barely disturb the ratios, though they still share the memory bus.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

import fastnn
from fastnn.ops import pool as ops

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


def parallel_copy(nbytes: int, threads: int, pool: ThreadPoolExecutor):
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


def _torch_2d(t: torch.Tensor) -> torch.Tensor:
    return t.unsqueeze(2) if t.ndim == 3 else t


def cases(shape, k, s, p, dtype, op, rng):
    """(bytes moved, fastnn callable, torch callable or None) for one op on one shape."""
    nd = len(shape) - 2
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x)
    max_fn, avg_fn = (
        (ops.max_pool1d, ops.avg_pool1d) if nd == 1 else (ops.max_pool2d, ops.avg_pool2d)
    )
    max_bwd = ops.max_pool1d_backward if nd == 1 else ops.max_pool2d_backward
    avg_bwd = ops.avg_pool1d_backward if nd == 1 else ops.avg_pool2d_backward
    t_max, t_avg = (F.max_pool1d, F.avg_pool1d) if nd == 1 else (F.max_pool2d, F.avg_pool2d)
    y, index = max_fn(x, k, s, p, return_indices=True)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gyt, it = torch.from_numpy(gy), torch.from_numpy(index)
    k2, s2, p2 = ((1, k), (1, s), (0, p)) if nd == 1 else ((k, k), (s, s), (p, p))
    itemsize = x.itemsize
    io = (x.size + y.size) * itemsize
    if op == "max":
        return io, lambda: max_fn(x, k, s, p), lambda: t_max(xt, k, s, p)
    if op == "max_idx":
        return (
            io + 8 * y.size,
            lambda: max_fn(x, k, s, p, return_indices=True),
            lambda: t_max(xt, k, s, p, return_indices=True),
        )
    if op == "max_bwd":
        aten = torch.ops.aten.max_pool2d_with_indices_backward
        return (
            io + 8 * y.size,
            lambda: max_bwd(gy, x, k, s, p, indices=index),
            lambda: aten(_torch_2d(gyt), _torch_2d(xt), k2, s2, p2, (1, 1), False, _torch_2d(it)),
        )
    if op == "max_bwd_re":
        return io + y.size * itemsize, lambda: max_bwd(gy, x, k, s, p), None
    if op == "avg":
        return io, lambda: avg_fn(x, k, s, p), lambda: t_avg(xt, k, s, p)
    if op == "avg_bwd":
        aten = torch.ops.aten.avg_pool2d_backward
        return (
            io,
            lambda: avg_bwd(gy, x, k, s, p),
            lambda: aten(_torch_2d(gyt), _torch_2d(xt), k2, s2, p2, False, True, None),
        )
    raise ValueError(op)


def interleaved(
    fns, rounds: int, clock, block_seconds: float = 0.02, settle: float = 0.0
) -> list[float]:
    """Median seconds per call of each callable, over ``rounds`` shuffled rounds; each
    timed block follows a pause of ``settle`` seconds (the OpenMP threads of the previous
    block, torch's or ours, stop spinning; on a VM an idle vCPU is slow to wake, though)."""
    loops = []
    for fn in fns:
        fn()  # warm-up
        start = clock()
        fn()
        once = clock() - start
        loops.append(max(1, int(block_seconds / max(once, 1e-7))))
    samples = [[] for _ in fns]
    order, indices = random.Random(0), list(range(len(fns)))
    for _ in range(rounds):
        order.shuffle(indices)  # a new order each round: no fixed successor of torch
        for i in indices:
            time.sleep(settle)
            start = clock()
            for _ in range(loops[i]):
                fns[i]()
            samples[i].append((clock() - start) / loops[i])
    return [statistics.median(s) for s in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated shape names")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall")
    parser.add_argument("--settle", type=float, default=0.0, help="pause before a block, s")
    args = parser.parse_args()
    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread measures one thread: use it with --threads 1")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    fastnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    rng = np.random.default_rng(0)
    print(f"{args.threads} threads, {args.clock} clock, dtype {args.dtype}")
    print(
        f"{'shape':14} {'op':10} {'fastnn ms':>10} {'torch ms':>9} {'speed-up':>8} "
        f"{'GB/s':>6} {'of copy':>7}"
    )
    wanted = set(filter(None, args.only.split(",")))
    with ThreadPoolExecutor(args.threads) as pool:
        for name, shape, k, s, p in SHAPES:
            if not wanted or name in wanted:
                table_rows(name, shape, k, s, p, args, clock, pool, rng)


def table_rows(name, shape, k, s, p, args, clock, pool, rng) -> None:
    """Measure and print every requested op on one shape."""
    for op in args.ops.split(","):
        if (op.startswith("max") and name.endswith("avgpool")) or (
            op.startswith("avg") and name.endswith("maxpool")
        ):
            continue
        nbytes, ours, theirs = cases(shape, k, s, p, np.dtype(args.dtype), op, rng)
        fns = [ours, parallel_copy(nbytes, args.threads, pool)] + ([theirs] if theirs else [])
        times = interleaved(fns, args.rounds, clock, settle=args.settle)
        torch_ms = f"{times[2] * 1e3:9.3f}" if theirs else f"{'-':>9}"
        ratio = f"{times[2] / times[0]:7.2f}x" if theirs else f"{'-':>8}"
        gbps = nbytes / times[0] / 1e9
        print(
            f"{name:14} {op:10} {times[0] * 1e3:10.3f} {torch_ms} {ratio} "
            f"{gbps:6.1f} {times[1] / times[0]:6.0%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
