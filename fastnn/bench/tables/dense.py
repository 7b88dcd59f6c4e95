"""Interleaved timings of the CPU dense family against numpy / OpenBLAS.

    env -u OPENBLAS_CORETYPE fastnn bench --table dense gemm [--threads 2]
    ... gemm-engines | linear | sensitivity | elementwise | overhead   [--dtype float32]
    ... --threads 1 --clock thread     (CPU time of one thread: steadier on a busy machine)

Each round times every implementation once per case, in a new seeded random order
(fastnn.bench.timing), so machine noise hits all of them alike; the tables show the median
over rounds.  A timed block lasts at least --min-seconds and starts with an untimed run-in
of --settle seconds (default 0.15): after a call, OpenBLAS's worker threads spin for
~0.1 s and take a core from whatever runs next, so without it a block measures the
previous implementation's idle threads as much as its own work.  ``--settle 0`` shows
that cross-library cost (see README, "Threads").  Ratios are numpy's time over ours
(> 1: we are faster).  numpy's BLAS and SciPy's BLAS (used by fastnn) are limited to
--threads threads with threadpoolctl, as are fastnn's kernels (set_num_threads).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import fastnn
from fastnn.bench import shapes
from fastnn.bench.building import randn
from fastnn.bench.case import Case, Impl
from fastnn.bench.runner import run_case
from fastnn.bench.tables.common import add_clock, check_clock, medians
from fastnn.bench.timing import TimingPlan

__all__ = ["DEEPBENCH", "LINEAR_SHAPES", "SQUARE", "WHAT", "main"]

PEAK_GFLOPS = 231.0  # 2 Zen 4 cores, FP32 FMA (docs/BENCHMARKS.md)
COPY_GBS = 26.0  # STREAM-like copy on 2 threads

SQUARE = [(n, n, n, False, False) for n in (256, 512, 1024, 1536, 2048)]
#: The DeepBench and VGG fc6 products of docs/BENCHMARKS.md (fastnn.bench.shapes.GEMM):
#: (M, N, K, transpose A, transpose B).
DEEPBENCH = [
    (s.m, s.n, s.k, s.trans[0] == "T", s.trans[1] == "T")
    for s in shapes.GEMM
    if not s.name.startswith("square")
]
LINEAR_SHAPES = [
    (64, 1024, 1024),
    (128, 784, 512),
    (256, 512, 512),
    (512, 1024, 1024),
    (1024, 256, 256),
    (1024, 4096, 1024),
]
SENSITIVITY_SHAPES = [(64, 512, 512), (256, 1024, 1024), (1024, 256, 512), (1024, 1024, 1024)]
WHAT = ("gemm", "gemm-engines", "linear", "sensitivity", "elementwise", "overhead")

#: The unfused numpy expressions of f'(u) * (delta @ W).
UNFUSED = {
    "relu": lambda d, w, u: (u > 0) * (d @ w),
    "sigmoid": lambda d, w, u: (lambda s: s * (1 - s))(1 / (1 + np.exp(-u))) * (d @ w),
    "tanh": lambda d, w, u: (1 - np.tanh(u) ** 2) * (d @ w),
}

Calls = dict[str, Callable[[dict], Any]]


def dense_case(
    op: str, shape: str, arrays: dict[str, tuple[int, ...]], calls: Calls, dtype: Any
) -> Case:
    """A case of standard-normal ``arrays`` (name -> shape) and one implementation per
    entry of ``calls`` (name -> ``call(arrays)``)."""

    def data(rng: np.random.Generator) -> dict[str, Any]:
        return {name: randn(rng, dims, dtype) for name, dims in arrays.items()}

    impls = tuple(Impl(name, call) for name, call in calls.items())
    return Case("dense", op, shape, dict(arrays), 0.0, 0.0, data, impls)


def gemm_case(m: int, n: int, k: int, ta: bool, tb: bool, dtype: Any, engines: bool) -> Case:
    """numpy and fastnn.gemm (and, with ``engines``, fastnn's blocked and split-BLAS
    engines) on op(A) (m, k) @ op(B) (k, n)."""
    calls: Calls = {
        "numpy": lambda d: (d["a"].T if ta else d["a"]) @ (d["b"].T if tb else d["b"]),
        "fastnn": lambda d: fastnn.gemm(d["a"], d["b"], trans_a=ta, trans_b=tb),
    }
    if engines:
        from fastnn._threads import limit_blas_threads
        from fastnn.kernels.cpu import gemm as kernels

        threads = fastnn.get_num_threads()

        def split_blas(d: dict) -> Any:  # one-thread BLAS calls on blocks of the result
            with limit_blas_threads():
                return kernels.blas(d["a"], d["b"], None, 1.0, 0.0, ta, tb, threads)

        calls["blocked"] = lambda d: kernels.blocked(
            d["a"], d["b"], None, 1, 0, ta, tb, 0, None, None, threads
        )
        calls["blas"] = split_blas
    arrays = {"a": (k, m) if ta else (m, k), "b": (n, k) if tb else (k, n)}
    return dense_case("gemm", f"{m}x{n}x{k}", arrays, calls, dtype)


def linear_case(batch: int, n_in: int, n_out: int, dtype: Any) -> Case:
    """np.maximum(x @ w.T + b, 0) against fastnn.linear(..., activation="relu")."""
    calls: Calls = {
        "numpy": lambda d: np.maximum(d["x"] @ d["w"].T + d["b"], 0),
        "fastnn": lambda d: fastnn.linear(d["x"], d["w"], d["b"], activation="relu"),
    }
    arrays = {"x": (batch, n_in), "w": (n_out, n_in), "b": (n_out,)}
    return dense_case("linear", f"{batch}x{n_in}->{n_out}", arrays, calls, dtype)


def sensitivity_case(act: str, rows: int, n_next: int, n: int, dtype: Any) -> Case:
    """The unfused numpy f'(u) * (delta @ W) against fastnn.sensitivity."""
    calls: Calls = {
        "numpy": lambda d: UNFUSED[act](d["d"], d["w"], d["u"]),
        "fastnn": lambda d: fastnn.sensitivity(d["d"], d["w"], d["u"], act),
    }
    arrays = {"d": (rows, n_next), "w": (n_next, n), "u": (rows, n)}
    return dense_case("sensitivity", f"{act} {rows}x{n_next}x{n}", arrays, calls, dtype)


