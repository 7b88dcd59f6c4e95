"""The timing harness and the roofline measurement: structure, not speed (no timed
assertions)."""

from __future__ import annotations

import math

import pytest

from fastnn.bench import shapes
from fastnn.bench.case import SkipImpl
from fastnn.bench.roofline import Roofline, measure_bandwidth, measure_roofline, measure_sgemm
from fastnn.bench.timing import TimingPlan, measure

PLAN = TimingPlan(budget=0.01, repeats=4, min_sample=0.0005, settle=0.0, min_runs=1)


def test_every_implementation_is_warmed_up_then_sampled_in_interleaved_blocks():
    calls: list[str] = []
    impls = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    results = measure(impls, PLAN)
    for name in impls:
        m = results[name]
        assert m.ok and 1 <= m.runs <= PLAN.repeats
        assert m.loops >= 1
        assert m.best <= m.median
    # warm-up and calibration (two timed calls when short): three calls each, in order
    assert calls[:9] == ["a", "a", "a", "b", "b", "b", "c", "c", "c"]
    # then blocks of calls alternate between implementations
    blocks = [calls[9]]
    for name in calls[10:]:
        if name != blocks[-1]:
            blocks.append(name)
    assert len(blocks) >= 3 and set(blocks[:3]) == {"a", "b", "c"}


def test_errors_and_skips_are_recorded_and_the_others_still_measured():
    def broken():
        raise RuntimeError("kernel exploded")

    def not_here():
        raise SkipImpl("too much memory")

    results = measure({"ok": lambda: None, "broken": broken, "skip": not_here}, PLAN)
    assert results["ok"].ok
    assert not results["broken"].ok and "kernel exploded" in results["broken"].error
    assert results["skip"].skipped == "too much memory" and not results["skip"].ok
    assert math.isnan(results["skip"].median)


def test_roofline_measurements_are_positive():
    assert measure_sgemm(128, repeats=1) > 0
    assert measure_bandwidth(4, threads=1, repeats=1) > 0
    assert measure_bandwidth(4, threads=2, repeats=1) > 0
    roof = measure_roofline(2, gemm_size=128, copy_mbytes=4, repeats=1)
    assert roof.gflops > 0 and roof.gbps > 0 and roof.threads == 2


def test_roofline_model():
    roof = Roofline(gflops=200.0, gbps=25.0, threads=2, gemm_size=2048, copy_mbytes=256)
    assert roof.balance == pytest.approx(8.0)
    assert roof.attainable(1.0) == pytest.approx(25.0)  # bandwidth-bound
    assert roof.attainable(100.0) == pytest.approx(200.0)  # compute-bound
    # 4e9 flop and 0.25e9 bytes: the compute floor (20 ms) beats the memory one (10 ms)
    assert roof.fraction(4e9, 0.25e9, 0.04) == pytest.approx(0.5)
    # 1e6 flop and 2.5e9 bytes: the memory floor (100 ms) dominates
    assert roof.fraction(1e6, 2.5e9, 0.1) == pytest.approx(1.0)


def test_pick_cuts_batches_in_the_quick_suite_and_keeps_full_shapes():
    full = shapes.pick("full", shapes.CONV2D, shapes.CONV2D_QUICK, shapes.CONV2D_TINY)
    assert len(full) == len(shapes.CONV2D)
    quick = dict(shapes.pick("quick", shapes.CONV2D, shapes.CONV2D_QUICK, shapes.CONV2D_TINY))
    assert "R50-res2-3x3/N2" in quick and quick["R50-res2-3x3/N2"].n == 2
    assert quick["LeNet5-C1"].n == 128
    names = {s.name for s in shapes.CONV2D}
    assert all(name.split("/")[0] in names for name in quick)
    with pytest.raises(ValueError, match="suite"):
        shapes.pick("huge", shapes.CONV2D, {}, ())


def test_every_quick_name_exists_in_its_full_table():
    tables = [
        (shapes.CONV2D, shapes.CONV2D_QUICK),
        (shapes.CONV2D, shapes.CONV2D_BACKWARD_QUICK),
        (shapes.CONV1D, shapes.CONV1D_QUICK),
        (shapes.CONV1D, shapes.CONV1D_BACKWARD_QUICK),
        (shapes.GEMM, shapes.GEMM_QUICK),
        (shapes.LINEAR, shapes.LINEAR_QUICK),
        (shapes.MLP, shapes.MLP_QUICK),
        (shapes.POOL, shapes.POOL_QUICK),
        (shapes.ELEMENTWISE, shapes.ELEMENTWISE_QUICK),
        (shapes.ROWS, shapes.ROWS_QUICK),
        (shapes.LENET, shapes.LENET_QUICK),
    ]
    for full, quick in tables:
        names = set(full) if isinstance(full, dict) else {s.name for s in full}
        assert set(quick) <= names, set(quick) - names


def test_min_runs_is_kept_even_when_the_budget_is_spent():
    plan = TimingPlan(budget=1e-9, repeats=10, min_sample=0.0, settle=0.0, min_runs=3)
    results = measure({"slow": lambda: sum(range(1000))}, plan)
    assert results["slow"].runs == 3 and results["slow"].loops == 1


