"""Sweep the Winograd kernel's blocking on this CPU: tile size, instruction-set level,
tiles per block (pb), output channels per chunk (kc) and thread grid, per layer, against
the plan fastnn._backends.cpu._conv_winograd.plan() picks and against torch.

The plan's constants (BLOCK_L2, FILTER_L2, MAX_BLOCK, CHUNK, the grid rule) are a prior fitted
on one CPU (an AMD Zen 4 with a 1 MB L2 per core); run this on another CPU kind to see
whether they still pick near the best there.  Timing is fastnn.bench's (interleaved,
seeded order, medians).

    env -u OPENBLAS_CORETYPE fastnn bench --table winograd \\
        [--layers 64x56,128x28,256x14,512x7] [--batch 8] [--threads 2] [--top 5]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from fastnn import _isa
from fastnn._backends.cpu import _conv_winograd
from fastnn.bench.timing import TimingPlan, measure
from fastnn.kernels.cpu import conv_winograd as kernels

PROG = "fastnn bench --table winograd"


def _configs(c: int, isas: list[int]):
    for isa, m in itertools.product(isas, (2, 4)):
        mr, nr = kernels.register_tile(isa, False)
        for pbm, kcm, grid in itertools.product((2, 4, 8), (1, 2, 4), ((1, 2), (2, 1))):
            yield (m, isa, pbm * nr, kcm * mr, *grid)


def _call(x, wf, y, c: int, hw: int, cfg: tuple[int, ...]):
    m, isa, pb, kc, tk, tp = cfg
    return lambda: kernels.convolve(
        x, None, wf, False, None, y, c, 1, hw, hw, 1, 1, m, isa, pb, kc, tk, tp
    )


def run(args) -> None:
    import torch
    import torch.nn.functional as F

    from fastnn._machine import cpu_model

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    isas = [_isa.LEVELS.index(name) for name in _isa.supported() if name != "base"] or [0]
    plan = TimingPlan(budget=args.budget, repeats=5, min_runs=3)
    print(f"Winograd blocking sweep, batch {args.batch}, {args.threads} threads, {cpu_model()}")
    for layer in args.layers.split(","):
        c, hw = (int(v) for v in layer.split("x"))
        n = args.batch
        x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
        w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
        wf = w.reshape(-1)
        y = np.empty(n * c * hw * hw, dtype=np.float32)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        impls = {"torch": lambda tx=tx, tw=tw: F.conv2d(tx, tw, None, 1, 1)}
        chosen = _conv_winograd.plan(n, c, c, 1, hw, hw, 4, 4, args.threads)
        for cfg in [tuple(chosen), *_configs(c, isas)]:
            impls[str(cfg)] = _call(x, wf, y, c, hw, cfg)
        with torch.no_grad():
            results = measure(impls, plan)
        times = {k: v.median for k, v in results.items() if v.ok}
        torch_ms = times.pop("torch") * 1e3
        ranked = sorted(times.items(), key=lambda kv: kv[1])
        planned = times[str(tuple(chosen))] * 1e3
        print(f"\n{n}x{c}x{hw}x{hw} -> {c}: torch {torch_ms:.2f} ms; plan {tuple(chosen)} "
              f"{planned:.2f} ms ({torch_ms / planned:.2f}x)")  # fmt: skip
        print("best (m, isa, pb, kc, tk, tp):")
        for cfg, t in ranked[: args.top]:
            print(f"  {cfg}: {t * 1e3:.2f} ms ({torch_ms / (t * 1e3):.2f}x)")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and print the sweep; returns the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="64x56,128x28,256x14,512x7", help="CxHW list")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per config")
    parser.add_argument("--top", type=int, default=5)
    run(parser.parse_args(argv))
    return 0
