"""Threads in the CPU kernels: results agree for 1 and 2 threads on sizes that take the
parallel paths, SciPy's BLAS follows set_num_threads and is pinned to one thread inside
limit_blas_threads (nested, from several Python threads), OMP_NUM_THREADS sets the
default, and concurrent calls from several Python threads give correct results."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastnn
from fastnn import _threads
from fastnn._backends.cpu import _gemm as engines
from tests.utils import assert_close


@pytest.fixture
def restore_threads():
    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)


def _workloads(rng):
    """(name, call) pairs, each large enough that the kernel splits its work."""
    a = rng.standard_normal((200, 300)).astype(np.float32)
    b = rng.standard_normal((300, 170)).astype(np.float32)
    w = rng.standard_normal((90, 300)).astype(np.float32)
    bias = rng.standard_normal(90).astype(np.float32)
    big = rng.standard_normal((400, 700))
    t = rng.standard_normal((400, 700))
    u = rng.standard_normal((200, 170)).astype(np.float32)
    labels = rng.integers(0, 700, 400)
    return [
        ("gemm", lambda: fastnn.gemm(a, b)),
        ("gemm-T", lambda: fastnn.gemm(b, a, trans_a=True, trans_b=True)),
        ("linear", lambda: fastnn.linear(a, w, bias, activation="tanh")),
        ("linear_backward", lambda: fastnn.linear_backward(a[:, :90], a, w)),
        ("relu", lambda: fastnn.relu(big)),
        ("sigmoid", lambda: fastnn.sigmoid(big)),
        ("softmax-rows", lambda: fastnn.softmax(big, 1)),
        ("softmax-columns", lambda: fastnn.log_softmax(big.reshape(4, 100, 700), 1)),
        ("mse", lambda: fastnn.mse_loss(big, t)),
        ("bce", lambda: fastnn.binary_cross_entropy(1 / (1 + np.exp(-big)), np.abs(np.sin(t)))),
        ("cross_entropy", lambda: fastnn.cross_entropy(big, labels)),
        ("sensitivity", lambda: fastnn.sensitivity(a, b, u, "sigmoid")),
        ("dense_grads", lambda: fastnn.dense_grads(big, t)),
    ]


def _as_list(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


@pytest.mark.parametrize("engine", ["blas", "blocked"])
def test_one_and_two_threads_agree(engine, restore_threads, rng, monkeypatch):
    monkeypatch.setattr(engines, "_forced", [engine])
    work = _workloads(rng)
    fastnn.set_num_threads(1)
    serial = {name: _as_list(call()) for name, call in work}
    fastnn.set_num_threads(2)
    for name, call in work:
        for got, want in zip(_as_list(call()), serial[name]):
            assert_close(got, want, rtol=1e-5 if got.dtype == np.float32 else 1e-12, what=name)


def test_blas_follows_set_num_threads(restore_threads):
    if _threads.blas_num_threads() is None:
        pytest.skip("threadpoolctl cannot control this BLAS")
    fastnn.set_num_threads(1)
    assert _threads.blas_num_threads() == 1
    fastnn.set_num_threads(2)
    assert _threads.blas_num_threads() == 2


def test_limit_blas_threads_nests_and_restores(restore_threads):
    if _threads.blas_num_threads() is None:
        pytest.skip("threadpoolctl cannot control this BLAS")
    fastnn.set_num_threads(2)
    with _threads.limit_blas_threads():
        assert _threads.blas_num_threads() == 1
        with _threads.limit_blas_threads():
            assert _threads.blas_num_threads() == 1
        assert _threads.blas_num_threads() == 1
        fastnn.set_num_threads(2)  # a change inside a pinned block waits for the block
        assert _threads.blas_num_threads() == 1
    _threads.blas_for_call()  # the next BLAS call outside a parallel region restores it
    assert _threads.blas_num_threads() == 2


def _record_blas_calls(monkeypatch) -> list[tuple[int | None, int]]:
    """Record (the BLAS's thread count, the threads asked of the BLAS engine) per call."""
    real_blas, seen = engines._k.blas, []

    def recording_blas(*args):
        seen.append((_threads.blas_num_threads(), args[-1]))
        return real_blas(*args)

    monkeypatch.setattr(engines._k, "blas", recording_blas)
    return seen


@pytest.mark.parametrize("shape", [(70, 40, 33), (40, 70, 33)])
def test_blas_path_splits_the_result_over_our_threads_with_blas_pinned(
    restore_threads, monkeypatch, shape
):
    """The BLAS engine runs one single-threaded BLAS call per block of the result inside
    fastnn's own parallel region: no OpenBLAS pool is left spinning after the call.
    (The split threshold is lowered so that these small products split.)"""
    if _threads.blas_num_threads() is None:
        pytest.skip("threadpoolctl cannot control this BLAS")
    monkeypatch.setattr(engines, "_forced", ["blas"])
    monkeypatch.setattr(engines, "_calibrated", True)
    before = engines._k.flops_per_thread()
    engines._k.set_flops_per_thread(1.0)
    seen = _record_blas_calls(monkeypatch)
    fastnn.set_num_threads(3)
    m, n, k = shape
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((n, k))
    c = rng.standard_normal(n)
    try:
        out = fastnn.gemm(a, b, c, alpha=0.5, beta=2.0, trans_b=True)
    finally:
        engines._k.set_flops_per_thread(before)
    assert seen == [(1, 3)]
    assert_close(out, 0.5 * a @ b.T + 2.0 * c)


def test_blas_path_makes_one_call_when_a_split_would_not_pay(restore_threads, monkeypatch):
    """Below the measured flops-per-thread threshold the BLAS engine makes a single call
    outside any parallel region, with the BLAS at fastnn's thread count."""
    if _threads.blas_num_threads() is None:
        pytest.skip("threadpoolctl cannot control this BLAS")
    monkeypatch.setattr(engines, "_forced", ["blas"])
    seen = _record_blas_calls(monkeypatch)
    fastnn.set_num_threads(3)
    for shape in ((5, 2), (5, 3)):  # under the threshold; fewer rows than one block
        seen.clear()
        a = np.ones(shape)
        out = fastnn.gemm(a, a.T)
        assert seen == [(3, 1)]
        assert_close(out, a @ a.T)


def test_calibrated_thresholds_are_within_their_bounds():
    """The measured flops-per-thread threshold (2 x fork-join x one thread's rate) and
    the longest reduction the unpacked path runs (one of the lengths tried, or 0)."""
    low, high = engines.FLOPS_PER_THREAD_RANGE
    flops = engines.calibrate(force=True)
    assert low <= flops <= high
    assert engines._k.flops_per_thread() == flops
    assert engines._k.short_k() in (0, *engines.SHORT_K_TRIALS)


def test_calibration_waits_for_a_quiet_machine(monkeypatch):
    """On a busy machine nothing is measured; the next product after RETRY_SECONDS tries
    again."""
    monkeypatch.setattr(engines, "_calibrated", False)
    monkeypatch.setattr(engines, "_next_try", 0.0)
    monkeypatch.setattr(_threads, "_free_cpus", lambda: 0)
    before = engines._k.flops_per_thread()
    assert engines.calibrate() == before
    assert not engines._calibrated and engines._next_try > 0.0
    monkeypatch.setattr(_threads, "_free_cpus", lambda: 64)
    monkeypatch.setattr(engines, "_next_try", 0.0)
    a = np.ones((3, 3))
    assert_close(fastnn.gemm(a, a), a @ a)
    assert engines._calibrated


def test_limit_blas_threads_from_several_python_threads(restore_threads):
    if _threads.blas_num_threads() is None:
        pytest.skip("threadpoolctl cannot control this BLAS")
    fastnn.set_num_threads(2)
    inside = threading.Barrier(4)
    seen = []

    def pinned():
        with _threads.limit_blas_threads():
            inside.wait(timeout=30)  # all four blocks open at once
            seen.append(_threads.blas_num_threads())
            inside.wait(timeout=30)

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(pinned) for _ in range(4)]:
            f.result()
    assert seen == [1, 1, 1, 1]
    _threads.blas_for_call()
    assert _threads.blas_num_threads() == 2


