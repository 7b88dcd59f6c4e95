"""Ad-hoc, interleaved timings of the CPU dense family against numpy / OpenBLAS.

    env -u OPENBLAS_CORETYPE python bench/scripts/cpu_dense.py gemm [--threads 2]
    ... gemm-engines | linear | sensitivity | elementwise | overhead   [--dtype float32]
    ... --threads 1 --clock thread     (CPU time of one thread: steadier on a busy machine)

Each round times every implementation once per case, in turn, so machine noise hits all
of them alike; the tables show the median over rounds.  Each timed block starts with an
untimed run-in of --settle seconds (default 0.15): after a call, OpenBLAS's worker
threads spin for ~0.1 s and take a core from whatever runs next, so without it a block
measures the previous implementation's idle threads as much as its own work.
``--settle 0`` shows that cross-library cost (see README, "Threads").  Ratios are numpy's time over
ours (> 1: we are faster).  numpy's BLAS and SciPy's BLAS (used by fastnn) are limited to
--threads threads with threadpoolctl, as are fastnn's kernels (set_num_threads).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from fastnn.kernels.cpu import gemm as engines
from threadpoolctl import threadpool_limits

import fastnn
from fastnn._threads import limit_blas_threads

PEAK_GFLOPS = 231.0  # 2 Zen 4 cores, FP32 FMA (docs/BENCHMARKS.md)
COPY_GBS = 26.0  # STREAM-like copy on 2 threads

SQUARE = [(n, n, n, False, False) for n in (256, 512, 1024, 1536, 2048)]
DEEPBENCH = [
    (1760, 128, 1760, False, False),
    (2560, 64, 2560, False, False),
    (4096, 128, 4096, True, False),
    (3072, 128, 1024, True, False),
    (35, 8457, 2560, False, False),
    (1024, 700, 512, False, False),
    (512, 16, 500000, False, False),
    (128, 4096, 25088, False, False),
]


#: The clock of per_call: wall time, or (--clock thread, single-threaded runs only) the
#: CPU time of this thread, which time slices lost to other processes do not inflate.
CLOCK = time.perf_counter


#: Seconds of untimed calls before each timed block (--settle).
SETTLE = 0.15


def per_call(fn: Callable[[], object], min_seconds: float) -> float:
    """Seconds per call of fn, averaged over as many calls as fit in min_seconds, after
    SETTLE seconds of untimed calls."""
    fn()
    end = time.perf_counter() + SETTLE
    while time.perf_counter() < end:
        fn()
    calls, start = 0, CLOCK()
    while True:
        fn()
        calls += 1
        elapsed = CLOCK() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def compare(impls: dict[str, Callable[[], object]], rounds: int, min_seconds: float) -> dict:
    """Median seconds per call of each implementation, interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(rounds):
        for name, fn in impls.items():
            times[name].append(per_call(fn, min_seconds))
    return {name: statistics.median(ts) for name, ts in times.items()}


def _split_blas(a, b, ta: bool, tb: bool, threads: int):
    """The BLAS engine as fastnn runs it: one-thread BLAS calls on blocks of the result."""
    with limit_blas_threads():
        return engines.blas(a, b, None, 1.0, 0.0, ta, tb, threads)


def _gemm_impls(a, b, ta: bool, tb: bool, threads: int, engines_only: bool) -> dict:
    op_a, op_b = (a.T if ta else a), (b.T if tb else b)
    impls = {
        "numpy": lambda: op_a @ op_b,
        "fastnn": lambda: fastnn.gemm(a, b, trans_a=ta, trans_b=tb),
    }
    if engines_only:
        impls["blocked"] = lambda: engines.blocked(a, b, None, 1, 0, ta, tb, 0, None, None, threads)
        impls["blas"] = lambda: _split_blas(a, b, ta, tb, threads)
    return impls


def _ms_ratio(med: dict) -> str:
    """numpy ms, fastnn ms and their ratio, as table cells."""
    ratio = med["numpy"] / med["fastnn"]
    return f"{1e3 * med['numpy']:>10.3f} {1e3 * med['fastnn']:>10.3f} {ratio:>6.2f}"


