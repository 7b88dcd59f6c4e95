"""GPU smoke test: every op on both GPU backends against the CPU backend, with timings.

    fastnn bench --gpu-smoke             # every op, medium shapes, 20 timed runs each
    fastnn bench --gpu-smoke --quick     # small shapes, 5 timed runs
    python bench/gpu_smoke.py [--quick]  # the same

For each op of the public API and each GPU backend that can run here ("cupy",
"numba-cuda"), the op runs on float32 device arrays and its result is compared with
``backend="cpu"`` on the host copies: the table shows the largest error relative to the
largest value of the CPU result, and PASS or FAIL.  Timings are medians of
fastnn.bench.timing's interleaved blocks, the GPU synchronised inside every timed call,
next to a baseline where one exists: cuBLAS (cupy.matmul) for gemm and linear, PyTorch on
CUDA (cuDNN) for convolution and pooling when torch with CUDA is installed; "speed-up" is
the baseline's time over fastnn's.  With a CUDA jax, a jitted fastnn.jax step (conv, relu,
max-pool, value and gradients) runs on XLA's buffers and stream against XLA's own ops.
The exit status is 1 if any op failed or raised.

Without a GPU it prints why (fastnn.backends()) and "skipped: no GPU", and exits 0.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import fastnn
from fastnn.bench.case import FASTNN_PREFIX, Case, prepare, to_numpy
from fastnn.bench.tables.gpu_smoke_cases import GPU_BACKENDS, build_cases
from fastnn.bench.tables.gpu_smoke_jax import jax_rows
from fastnn.bench.timing import TimingPlan, measure

__all__ = ["Row", "build_cases", "gpu_backends", "main", "max_relative_error", "run_case"]


def gpu_backends() -> dict[str, str]:
    """{backend: description} of the GPU backends that run on a real GPU here."""
    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
    found = {}
    for name, (available, text) in fastnn.backends().items():
        if name in GPU_BACKENDS and available and not (name == "numba-cuda" and simulated):
            found[name] = text
    return found


def _arrays(value: Any) -> list[np.ndarray]:
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    return [] if value is None else [np.asarray(value)]


def max_relative_error(got: Any, want: Any) -> float:
    """Largest |got - want| over max(1, max |want|), across every output array; inf if
    the structure or a shape differs.  NaN in the same places counts as equal."""
    got_arrays, want_arrays = _arrays(got), _arrays(want)
    if len(got_arrays) != len(want_arrays):
        return math.inf
    worst = 0.0
    for g, w in zip(got_arrays, want_arrays):
        if g.shape != w.shape:
            return math.inf
        g, w = g.astype(np.float64), w.astype(np.float64)
        same_nan = np.isnan(g) & np.isnan(w)
        diff = np.where(same_nan, 0.0, np.abs(g - w))
        if np.isnan(diff).any():
            return math.inf
        finite = w[np.isfinite(w)]
        scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
        worst = max(worst, float(diff.max()) / scale if diff.size else 0.0)
    return worst


@dataclass
class Row:
    label: str
    backend: str
    error: float
    passed: bool
    seconds: float | None = None
    baseline: str = ""
    baseline_seconds: float | None = None
    note: str = ""


def run_case(case: Case, want: Any, plan: TimingPlan) -> list[Row]:
    """Run each GPU backend of ``case`` once and compare with the CPU result ``want``,
    then time the backends that ran and the case's baseline together."""
    data = case.data(np.random.default_rng(0))
    tolerance = case.params["tolerance"]
    rows: dict[str, Row] = {}
    timed: dict[str, Callable[[], Any]] = {}
    baseline = None
    for impl in case.impls:
        if not impl.name.startswith(FASTNN_PREFIX):
            baseline = impl
            continue
        backend = impl.name[len(FASTNN_PREFIX) : -1]  # fastnn[<backend>]
        try:
            call = prepare(impl, data)
            got = to_numpy(call())
        except Exception as exc:  # a missing or broken op is a failure, not a crash
            note = f"{type(exc).__name__}: {exc}"
            rows[impl.name] = Row(case.shape, backend, math.inf, False, note=note)
            continue
        error = max_relative_error(got, want)
        rows[impl.name] = Row(case.shape, backend, error, error <= tolerance)
        timed[impl.name] = call
    if baseline is not None and timed:
        try:
            timed[baseline.name] = prepare(baseline, data)
        except Exception as exc:  # e.g. the baseline's library cannot use this GPU
            baseline = None
            print(f"{case.shape}: baseline not timed: {type(exc).__name__}: {exc}")
    measured = measure(timed, plan)
    for name, row in rows.items():
        m = measured.get(name)
        if m is not None:
            row.seconds = m.median if m.ok else None
            row.note = m.error or ""
        if baseline is not None and measured[baseline.name].ok:
            row.baseline, row.baseline_seconds = baseline.name, measured[baseline.name].median
    return list(rows.values())


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:9.3f}"


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'op':32} {'backend':10} {'max rel err':>11} {'result':6} {'ms':>9} "
        f"{'baseline':>9} {'ms':>9} {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = "-"
        if r.seconds and r.baseline_seconds:
            ratio = f"{r.baseline_seconds / r.seconds:7.2f}x"
        result = "PASS" if r.passed else "FAIL"
        line = (
            f"{r.label:32} {r.backend:10} {r.error:11.2e} {result:6} {_ms(r.seconds):>9} "
            f"{r.baseline or '-':>9} {_ms(r.baseline_seconds):>9} {ratio:>8}"
        )
        print(line + (f"  {r.note}" if r.note else ""))


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the smoke test; 1 if an op failed, else 0."""
    parser = argparse.ArgumentParser(
        prog="fastnn bench --gpu-smoke", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small shapes, 5 timed runs")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (for tests)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per op")
    parser.add_argument("--backend", choices=GPU_BACKENDS, help="only this GPU backend")
    options = parser.parse_args(argv)
    if options.repeats is not None and options.repeats < 1:
        parser.error("--repeats must be at least 1")
    backends = gpu_backends()
    if options.backend:
        backends = {k: v for k, v in backends.items() if k == options.backend}
    if not backends:
        for name, (available, text) in fastnn.backends().items():
            print(f"{name:11} {'available' if available else 'unavailable'}: {text}")
        print("skipped: no GPU")
        return 0
    for name, text in backends.items():
        print(f"{name}: {text}")
    repeats = options.repeats or (5 if options.quick or options.tiny else 20)
    plan = TimingPlan.rounds(repeats, settle=0.0)
    rows = []
    size = "tiny" if options.tiny else "quick" if options.quick else "full"
    for case in build_cases(size, backends):
        data = case.data(np.random.default_rng(0))
        want = getattr(fastnn, case.op)(*data["args"], backend="cpu", **data["kwargs"])
        rows += run_case(case, want, plan)
    extra, reason = jax_rows(size, plan, Row, max_relative_error)
    rows += extra
    print_table(rows)
    if reason:
        print(f"fastnn.jax on the GPU: skipped ({reason})")
    failed = [r for r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed (float32, vs backend='cpu')")
    return 1 if failed else 0