def elementwise_case(n: int, dtype: Any) -> tuple[Case, dict[str, int]]:
    """Activations and softmax on ``n`` elements beside a copy, and the bytes each
    implementation reads and writes."""
    cols = 1000 if n % 1000 == 0 else 1024
    calls: Calls = {
        "copy (np)": lambda d: d["x"].copy(),
        "relu": lambda d: fastnn.relu(d["x"]),
        "sigmoid": lambda d: fastnn.sigmoid(d["x"]),
        "tanh": lambda d: fastnn.tanh(d["x"]),
        "relu backward": lambda d: fastnn.activation_backward("relu", d["g"], d["x"]),
        f"softmax (rows {cols})": lambda d: fastnn.softmax(d["x"].reshape(-1, cols), 1),
        f"log_softmax (rows {cols})": lambda d: fastnn.log_softmax(d["x"].reshape(-1, cols), 1),
        "softmax (dim 0)": lambda d: fastnn.softmax(d["x"].reshape(-1, cols), 0),
        "np.maximum(x, 0)": lambda d: np.maximum(d["x"], 0),
    }
    size = np.dtype(dtype).itemsize * n
    moved = {name: (3 if name == "relu backward" else 2) * size for name in calls}
    return dense_case("elementwise", str(n), {"x": (n,), "g": (n,)}, calls, dtype), moved


def overhead_case(dtype: Any) -> Case:
    """Per-call time of a few ops on 16 elements."""
    calls: Calls = {
        "np.maximum(x, 0)": lambda d: np.maximum(d["x"], 0),
        "fastnn.relu(x)": lambda d: fastnn.relu(d["x"]),
        "np.tanh(x)": lambda d: np.tanh(d["x"]),
        "fastnn.tanh(x)": lambda d: fastnn.tanh(d["x"]),
        "fastnn.softmax(4x4)": lambda d: fastnn.softmax(d["rows"]),
    }
    return dense_case("overhead", "16", {"x": (16,), "rows": (4, 4)}, calls, dtype)


def _measure(case: Case, plan: TimingPlan) -> dict[str, float]:
    """Medians of every implementation of ``case``; each block starts with the run-in."""
    every = [impl.name for impl in case.impls]
    return medians(run_case(case, plan, spinning=every).measurements, case.key)


def _ms_ratio(med: dict) -> str:
    """numpy ms, fastnn ms and their ratio, as table cells."""
    ratio = med["numpy"] / med["fastnn"]
    return f"{1e3 * med['numpy']:>10.3f} {1e3 * med['fastnn']:>10.3f} {ratio:>6.2f}"


