"""Fair timing of several implementations of one op, in one process.

1. Warm-up: each implementation runs once (caches, page faults, thread pools, JIT
   compilation); that call is never counted.
2. Calibration: a second call, timed (and a third when short: the faster counts).  A
   call shorter than ``min_sample`` is repeated ``loops`` times per sample, so that every
   sample is long enough for the clock; a longer one is the first sample.
3. Interleaved blocks: the implementations take turns, one sample each per round, in a
   new (seeded) random order every round, with a pause of ``settle`` seconds
   between blocks (a library's OpenMP threads spin for a while after a call and would
   slow the next implementation's first call); a burst of load from another process then
   hits every implementation alike.  Not a rotation: a rotation keeps each
   implementation's successor fixed, and the successor pays for what its predecessor
   leaves behind (memory handed back to the OS, so fresh page faults).
4. Each implementation gets as many samples as fit in ``budget`` seconds, at least
   ``min_runs`` and at most ``repeats``.
5. Quiet threads: a thread pool keeps spinning for a while after a call (OpenBLAS's,
   numpy's ``@``, ~0.1 s; libgomp's, torch's and fastnn's, ~5-10 ms), and on a machine
   with as many cores as threads it takes a core from whatever runs next: a 2-thread
   region then waits at each barrier for its member (samples 10-30x slower).  A block
   that follows another implementation waits, sleeping, until no other thread of this
   process has been running for two looks in a row (at most ``quiet_max`` seconds;
   /proc/self/task tells), then runs its implementation untimed for ``warm_in`` seconds:
   threads and virtual CPUs that went to sleep meanwhile take a few calls to wake (the
   first call after 0.1 s idle measured 2-20x its usual time on a 2-vCPU VM).  Each
   sample then measures its own implementation, not the previous one's idle threads.
   Where /proc cannot tell, a block that follows one of the implementations named
   ``spinning`` starts with ``run_in`` seconds of untimed calls instead.

Results are seconds per call: the median of the samples and the best one.  The clock is
the wall clock, or (``clock="thread"``) the CPU time of the calling thread, which time
slices lost to other processes do not inflate: for single-threaded runs on a busy machine.
:meth:`TimingPlan.rounds` makes a plan of a fixed number of samples (the benchmark tables'
``--rounds``) instead of a time budget.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastnn.bench.case import SkipImpl

__all__ = ["CLOCKS", "Calibration", "Measurement", "TimingPlan", "calibrate", "measure"]

#: The clocks a plan can read: elapsed time, or the calling thread's CPU time.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread": time.thread_time}


@dataclass(frozen=True)
class TimingPlan:
    """How long and how often to measure.  ``budget``: seconds per implementation and
    case; ``repeats``: the most samples, ``min_runs`` the fewest; ``min_sample``: the
    shortest sample; ``settle``: the pause between two blocks, in seconds; ``run_in``:
    untimed calls, in seconds, before a block that follows a spinning implementation;
    ``clock``: "wall" or "thread" (see :data:`CLOCKS`); ``quiet_max``: the longest wait
    for the previous implementation's threads to stop running, ``warm_in``: untimed
    calls, in seconds, after that wait (rule 5)."""

    budget: float = 0.5
    repeats: int = 7
    min_sample: float = 0.005
    settle: float = 0.001
    min_runs: int = 3
    run_in: float = 0.12
    clock: str = "wall"
    quiet_max: float = 0.3
    warm_in: float = 0.02

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {tuple(CLOCKS)}, got {self.clock!r}")

    @classmethod
    def rounds(cls, rounds: int, **options: Any) -> TimingPlan:
        """A plan of exactly ``rounds`` samples per implementation (no time budget);
        ``options`` set the other fields (``min_sample`` defaults to 0: one call per
        sample; ``warm_in`` to 0: no untimed calls but the warm-up)."""
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {rounds}")
        options.setdefault("min_sample", 0.0)
        options.setdefault("warm_in", 0.0)  # exactly the calls asked for (long ones)
        return cls(budget=math.inf, repeats=rounds, min_runs=rounds, **options)


@dataclass
class Measurement:
    """Seconds per call of one implementation on one case (or why there are none)."""

    times: list[float] = field(default_factory=list)
    loops: int = 1
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.times) and self.error is None and self.skipped is None

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else math.nan

    @property
    def best(self) -> float:
        return min(self.times) if self.times else math.nan

    @property
    def runs(self) -> int:
        return len(self.times)


def _timed(fn: Callable[[], Any], loops: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(loops):
        fn()
    return (clock() - start) / loops


@dataclass(frozen=True)
class Calibration:
    """What one warm-up and one timed call tell about an implementation: seconds per
    call, calls per sample (``loops``) and how many samples the plan wants."""

    per_call: float
    loops: int
    samples: int


def calibrate(fn: Callable[[], Any], plan: TimingPlan) -> Calibration:
    """Warm ``fn`` up (one untimed call), time one call, and size its samples by ``plan``
    (rules 1, 2 and 4).  Also used by bench/conftest.py, where pytest-benchmark then
    takes the samples."""
    clock = CLOCKS[plan.clock]
    _timed(fn, 1, clock)
    per_call = max(_timed(fn, 1, clock), 1e-9)
    if per_call < plan.min_sample:  # one slow call (a thread waking) must not set loops
        per_call = max(min(per_call, _timed(fn, 1, clock)), 1e-9)
    loops = 1 if per_call >= plan.min_sample else math.ceil(plan.min_sample / per_call)
    fits = plan.repeats if math.isinf(plan.budget) else int(plan.budget / (per_call * loops))
    return Calibration(per_call, loops, max(plan.min_runs, 1, min(plan.repeats, fits)))


def _warm_up(fn: Callable[[], Any], plan: TimingPlan) -> tuple[Measurement, int]:
    """Warm ``fn`` up and calibrate it; return its measurement so far (the calibration
    call, when it is long enough to be a sample) and how many samples it still needs."""
    c = calibrate(fn, plan)
    if c.loops == 1:  # the calibration call is long enough to be the first sample
        return Measurement(times=[c.per_call]), c.samples - 1
    return Measurement(loops=c.loops), c.samples


#: Seconds between two looks at this process's threads while waiting for quiet.
QUIET_POLL = 0.001


def _wait_for_quiet(limit: float) -> bool:
    """Sleep until no other thread of this process runs (fastnn._threads)."""
    from fastnn._threads import wait_for_own_quiet

    return wait_for_own_quiet(limit, QUIET_POLL)


def _run_in(fn: Callable[[], Any], seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn()


def measure(
    impls: Mapping[str, Callable[[], Any]],
    plan: TimingPlan,
    errors: tuple[type[BaseException], ...] = (Exception,),
    spinning: Collection[str] = (),
) -> dict[str, Measurement]:
    """Time every zero-argument callable in ``impls`` by the rules of this module.

    An implementation that raises :class:`SkipImpl` gets a Measurement with ``skipped``
    set, one that raises one of ``errors`` one with ``error`` set (and no times); the
    others are still measured.  ``spinning``: the implementations whose thread pool
    keeps spinning after a call (rule 5).
    """
    results: dict[str, Measurement] = {}
    needed: dict[str, int] = {}
    for name, fn in impls.items():
        try:
            results[name], needed[name] = _warm_up(fn, plan)
        except SkipImpl as exc:
            results[name], needed[name] = Measurement(skipped=str(exc)), 0
        except errors as exc:
            results[name] = Measurement(error=f"{type(exc).__name__}: {exc}")
            needed[name] = 0
    order = [name for name in impls if needed[name] > 0]
    rounds = max(needed.values(), default=0)
    previous = None
    clock = CLOCKS[plan.clock]
    shuffler = random.Random(0)  # seeded: the same orders on every run
    for r in range(rounds):
        shuffler.shuffle(order)
        for name in order:
            if needed[name] <= r or results[name].error:
                continue
            time.sleep(plan.settle)
            try:
                if previous is not None and previous != name:
                    if _wait_for_quiet(plan.quiet_max):
                        _run_in(impls[name], plan.warm_in)
                    elif previous in spinning:
                        _run_in(impls[name], plan.run_in)
                results[name].times.append(_timed(impls[name], results[name].loops, clock))
            except errors as exc:
                results[name].error = f"{type(exc).__name__}: {exc}"
            previous = name
    return results
