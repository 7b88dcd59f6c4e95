"""pytest-benchmark configuration for bench/: the same cases as ``fastnn bench``.

Each test module names its op family (``FAMILY = "conv2d"``); :func:`pytest_generate_tests`
turns it into one test per (case, implementation) of the chosen suite, grouped so that
``--benchmark-group-by=group`` shows fastnn's backends and algorithms beside the peers in
one table per case.  Run (see bench/README.md)::

    env -u OPENBLAS_CORETYPE pytest bench --benchmark-only --benchmark-group-by=group

Options: ``--bench-suite quick|full|tiny`` (default quick), ``--bench-threads N``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastnn.bench.case import Case, SkipImpl, prepare
from fastnn.bench.catalog import build_cases
from fastnn.bench.peers import Environment, detect, set_threads
from fastnn.bench.timing import TimingPlan, calibrate

#: Timing per suite (pytest-benchmark's rounds come from these, see run_benchmark).
PLANS = {
    "tiny": TimingPlan(budget=0.02, repeats=3, min_sample=0.0005, min_runs=1),
    "quick": TimingPlan(budget=0.3, repeats=10, min_sample=0.003),
    "full": TimingPlan(budget=1.5, repeats=20, min_sample=0.01),
}

_ENV: Environment | None = None
_THREADS: dict[str, int | None] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastnn bench")
    group.addoption(
        "--bench-suite",
        choices=tuple(PLANS),
        default="quick",
        help="which shapes to benchmark (default: quick; full: every shape)",
    )
    group.addoption(
        "--bench-threads",
        type=int,
        default=None,
        help="threads for fastnn, PyTorch and BLAS alike (default: fastnn's)",
    )


def _environment(config: pytest.Config) -> Environment:
    """Detect the peers once per session and give every library the same threads."""
    global _ENV
    if _ENV is None:
        import fastnn

        _ENV = detect()
        threads = config.getoption("--bench-threads") or fastnn.get_num_threads()
        _THREADS.update(set_threads(threads, _ENV))
    return _ENV


def pytest_report_header(config: pytest.Config) -> list[str]:
    env = _environment(config)
    lines = ["fastnn bench threads: " + ", ".join(f"{k} {v}" for k, v in _THREADS.items())]
    lines += [f"  skipped {name}: {why}" for name, why in env.skipped().items()]
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``bench_case`` over (case, implementation) pairs of the module's family,
    case by case so that each case's arrays are made once."""
    if "bench_case" not in metafunc.fixturenames:
        return
    family = metafunc.module.FAMILY
    ops = getattr(metafunc.module, "OPS", None)
    suite = metafunc.config.getoption("--bench-suite")
    cases = build_cases(suite, _environment(metafunc.config), [family])
    pairs, ids = [], []
    for case in cases:
        if ops is not None and case.op not in ops:
            continue
        for impl in case.impls:
            pairs.append((case, impl.name))
            ids.append(f"{case.op}-{case.shape}-{impl.name}")
    metafunc.parametrize("bench_case", pairs, ids=ids)


_DATA: dict[str, Any] = {"key": None, "arrays": None}


def _arrays(case: Case) -> dict[str, Any]:
    """The case's input arrays, made once for all its implementations."""
    if _DATA["key"] != case.key:
        _DATA["key"], _DATA["arrays"] = None, None  # free the previous case's arrays first
        _DATA["arrays"] = case.data(np.random.default_rng(0))
        _DATA["key"] = case.key
    return _DATA["arrays"]


def run_benchmark(benchmark, bench_case: tuple[Case, str], config: pytest.Config) -> None:
    """Time one implementation of one case with pytest-benchmark's pedantic mode: one
    warm-up round, then as many rounds as the suite's budget allows."""
    case, name = bench_case
    impl = next(i for i in case.impls if i.name == name)
    benchmark.group = f"{case.family}: {case.op} {case.shape}"
    benchmark.extra_info.update(
        {"impl": name, "flops": case.flops, "bytes": case.bytes, "metric": case.metric}
    )
    fn = prepare(impl, _arrays(case), case.updates_inputs)
    plan = PLANS[config.getoption("--bench-suite")]
    try:  # warm-up outside the timer; also where an implementation says it skips
        calibration = calibrate(fn, plan)
    except SkipImpl as exc:
        pytest.skip(str(exc))
    benchmark.pedantic(
        fn, rounds=calibration.samples, iterations=calibration.loops, warmup_rounds=0
    )


@pytest.fixture
def bench(benchmark, request):
    """``bench(bench_case)`` times one (case, implementation) pair."""
    return lambda bench_case: run_benchmark(benchmark, bench_case, request.config)
