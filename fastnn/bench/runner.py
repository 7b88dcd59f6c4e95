"""Run a list of cases: make each case's arrays, prepare every implementation, time them
together (:mod:`fastnn.bench.timing`), free the arrays, next case.  On a terminal a
progress bar (tqdm, when installed) shows the case being measured; elsewhere (a log file,
a pipe, CI) one short plain line per case does, since a bar's carriage-return redraws would
make one line of many kilobytes there.

``run_cases(..., between=fn)`` calls ``fn(after, before)`` where the family changes (and
after the last case, with ``before=None``): the CLI measures the roofs there, so that a
family measured while the machine got busier is flagged (fastnn.bench.report)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastnn.bench.case import REFERENCE, Case, SkipImpl, prepare
from fastnn.bench.timing import Measurement, TimingPlan, measure

__all__ = ["CaseResult", "run_case", "run_cases"]


@dataclass
class CaseResult:
    """A case and the measurement of each of its implementations (in the case's order)."""

    case: Case
    measurements: dict[str, Measurement]
    seconds: float = 0.0  # wall time of the whole case: data, warm-ups, samples


#: Families whose NumPy / SciPy peers call a threaded BLAS (matmul, tensordot).
BLAS_FAMILIES = frozenset({"gemm", "linear", "sensitivity", "conv1d", "conv2d", "train"})


def _spinning(case: Case, also: Collection[str] = ()) -> frozenset[str]:
    """The implementations of ``case`` that leave OpenBLAS threads spinning after a call,
    plus those named in ``also`` (e.g. "torch", whose OpenMP pool spins too)."""
    names = {i.name for i in case.impls}
    extra = names & set(also)
    family = case.params.get("op_family", case.family)  # a sweep case keeps its op's
    if family not in BLAS_FAMILIES:
        return frozenset(extra)
    return frozenset(extra | (names & {"numpy", "scipy", REFERENCE}))


def run_case(
    case: Case, plan: TimingPlan, seed: int = 0, spinning: Collection[str] = ()
) -> CaseResult:
    """Time every implementation of ``case`` on the same data; ``spinning`` names more
    implementations whose threads keep spinning after a call (see fastnn.bench.timing)."""
    start = time.perf_counter()
    try:
        data = case.data(np.random.default_rng(seed))
    except Exception as exc:  # a broken data function must not end the whole run
        why = f"making the inputs failed: {type(exc).__name__}: {exc}"
        measurements = {i.name: Measurement(error=why) for i in case.impls}
        return CaseResult(case, measurements, time.perf_counter() - start)
    callables: dict[str, Callable[[], Any]] = {}
    failed: dict[str, Measurement] = {}
    for impl in case.impls:
        try:
            callables[impl.name] = prepare(impl, data, case.updates_inputs)
        except SkipImpl as exc:
            failed[impl.name] = Measurement(skipped=str(exc))
        except Exception as exc:  # e.g. the GPU runs out of memory while copying
            failed[impl.name] = Measurement(error=f"{type(exc).__name__}: {exc}")
    measured = measure(callables, plan, spinning=_spinning(case, spinning))
    del callables, data  # free the arrays before the next case allocates its own
    measurements = {i.name: measured.get(i.name) or failed[i.name] for i in case.impls}
    return CaseResult(case, measurements, time.perf_counter() - start)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _progress(cases: Sequence[Case], enabled: bool) -> Iterable[Case]:
    if not enabled:
        return cases
    if not _is_terminal(sys.stderr):
        return _plain_progress(cases)
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the "bench" extra; fall back to plain lines
        return _plain_progress(cases)
    return tqdm(cases, desc="bench", unit="case", file=sys.stderr, dynamic_ncols=True)


def _plain_progress(cases: Sequence[Case]) -> Iterable[Case]:
    """One line per case on stderr, ``[ 3/69] family/op/shape``, as the case starts."""
    digits = len(str(len(cases)))
    for i, case in enumerate(cases, 1):
        sys.stdout.flush()  # keeps the order when stdout and stderr go to one file
        print(f"[{i:>{digits}}/{len(cases)}] {case.key}", file=sys.stderr, flush=True)
        yield case


def run_cases(
    cases: Sequence[Case],
    plan: TimingPlan,
    seed: int = 0,
    progress: bool = True,
    spinning: Collection[str] = (),
    between: Callable[[str, str | None], None] | None = None,
) -> list[CaseResult]:
    """Run every case in order, with a progress bar when ``progress``.  ``between(after,
    before)``, when given, is called between two cases of different families (the family
    just finished, the next one) and once after the last case (``before=None``)."""
    results = []
    bar = _progress(cases, progress)
    previous: str | None = None
    for case in bar:
        if between is not None and previous is not None and case.family != previous:
            between(previous, case.family)
        previous = case.family
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(case.key, refresh=True)
        results.append(run_case(case, plan, seed, spinning))
    if between is not None and previous is not None:
        between(previous, None)
    return results