def test_concurrent_calls_from_python_threads(rng):
    """Eight Python threads run the kernels at once (the GIL is released inside them);
    every result equals the one computed alone."""
    work = _workloads(rng)
    expected = {name: _as_list(call()) for name, call in work}

    def run(i):
        name, call = work[i % len(work)]
        return name, _as_list(call())

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(3 * len(work))))
    for name, got in results:
        for g, want in zip(got, expected[name]):
            assert_close(g, want, rtol=1e-5 if g.dtype == np.float32 else 1e-12, what=name)


def test_omp_num_threads_sets_kernel_and_blas_threads():
    code = (
        "import numpy as np, fastnn; from fastnn import _threads;"
        "fastnn.gemm(np.ones((4, 4)), np.ones((4, 4)));"
        "print(fastnn.get_num_threads(), _threads.blas_num_threads())"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "1" and out[1] in ("1", "None")


# ---------------------------------------------------------------------------------------
# Team size under load
# ---------------------------------------------------------------------------------------


@pytest.fixture
def adaptive(monkeypatch, restore_threads):
    """Adaptive team sizing on, with the machine's free CPUs under the test's control."""
    free = {"cpus": 0, "samples": 0}

    def fake_free(reader_apart=False):
        free["samples"] += 1
        return free["cpus"]

    monkeypatch.setattr(_threads, "_free_cpus", fake_free)
    _threads.adaptive_teams(True)
    yield free
    _threads.adaptive_teams(False)


def test_team_size_follows_the_free_cpus_within_the_cap(adaptive, monkeypatch):
    fastnn.set_num_threads(4)
    for cpus, team in ((8, 4), (4, 4), (3, 3), (1, 1), (0, 1), (-2, 1)):
        adaptive["cpus"] = cpus
        _threads.adaptive_teams(True)  # samples at once
        assert _threads.team_size() == team
    assert fastnn.get_num_threads() == 4  # the cap is what the user set


def test_a_call_reads_the_last_sample_not_proc(adaptive):
    """The load is sampled by a background thread every TEAM_SAMPLE_SECONDS while kernels
    run, never by the call itself; the thread ends when adaptive sizing is turned off."""
    import time

    fastnn.set_num_threads(2)
    adaptive["cpus"] = 2
    _threads.adaptive_teams(True)
    adaptive["samples"] = 0
    start = time.monotonic()
    for _ in range(20000):
        assert _threads.team_size() == 2
    elapsed = time.monotonic() - start
    assert adaptive["samples"] <= 2 + elapsed / _threads.TEAM_SAMPLE_SECONDS
    adaptive["cpus"] = 1  # the machine gets busy: the sampler sees it within an interval
    deadline = time.monotonic() + 2.0
    while _threads.team_size() != 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert _threads.team_size() == 1
    sampler = _threads._sampler
    _threads.adaptive_teams(False)
    if sampler is not None:
        sampler.join(timeout=2.0)
        assert not sampler.is_alive()


def test_team_shrinks_on_two_busy_samples_and_grows_on_a_run_of_quiet_ones():
    """Hysteresis of the sampled team: one sample never moves it; two busy ones in a row
    shrink it; only TEAM_GROW_SAMPLES quiet ones in a row grow it back (a neighbour seen
    idle between its calls must not buy a team that then waits at every barrier)."""
    step = _threads.next_team_free
    shrink, grow = _threads.TEAM_SHRINK_SAMPLES, _threads.TEAM_GROW_SAMPLES
    assert grow > shrink >= 2
    assert step(2, [1]) == 2 and step(2, [2, 1]) == 2
    assert step(2, [2, 1, 1]) == 1 and step(4, [1, 3]) == 3
    quiet = [2] * (grow - 1)
    assert step(1, quiet) == 1 and step(1, [1, *quiet]) == 1
    assert step(1, [*quiet, 2]) == 2 and step(1, [*quiet, 3]) == 2
    assert step(1, [*quiet[:-1], 1, 2]) == 1  # a busy sample in the run: no growth
    current, history = 2, []
    for free in [2, 1, 2, 1, 2, 1, 1, 2, 1, 2, 1, 2]:  # a neighbour that comes and goes
        history.append(free)
        current = step(current, history)
        assert current in (1, 2)
    assert current == 1  # it shrank and the flickering never made it grow back


def test_team_size_off_or_one_thread_is_the_cap(adaptive):
    adaptive["cpus"] = 0
    fastnn.set_num_threads(3)
    _threads.adaptive_teams(False)
    assert _threads.team_size() == 3
    _threads.adaptive_teams(True)
    adaptive["samples"] = 0
    fastnn.set_num_threads(1)
    assert _threads.team_size() == 1 and adaptive["samples"] == 0


def test_free_cpus_reads_the_machine():
    free = _threads._free_cpus()
    assert isinstance(free, int) and free <= _threads._machine_cpus
    assert _threads._free_cpus(reader_apart=True) <= _threads._machine_cpus


@pytest.mark.parametrize(
    ("running", "own", "reader_apart", "free"),
    [
        (2, [9, 9], False, 4),  # no more than the team runs: quiet, /proc/self not read
        (3, [2, 2], True, 4),  # the sampler itself is the third: still quiet
        (3, [2, 2], False, 3),  # a team member reading: one other thread runs
        (4, [3, 3], True, 3),  # team + sampler + one other process's thread
        (4, [2, 4], True, 4),  # our pool started spinning between the reads: ours
        (6, [2, 2], True, 1),  # three other threads running
    ],
)
def test_free_cpus_counts_only_other_processes(monkeypatch, running, own, reader_apart, free):
    import io

    reads = iter(own)
    monkeypatch.setattr(_threads, "_machine_cpus", 4)
    monkeypatch.setattr(_threads, "_num_threads", 2)
    monkeypatch.setattr(_threads, "_own_running", lambda: next(reads))
    loadavg = f"0.50 0.40 0.30 {running}/321 12345\n".encode()
    monkeypatch.setattr(_threads, "open", lambda *a, **k: io.BytesIO(loadavg), raising=False)
    assert _threads._free_cpus(reader_apart=reader_apart) == free


def test_a_busy_machine_shrinks_the_team_not_the_autotune_key(adaptive, rng):
    """Kernels run with the shrunk team and still give the same results; the convolution's
    autotune key keeps the cap, so a busy moment does not re-tune or miss the cache."""
    from fastnn import _autotune

    fastnn.set_num_threads(2)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    adaptive["cpus"] = 2
    _threads.adaptive_teams(True)
    quiet = fastnn.conv2d(x, w, padding=1)
    adaptive["cpus"] = 0
    _threads.adaptive_teams(True)
    assert _threads.team_size() == 1
    with _autotune.recording() as record:
        busy = fastnn.conv2d(x, w, padding=1)
    assert_close(busy, quiet)
    assert record.choices and all("threads=2" in key for key in record.choices)


def test_a_forked_child_starts_its_own_sampler(adaptive):
    """After fork the child has no sampler thread; its first call starts one."""
    import os

    fastnn.set_num_threads(2)
    adaptive["cpus"] = 2
    _threads.adaptive_teams(True)
    _threads.team_size()
    assert _threads._sampler is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        ok = _threads._sampler is None
        _threads.team_size()
        ok = ok and _threads._sampler is not None and _threads._sampler.is_alive()
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