def bench_gemm(args, dtype, plan, engines: bool = False) -> None:
    from fastnn.kernels.cpu import gemm as kernels

    print(f"gemm {np.dtype(dtype)}, threads={args.threads}, kernel variant "
          f"{kernels.variant_name()}")  # fmt: skip
    print(f"{'M':>6} {'N':>6} {'K':>7} op  numpy GF/s   fastnn GF/s  %peak  ratio", end="")
    print("   blocked  blas" if engines else "")
    cases = {"all": SQUARE + DEEPBENCH, "square": SQUARE, "deepbench": DEEPBENCH}[args.shapes]
    for m, n, k, ta, tb in cases:
        med = _measure(gemm_case(m, n, k, ta, tb, dtype, engines), plan)
        gf = {name: 2 * m * n * k / t / 1e9 for name, t in med.items()}
        flags = ("T" if ta else "N") + ("T" if tb else "N")
        line = (
            f"{m:>6} {n:>6} {k:>7} {flags} {gf['numpy']:>10.1f} {gf['fastnn']:>12.1f} "
            f"{100 * gf['fastnn'] / PEAK_GFLOPS:>6.0f} {med['numpy'] / med['fastnn']:>6.2f}"
        )
        if engines:
            line += f" {med['numpy'] / med['blocked']:>9.2f} {med['numpy'] / med['blas']:>5.2f}"
        print(line, flush=True)


def bench_linear(args, dtype, plan) -> None:
    print(f"linear + relu {np.dtype(dtype)}, threads={args.threads}: "
          "np.maximum(x @ w.T + b, 0) vs linear")  # fmt: skip
    print(f"{'batch':>6} {'in':>5} {'out':>5}   numpy ms  fastnn ms  ratio")
    for batch, n_in, n_out in LINEAR_SHAPES:
        med = _measure(linear_case(batch, n_in, n_out, dtype), plan)
        print(f"{batch:>6} {n_in:>5} {n_out:>5} " + _ms_ratio(med), flush=True)


def bench_sensitivity(args, dtype, plan) -> None:
    print(f"sensitivity {np.dtype(dtype)}, threads={args.threads}: f'(u) * (delta @ W), "
          "numpy vs fused")  # fmt: skip
    print(f"{'act':>8} {'N':>6} {'n_next':>6} {'n':>6}   numpy ms  fastnn ms  ratio")
    for act in ("relu", "sigmoid", "tanh"):
        for rows, n_next, n in SENSITIVITY_SHAPES:
            med = _measure(sensitivity_case(act, rows, n_next, n, dtype), plan)
            print(f"{act:>8} {rows:>6} {n_next:>6} {n:>6} " + _ms_ratio(med), flush=True)


def bench_elementwise(args, dtype, plan, n: int = 1 << 24) -> None:
    """``n`` elements (default 64 MiB of float32: twice the L3)."""
    case, moved = elementwise_case(n, dtype)
    print(f"elementwise {np.dtype(dtype)}, {n} elements, threads={args.threads}")
    print(f"GB/s counts the bytes read and written; copy ~{COPY_GBS} GB/s")
    med = _measure(case, plan)
    for name, nbytes in moved.items():
        gbs = nbytes / med[name] / 1e9
        share = 100 * gbs / COPY_GBS
        print(f"{name:>26}: {1e3 * med[name]:8.2f} ms {gbs:6.1f} GB/s  {share:5.0f}% of copy")


def bench_overhead(args, dtype, plan) -> None:
    print("per-call time on 16 elements (us)")
    med = _measure(overhead_case(dtype), plan)
    for name, t in med.items():
        print(f"{name:>22}: {1e6 * t:6.2f}")
    print(f"relu / np.maximum: {med['fastnn.relu(x)'] / med['np.maximum(x, 0)']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and print the chosen table; returns the exit status."""
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(
        prog="fastnn bench --table dense", description=__doc__.split("\n")[0]
    )
    parser.add_argument("what", choices=WHAT)
    parser.add_argument("--threads", type=int, default=fastnn.get_num_threads())
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.03)
    parser.add_argument("--shapes", default="all", choices=["all", "square", "deepbench"])
    add_clock(parser)
    parser.add_argument("--settle", type=float, default=0.15, help="untimed run-in, seconds")
    args = parser.parse_args(argv)
    check_clock(parser, args)
    plan = TimingPlan.rounds(
        args.rounds, min_sample=args.min_seconds, run_in=args.settle, clock=args.clock
    )
    dtype = np.dtype(args.dtype).type
    with threadpool_limits(args.threads):
        fastnn.set_num_threads(args.threads)  # also SciPy's BLAS, after the limits
        if args.what in ("gemm", "gemm-engines"):
            bench_gemm(args, dtype, plan, engines=args.what == "gemm-engines")
        else:
            globals()[f"bench_{args.what}"](args, dtype, plan)
    return 0
