"""Convolution timing table: fastnn's CPU algorithms against PyTorch CPU, same process.

For every shape of docs/BENCHMARKS.md (or those matching --only), the implementations
run in interleaved rounds (one call of each per round, after a warm-up call, in a new
seeded random order every round), and the median per implementation is
reported with the speed-up of fastnn over PyTorch
(torch time / fastnn time; > 1 means fastnn is faster).  Forward includes the bias;
backward is grad_input + grad_weight (torch's aten.convolution_backward, no autograd).
--settle S pauses S seconds before each timed call (default 0), so that one library's
spinning OpenMP threads do not land on the other's clock.  On a virtual machine a pause
can cost more than it saves: an idle vCPU is slow to wake (ms), so check both ways.

    env -u OPENBLAS_CORETYPE .venv/bin/python bench/scripts/conv_table.py [--backward]
        [--only R50,Spec] [--rounds 7] [--threads 2] [--clock wall|thread]
        [--dtype float32] [--algos auto,direct,winograd]

"winograd" runs only on the 3x3 stride-1 shapes ("-" elsewhere; its geomean is over those).
"auto" tunes into the default autotune cache on its warm-up call (fastnn.autotune).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from functools import partial

import numpy as np

import fastnn

# name, N, C, H, W, K, R, S, stride, pad, 1-D?
SHAPES = [
    ("LeNet5-C1", 128, 1, 32, 32, 6, 5, 5, 1, 0, False),
    ("LeNet5-C3", 128, 6, 14, 14, 16, 5, 5, 1, 0, False),
    ("MNIST-3x3", 128, 1, 28, 28, 32, 3, 3, 1, 1, False),
    ("R50-conv1", 32, 3, 224, 224, 64, 7, 7, 2, 3, False),
    ("R50-res2-3x3", 32, 64, 56, 56, 64, 3, 3, 1, 1, False),
    ("R50-res2-1x1", 32, 64, 56, 56, 256, 1, 1, 1, 0, False),
    ("R50-res3-3x3", 32, 128, 28, 28, 128, 3, 3, 1, 1, False),
    ("R50-res4-3x3", 32, 256, 14, 14, 256, 3, 3, 1, 1, False),
    ("R50-res5-1x1", 32, 2048, 7, 7, 512, 1, 1, 1, 0, False),
    ("VGG16-conv1_2", 8, 64, 224, 224, 64, 3, 3, 1, 1, False),
    ("VGG16-conv4_2", 16, 512, 28, 28, 512, 3, 3, 1, 1, False),
    ("DS2-conv1", 16, 1, 161, 700, 32, 5, 20, 2, 0, False),
    ("DS2-conv2", 16, 32, 79, 341, 32, 5, 10, 2, 0, False),
    ("OCR-conv1", 16, 1, 48, 480, 16, 3, 3, 1, 1, False),
    ("Face-conv", 8, 3, 108, 108, 64, 3, 3, 2, 1, False),
    ("Spec-stem", 32, 1, 1, 1000, 64, 1, 5, 1, 2, True),
    ("Spec-res", 32, 100, 1, 1000, 100, 1, 5, 1, 2, True),
    ("Spec-res-s2", 32, 100, 1, 1000, 100, 1, 5, 2, 2, True),
    ("Spec-wide", 32, 1, 1, 4096, 16, 1, 21, 1, 10, True),
    ("DeepSpectra-c1", 32, 1, 1, 1000, 8, 1, 7, 3, 3, True),
]


def _median_times(
    funcs: dict, rounds: int, budget_s: float, clock, settle: float = 0.0
) -> dict[str, float]:
    for f in funcs.values():  # warm-up (and autotuning, when on)
        f()
    times: dict[str, list[float]] = {name: [] for name in funcs}
    start = time.perf_counter()
    names = list(funcs)
    order = random.Random(0)
    for i in range(rounds):
        # a new order every round (a rotation would keep the same successor): whichever
        # follows torch pays for what torch leaves behind (memory it handed back to the
        # OS, so fresh page faults)
        order.shuffle(names)
        for name in names:
            f = funcs[name]
            time.sleep(settle)
            t = clock()
            f()
            times[name].append(clock() - t)
        if i >= 2 and time.perf_counter() - start > budget_s:
            break
    return {name: statistics.median(v) for name, v in times.items()}


def _problem(shape, dtype, rng):
    name, n, c, h, w, k, r, s, stride, pad, one_d = shape
    if one_d:
        x = rng.standard_normal((n, c, w)).astype(dtype)
        wt = rng.standard_normal((k, c, s)).astype(dtype) * 0.1
    else:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        wt = rng.standard_normal((k, c, r, s)).astype(dtype) * 0.1
    b = rng.standard_normal(k).astype(dtype)
    return x, wt, b


def _gflop(x, wt, y) -> float:
    per_output = math.prod(wt.shape[1:])
    return 2 * y.size * per_output / 1e9


def _backward_funcs(one_d, gy, x, wt, stride, pad, algos) -> dict:
    import torch

    nd = 1 if one_d else 2
    back = fastnn.conv1d_backward if one_d else fastnn.conv2d_backward
    tgy, tx, tw = (torch.from_numpy(a) for a in (gy, x, wt))
    mask = (True, True, False)
    funcs = {
        "torch": partial(
            torch.ops.aten.convolution_backward,
            tgy,
            tx,
            tw,
            None,
            [stride] * nd,
            [pad] * nd,
            [1] * nd,
            False,
            [0] * nd,
            1,
            list(mask),
        )
    }
    for a in algos:
        if _runs(partial(back, gy, x, wt, stride, pad, algo=a, output_mask=mask)):
            funcs[a] = partial(back, gy, x, wt, stride, pad, algo=a, output_mask=mask)
    return funcs


def _runs(fn) -> bool:
    """Whether an explicit algorithm can run this layer (Winograd refuses all but 3x3
    stride-1 layers with a ValueError)."""
    try:
        fn()
    except ValueError:
        return False
    return True


def run(args) -> None:
    import torch
    import torch.nn.functional as F

    if args.clock == "thread" and args.threads != 1:
        raise SystemExit("--clock thread measures one thread: use it with --threads 1")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    torch.set_num_threads(args.threads)
    fastnn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    algos = args.algos.split(",")
    only = args.only.split(",") if args.only else None
    kind = "backward (grad_input + grad_weight)" if args.backward else "forward (+ bias)"
    print(
        f"conv {kind}, {dtype}, {args.threads} threads, {args.clock} clock; median ms; "
        "speed-up = torch / fastnn"
    )
    cols = ["shape", "GFLOP", "torch ms"] + [f"{a} ms" for a in algos]
    cols += [f"{a} x" for a in algos]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    ratios: dict[str, list[float]] = {a: [] for a in algos}
    for shape in SHAPES:
        name, *_, stride, pad, one_d = shape
        if only and not any(o in name for o in only):
            continue
        x, wt, b = _problem(shape, dtype, rng)
        tx, tw, tb = (torch.from_numpy(a) for a in (x, wt, b))
        conv = fastnn.conv1d if one_d else fastnn.conv2d
        tconv = F.conv1d if one_d else F.conv2d
        y = conv(x, wt, b, stride, pad, algo="im2col")
        if args.backward:
            gy = rng.standard_normal(y.shape).astype(dtype)
            funcs = _backward_funcs(one_d, gy, x, wt, stride, pad, algos)
        else:
            funcs = {"torch": partial(tconv, tx, tw, tb, stride, pad)}
            for a in algos:
                if _runs(partial(conv, x[:1], wt, b, stride, pad, algo=a)):
                    funcs[a] = partial(conv, x, wt, b, stride, pad, algo=a)
        with torch.no_grad():
            t = _median_times(funcs, args.rounds, args.budget, clock, args.settle)
        flop = _gflop(x, wt, y) * (2 if args.backward else 1)
        row = [name, f"{flop:.2f}", f"{t['torch'] * 1e3:.2f}"]
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
            geo = math.exp(sum(math.log(v) for v in ratios[a]) / len(ratios[a]))
            print(f"geomean speed-up {a}: {geo:.2f}x over {len(ratios[a])} shapes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backward", action="store_true", help="time grad_input+grad_weight")
    parser.add_argument("--only", default="", help="comma-separated name fragments")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--settle", type=float, default=0.0, help="pause before a call, s")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per shape, at most")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "thread"],
        help="wall: elapsed time; thread: this thread's CPU time (with --threads 1), which "
        "a busy machine's descheduling does not inflate",
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--algos", default="auto,im2col,direct,winograd")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