def _counters(names):
    calls = dict.fromkeys(names, 0)

    def counter(name):
        def fn():
            calls[name] += 1

        return fn

    return calls, {name: counter(name) for name in names}


def test_a_block_after_another_implementation_waits_for_quiet_then_warms_up(monkeypatch):
    from fastnn.bench import timing

    waits = []
    real_wait = timing._wait_for_quiet
    monkeypatch.setattr(timing, "_wait_for_quiet", lambda limit: waits.append(limit) or True)
    calls, impls = _counters(("blas", "ours"))
    plan = TimingPlan(budget=1.0, repeats=3, min_sample=0.0, min_runs=3, warm_in=0.01, run_in=5.0)
    measured = measure(impls, plan, spinning={"blas"})
    for name in impls:  # one warm-up call, the calibration call is the first sample
        assert measured[name].runs == 3
        assert calls[name] - 1 - 3 > 10  # 0.01 s of a no-op after each switch
    assert len(waits) >= 2 and set(waits) == {plan.quiet_max}  # run_in (5 s) not used
    assert real_wait(0.05) in (True, False)  # sleeps at most about the limit


def test_without_proc_a_block_after_a_spinning_implementation_runs_in(monkeypatch):
    from fastnn.bench import timing

    monkeypatch.setattr(timing, "_wait_for_quiet", lambda limit: False)
    calls, impls = _counters(("blas", "ours"))
    plan = TimingPlan(budget=1.0, repeats=3, min_sample=0.0, min_runs=3, run_in=0.02)
    measured = measure(impls, plan, spinning={"blas"})
    assert measured["ours"].runs == 3 and measured["blas"].runs == 3
    run_in_calls = calls["ours"] - 1 - measured["ours"].runs
    assert run_in_calls > 100  # 0.02 s of a no-op, at least once
    assert calls["blas"] == 1 + measured["blas"].runs  # nothing spins before "blas"

    calls.update(blas=0, ours=0)
    measure(impls, plan)
    assert calls["ours"] == 1 + 3  # no run-in without a spinning peer


def test_waiting_for_quiet_sees_this_process_threads():
    import threading
    import time

    from fastnn.bench.timing import _wait_for_quiet

    stop = time.perf_counter() + 0.15

    def spin():
        while time.perf_counter() < stop:
            pass

    worker = threading.Thread(target=spin)
    worker.start()
    start = time.perf_counter()
    observed = _wait_for_quiet(1.0)
    waited = time.perf_counter() - start
    worker.join()
    if observed:  # Linux: /proc/self/task shows the spinning thread running
        assert waited >= 0.1
    assert _wait_for_quiet(1.0) in (True, False)


def test_run_cases_calls_between_where_the_family_changes_and_at_the_end():
    from fastnn.bench.case import Case, Impl
    from fastnn.bench.runner import run_cases

    def case(family: str, shape: str) -> Case:
        impl = Impl("numpy", lambda arrays: None)
        return Case(family, "op", shape, {}, 1.0, 1.0, lambda rng: {}, (impl,))

    cases = [case("gemm", "a"), case("gemm", "b"), case("pool", "c"), case("loss", "d")]
    calls = []
    plan = TimingPlan(budget=0.0, repeats=1, min_sample=0.0, settle=0.0, min_runs=1)
    results = run_cases(cases, plan, progress=False, between=lambda *a: calls.append(a))
    assert len(results) == 4
    assert calls == [("gemm", "pool"), ("pool", "loss"), ("loss", None)]
    assert run_cases([], plan, progress=False, between=lambda *a: calls.append(a)) == []
    assert len(calls) == 3  # nothing run, nothing measured


def test_roof_check_records_both_roofs_and_the_load_average():
    from fastnn.bench.roofline import load_average, roof_check

    check = roof_check(2, "gemm", "pool", gemm_size=64, copy_mbytes=2, repeats=1, settle=0.0)
    assert check["after"] == "gemm" and check["before"] == "pool"
    assert check["gflops"] > 0 and check["gbps"] > 0
    load = load_average()
    assert load is None or (len(load) == 3 and all(v >= 0 for v in load))
    assert check["load_average"] is None or len(check["load_average"]) == 3


def test_a_rounds_plan_takes_exactly_that_many_one_call_samples():
    calls = {"a": 0, "b": 0}

    def count(name):
        return lambda: calls.__setitem__(name, calls[name] + 1)

    plan = TimingPlan.rounds(4, settle=0.0)
    results = measure({name: count(name) for name in calls}, plan)
    for name in calls:
        assert results[name].runs == 4 and results[name].loops == 1
        assert calls[name] == 5  # the warm-up, then four samples (the first: calibration)
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        TimingPlan.rounds(0)


def test_the_thread_clock_does_not_count_time_spent_asleep():
    import time

    plan = TimingPlan.rounds(2, settle=0.0, clock="thread")
    results = measure({"sleep": lambda: time.sleep(0.02)}, plan)
    assert results["sleep"].ok and results["sleep"].median < 0.01
    wall = measure({"sleep": lambda: time.sleep(0.02)}, TimingPlan.rounds(2, settle=0.0))
    assert wall["sleep"].median >= 0.02
    with pytest.raises(ValueError, match="clock must be one of"):
        TimingPlan(clock="cpu")