def bench_gemm(args, dtype, rng, engines_only: bool = False) -> None:
    print(f"gemm {dtype}, threads={args.threads}, kernel variant {engines.variant_name()}")
    print(f"{'M':>6} {'N':>6} {'K':>7} op  numpy GF/s   fastnn GF/s  %peak  ratio", end="")
    print("   blocked  blas" if engines_only else "")
    cases = {"all": SQUARE + DEEPBENCH, "square": SQUARE, "deepbench": DEEPBENCH}[args.shapes]
    for m, n, k, ta, tb in cases:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        med = compare(
            _gemm_impls(a, b, ta, tb, args.threads, engines_only), args.rounds, args.min_seconds
        )
        gf = {name: 2 * m * n * k / t / 1e9 for name, t in med.items()}
        flags = ("T" if ta else "N") + ("T" if tb else "N")
        line = (
            f"{m:>6} {n:>6} {k:>7} {flags} {gf['numpy']:>10.1f} {gf['fastnn']:>12.1f} "
            f"{100 * gf['fastnn'] / PEAK_GFLOPS:>6.0f} {med['numpy'] / med['fastnn']:>6.2f}"
        )
        if engines_only:
            line += f" {med['numpy'] / med['blocked']:>9.2f} {med['numpy'] / med['blas']:>5.2f}"
        print(line, flush=True)


LINEAR_SHAPES = [
    (64, 1024, 1024),
    (128, 784, 512),
    (256, 512, 512),
    (512, 1024, 1024),
    (1024, 256, 256),
    (1024, 4096, 1024),
]


def _linear_impls(x, w, b) -> dict:
    return {
        "numpy": lambda: np.maximum(x @ w.T + b, 0),
        "fastnn": lambda: fastnn.linear(x, w, b, activation="relu"),
    }


def bench_linear(args, dtype, rng) -> None:
    print(f"linear + relu {dtype}, threads={args.threads}: np.maximum(x @ w.T + b, 0) vs linear")
    print(f"{'batch':>6} {'in':>5} {'out':>5}   numpy ms  fastnn ms  ratio")
    for batch, n_in, n_out in LINEAR_SHAPES:
        x = rng.standard_normal((batch, n_in)).astype(dtype)
        w = rng.standard_normal((n_out, n_in)).astype(dtype)
        b = rng.standard_normal(n_out).astype(dtype)
        med = compare(_linear_impls(x, w, b), args.rounds, args.min_seconds)
        print(f"{batch:>6} {n_in:>5} {n_out:>5} " + _ms_ratio(med), flush=True)


#: The unfused numpy expressions of f'(u) * (delta @ W).
UNFUSED = {
    "relu": lambda d, w, u: (u > 0) * (d @ w),
    "sigmoid": lambda d, w, u: (lambda s: s * (1 - s))(1 / (1 + np.exp(-u))) * (d @ w),
    "tanh": lambda d, w, u: (1 - np.tanh(u) ** 2) * (d @ w),
}


def _sensitivity_impls(d, w, u, act: str) -> dict:
    return {
        "numpy": lambda: UNFUSED[act](d, w, u),
        "fastnn": lambda: fastnn.sensitivity(d, w, u, act),
    }


def bench_sensitivity(args, dtype, rng) -> None:
    print(f"sensitivity {dtype}, threads={args.threads}: f'(u) * (delta @ W), numpy vs fused")
    print(f"{'act':>8} {'N':>6} {'n_next':>6} {'n':>6}   numpy ms  fastnn ms  ratio")
    for act in ("relu", "sigmoid", "tanh"):
        for rows, n_next, n in [
            (64, 512, 512),
            (256, 1024, 1024),
            (1024, 256, 512),
            (1024, 1024, 1024),
        ]:
            d = rng.standard_normal((rows, n_next)).astype(dtype)
            w = rng.standard_normal((n_next, n)).astype(dtype)
            u = rng.standard_normal((rows, n)).astype(dtype)
            med = compare(_sensitivity_impls(d, w, u, act), args.rounds, args.min_seconds)
            print(f"{act:>8} {rows:>6} {n_next:>6} {n:>6} " + _ms_ratio(med), flush=True)


def bench_elementwise(args, dtype, rng) -> None:
    n = 1 << 24  # 64 MiB of float32: twice the L3
    x = rng.standard_normal(n).astype(dtype)
    rows = x.reshape(-1, 1000 if n % 1000 == 0 else 1024)
    g = rng.standard_normal(n).astype(dtype)
    nbytes = 2 * x.nbytes  # read x, write the result
    print(f"elementwise {dtype}, {n} elements, threads={args.threads}")
    print(f"GB/s counts the bytes read and written; copy ~{COPY_GBS} GB/s")
    cases = {
        "copy (np)": (lambda: x.copy(), nbytes),
        "relu": (lambda: fastnn.relu(x), nbytes),
        "sigmoid": (lambda: fastnn.sigmoid(x), nbytes),
        "tanh": (lambda: fastnn.tanh(x), nbytes),
        "relu backward": (lambda: fastnn.activation_backward("relu", g, x), 3 * x.nbytes),
        "softmax (rows 1024)": (lambda: fastnn.softmax(rows, 1), nbytes),
        "log_softmax (rows 1024)": (lambda: fastnn.log_softmax(rows, 1), nbytes),
        "softmax (dim 0)": (lambda: fastnn.softmax(rows, 0), nbytes),
        "np.maximum(x, 0)": (lambda: np.maximum(x, 0), nbytes),
    }
    med = compare({name: fn for name, (fn, _) in cases.items()}, args.rounds, args.min_seconds)
    for name, (_, moved) in cases.items():
        gbs = moved / med[name] / 1e9
        share = 100 * gbs / COPY_GBS
        print(f"{name:>26}: {1e3 * med[name]:8.2f} ms {gbs:6.1f} GB/s  {share:5.0f}% of copy")


def bench_overhead(args, dtype, rng) -> None:
    x = rng.standard_normal(16).astype(dtype)
    rows = rng.standard_normal((4, 4)).astype(dtype)
    print("per-call time on 16 elements (us)")
    cases = {
        "np.maximum(x, 0)": lambda: np.maximum(x, 0),
        "fastnn.relu(x)": lambda: fastnn.relu(x),
        "np.tanh(x)": lambda: np.tanh(x),
        "fastnn.tanh(x)": lambda: fastnn.tanh(x),
        "fastnn.softmax(4x4)": lambda: fastnn.softmax(rows),
    }
    med = compare(cases, args.rounds, args.min_seconds)
    for name, t in med.items():
        print(f"{name:>22}: {1e6 * t:6.2f}")
    print(f"relu / np.maximum: {med['fastnn.relu(x)'] / med['np.maximum(x, 0)']:.2f}x")


def main() -> None:
    global SETTLE, CLOCK
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "what", choices=["gemm", "gemm-engines", "linear", "sensitivity", "elementwise", "overhead"]
    )
    parser.add_argument("--threads", type=int, default=fastnn.get_num_threads())
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.03)
    parser.add_argument("--shapes", default="all", choices=["all", "square", "deepbench"])
    parser.add_argument("--clock", default="wall", choices=["wall", "thread"])
    parser.add_argument("--settle", type=float, default=SETTLE, help="untimed run-in, seconds")
    args = parser.parse_args()
    SETTLE = args.settle
    if args.clock == "thread":
        if args.threads != 1:
            parser.error("--clock thread measures one thread: use it with --threads 1")
        CLOCK = time.thread_time
    fastnn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    with threadpool_limits(args.threads):
        fastnn.set_num_threads(args.threads)  # re-apply to SciPy's BLAS after the limits
        if args.what == "gemm":
            bench_gemm(args, dtype, rng)
        elif args.what == "gemm-engines":
            bench_gemm(args, dtype, rng, engines_only=True)
        else:
            globals()[f"bench_{args.what}"](args, dtype, rng)


if __name__ == "__main__":
    main()
