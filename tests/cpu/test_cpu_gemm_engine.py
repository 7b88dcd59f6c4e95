"""The CPU GEMM's engine (SciPy's BLAS or fastnn's blocked kernel) is measured on the
first product of each shape class, remembered, and overridable; both engines give the
float64 reference's result."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import _autotune, _threads
from fastnn._backends.cpu import _gemm
from tests.utils import assert_close


@pytest.fixture
def fresh_engines(monkeypatch, tmp_path):
    """An empty engine memo and autotune cache for the test, on a machine seen as quiet."""
    monkeypatch.setattr(_threads, "_free_cpus", lambda: 64)
    monkeypatch.setattr(_gemm, "_engine_memo", {})
    monkeypatch.setattr(_gemm, "_plain_memo", {})
    monkeypatch.setattr(_gemm, "_unconfirmed", {})
    monkeypatch.setattr(_autotune, "_memory", {})
    _gemm._k.forget_plain()
    _gemm._k.forget_linear()
    fastnn.autotune(True, cache=tmp_path / "autotune.json")
    yield
    fastnn.autotune(True)
    _gemm._k.forget_plain()
    _gemm._k.forget_linear()


def test_first_product_of_a_shape_class_is_timed_once(fresh_engines, rng):
    a = rng.standard_normal((37, 20)).astype(np.float32)
    b = rng.standard_normal((20, 9)).astype(np.float32)
    with _autotune.recording() as first:
        out = fastnn.gemm(a, b)
    assert len(first.timed) == 1 and first.timed[0].startswith("gemm-engine|")
    assert first.choices[first.timed[0]] in _gemm.ENGINES
    assert_close(out, a.astype(np.float64) @ b, rtol=1e-5)
    # the same class (38 rows share 37's half-octave) and a later call: nothing timed
    a2 = rng.standard_normal((38, 20)).astype(np.float32)
    with _autotune.recording() as again:
        out2 = fastnn.gemm(a2, b)
        fastnn.gemm(a, b)
    assert again.timed == []
    assert_close(out2, a2.astype(np.float64) @ b, rtol=1e-5)


def test_the_choice_persists_across_a_cleared_memo(fresh_engines, rng):
    a = rng.standard_normal((12, 70)).astype(np.float64)
    fastnn.gemm(a, a, trans_b=True)
    _gemm._engine_memo.clear()
    _gemm.forget_plain()  # and the lean path's copy of the choice
    with _autotune.recording() as record:
        fastnn.gemm(a, a, trans_b=True)
    assert record.timed == [] and len(record.choices) == 1


@pytest.mark.parametrize("prior", [True, False])
def test_without_autotuning_the_prior_decides(fresh_engines, monkeypatch, rng, prior):
    fastnn.autotune(False)
    monkeypatch.setattr(_gemm, "prefers_blas", lambda m, n, k, epilogue: prior)
    calls = []
    real_blas, real_blocked = _gemm._blas, _gemm._blocked
    monkeypatch.setattr(_gemm, "_blas", lambda *a: calls.append("blas") or real_blas(*a))
    monkeypatch.setattr(_gemm, "_blocked", lambda *a: calls.append("blocked") or real_blocked(*a))
    a = rng.standard_normal((9, 11))
    with _autotune.recording() as record:
        out = fastnn.gemm(a, a, trans_b=True)
    assert record.timed == []
    assert calls == ["blas" if prior else "blocked"]
    assert_close(out, a @ a.T)


def test_a_busy_machine_runs_the_prior_and_stores_nothing(fresh_engines, monkeypatch, rng):
    monkeypatch.setattr(_threads, "_free_cpus", lambda: 0)
    a = rng.standard_normal((21, 13))
    with _autotune.recording() as record:
        out = fastnn.gemm(a, a, trans_a=True)
    assert record.timed == [] and record.choices == {}
    assert not any("gemm-engine" in key for key in _autotune._memory)
    assert_close(out, a.T @ a)


def test_a_busy_machine_runs_a_remembered_choice(fresh_engines, monkeypatch, rng):
    """While other processes hold the CPUs nothing is timed, but a choice the cache
    remembers still beats the prior."""
    a = rng.standard_normal((21, 13))
    key = "gemm-engine|" + "|".join(
        map(str, (_gemm._bucket(13), _gemm._bucket(13), _gemm._bucket(21), True, False, False))
    )
    key = f"{key}|d|{_threads.get_num_threads()}".replace(" ", "")
    prior = _gemm.prefers_blas(13, 13, 21, False)
    _autotune.store(key, "blocked" if prior else "blas")
    monkeypatch.setattr(_threads, "_free_cpus", lambda: 0)
    with _autotune.recording() as record:
        out = fastnn.gemm(a, a, trans_a=True)
    assert record.timed == []
    assert list(_gemm._engine_memo.values()) == [_gemm.ENGINES["blocked" if prior else "blas"]]
    assert_close(out, a.T @ a)


@pytest.mark.parametrize("picked", ["blas-1", "blocked-1", "blas", "blocked"])
def test_small_products_also_try_one_thread(fresh_engines, monkeypatch, rng, picked):
    """With a team of two, a small product's candidates include both engines on one
    thread; the one picked runs with that thread count, in matmul and in plain's runner."""
    monkeypatch.setattr(_threads, "team_size", lambda: 2)
    monkeypatch.setattr(_gemm, "team_size", lambda: 2)
    monkeypatch.setattr(_gemm, "_calibrated", True)
    offered = []

    def choose(key, candidates, repeats, remeasure):
        offered.append(sorted(candidates))
        return picked

    monkeypatch.setattr(_autotune, "choose", choose)
    seen = []
    for engine in ("blas", "blocked"):
        real = getattr(_gemm, f"_{engine}")
        monkeypatch.setattr(
            _gemm, f"_{engine}", lambda *x, e=engine, r=real: seen.append((e, x[-1])) or r(*x)
        )
    a = rng.standard_normal((40, 30)).astype(np.float32)
    b = rng.standard_normal((30, 20)).astype(np.float32)
    for _ in range(3):  # the first chooses (through matmul), the others run plain's runner
        assert_close(fastnn.gemm(a, b), a.astype(np.float64) @ b, rtol=1e-5)
    assert offered == [["blas", "blas-1", "blocked", "blocked-1"]]
    assert list(_gemm._engine_memo.values()) == [_gemm.ENGINES[picked]]
    assert len(_gemm._plain_memo) == 1
    engine, threads = picked.split("-")[0], 1 if picked.endswith("-1") else 2
    seen.clear()
    for _ in range(2):  # matmul, memoised: the chosen engine on the chosen thread count
        assert_close(_gemm.matmul(a, b), a.astype(np.float64) @ b, rtol=1e-5)
    assert seen == [(engine, threads)] * 2


@pytest.mark.parametrize("engine", ["blas", "blocked"])
def test_forced_engine_runs_that_engine(engine, monkeypatch, rng):
    calls = []
    real = getattr(_gemm, f"_{engine}")
    monkeypatch.setattr(_gemm, f"_{engine}", lambda *a: calls.append(engine) or real(*a))
    a = rng.standard_normal((6, 5)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    with _gemm.forced_engine(engine):
        out = fastnn.linear(a, w, bias, activation="relu")
    assert calls == [engine]
    assert_close(out, np.maximum(a.astype(np.float64) @ w.T + bias, 0), rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 300, 7), (5, 1, 9), (64, 7, 64), (40, 33, 1), (97, 65, 70)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_products_reuse_the_engine_chosen_first(
    fresh_engines, monkeypatch, rng, shape, dtype
):
    """The second plain product of a shape runs the memoised engine's runner (no new
    choice), on non-contiguous operands too; forced_engine still wins over the memo."""
    monkeypatch.setattr(_gemm, "_calibrated", True)
    m, k, n = shape
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype).T  # a transposed view
    want = a.astype(np.float64) @ b
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(fastnn.gemm(a, b), want, rtol=rtol)
    _gemm._unconfirmed.clear()  # a split product's later timings (tested below) are done
    assert_close(fastnn.gemm(a, b), want, rtol=rtol)
    assert len(_gemm._plain_memo) == 1
    choices = len(_gemm._engine_memo)
    for _ in range(2):
        assert_close(fastnn.gemm(a, b), want, rtol=rtol)
        assert_close(fastnn.gemm(np.asfortranarray(a), b), want, rtol=rtol)
    assert len(_gemm._engine_memo) == choices and len(_gemm._plain_memo) == 1
    calls = []
    for engine in ("blas", "blocked"):
        calls.clear()
        real = getattr(_gemm, f"_{engine}")
        monkeypatch.setattr(
            _gemm, f"_{engine}", lambda *x, e=engine, r=real: calls.append(e) or r(*x)
        )
        with _gemm.forced_engine(engine):
            assert_close(fastnn.gemm(a, b), want, rtol=rtol)
        assert calls == [engine]


def test_a_split_products_engine_is_timed_again_later(fresh_engines, monkeypatch, rng):
    """A product the team splits is timed again at each CONFIRM_AFTER delay (through
    _autotune.reconsider, put off while the machine is busy), each verdict replaces the
    memo's, and plain's runner waits until the last."""
    monkeypatch.setattr(_threads, "team_size", lambda: 2)
    monkeypatch.setattr(_gemm, "team_size", lambda: 2)
    monkeypatch.setattr(_gemm, "_calibrated", True)
    clock = [100.0]
    monkeypatch.setattr(_gemm, "_now", lambda: clock[0])
    calls = []
    verdicts = iter(["blas-1", "blocked", "blas"])

    def choose(key, candidates, repeats, remeasure):
        calls.append(("choose", sorted(candidates)))
        return "blocked-1"

    def reconsider(key, candidates, repeats):
        calls.append(("reconsider", sorted(candidates)))
        return next(verdicts)

    monkeypatch.setattr(_autotune, "choose", choose)
    monkeypatch.setattr(_autotune, "reconsider", reconsider)
    a = rng.standard_normal((200, 460)).astype(np.float32)  # 18.4 Mflop: split, re-timed
    b = rng.standard_normal((460, 100)).astype(np.float32)
    want = a.astype(np.float64) @ b
    assert 2 * 200 * 100 * 460 >= 2 * _gemm._k.flops_per_thread()
    key = (200, 100, 460, False, False, False, "f", 2, _autotune.generation())
    for _ in range(2):  # chosen once; not due yet
        assert_close(fastnn.gemm(a, b), want, rtol=1e-5)
    names = ["blas", "blas-1", "blocked", "blocked-1"]
    assert calls == [("choose", names)] and _gemm._engine_memo[key] == (False, True)
    matmuls = []
    real_matmul = _gemm.matmul
    monkeypatch.setattr(_gemm, "matmul", lambda *a, **k: matmuls.append(1) or real_matmul(*a, **k))
    fastnn.gemm(a, b)  # not due: the runner, not matmul
    assert not matmuls
    generation = _autotune.generation()
    lean = _gemm._k.plain(a, b, 2, generation)  # the lean path serves it until due
    assert lean is not None
    assert_close(lean, want, rtol=1e-5)
    busy = [True]
    monkeypatch.setattr(_threads, "others_busy", lambda threads: busy[0])
    clock[0] += _gemm.CONFIRM_AFTER[0]
    assert _gemm._k.plain(a, b, 2, generation) is None  # due: the general path re-times
    clock[0] -= 1e-3
    assert _gemm._k.plain(a, b, 2, generation) is None  # the due entry was dropped
    clock[0] += 1e-3
    fastnn.gemm(a, b)  # due, but the machine is busy: put off
    assert len(calls) == 1 and _gemm._unconfirmed[key][1] == 0
    busy[0] = False
    for step, (delay, verdict) in enumerate(
        zip(_gemm.CONFIRM_AFTER, ["blas-1", "blocked", "blas"])
    ):
        clock[0] += delay
        assert_close(fastnn.gemm(a, b), want, rtol=1e-5)
        assert calls[-1] == ("reconsider", names) and len(calls) == step + 2
        assert _gemm._engine_memo[key] == _gemm.ENGINES[verdict]
        last = step == len(_gemm.CONFIRM_AFTER) - 1
        (runner,) = _gemm._plain_memo.values()  # direct calls between re-timings
        assert runner[1] == (None if last else key)
    assert key not in _gemm._unconfirmed
    clock[0] += 1000.0
    for _ in range(2):  # the last verdict, BLAS split over the team, is handed over
        assert_close(fastnn.gemm(a, b), want, rtol=1e-5)
    assert len(calls) == 4
    assert_close(_gemm._k.plain(a, b, 2, generation), want, rtol=1e-5)


class _CountingPin:
    """A BLAS pin that counts the blocks run inside it (around the real one)."""

    def __init__(self):
        self.entered = 0

    def __enter__(self):
        self.entered += 1
        return _threads.limit_blas_threads().__enter__()

    def __exit__(self, *exc):
        return _threads.limit_blas_threads().__exit__(*exc)


def test_the_lean_path_splits_blas_over_the_team(fresh_engines, monkeypatch, rng):
    """A product or dense layer whose verdict is BLAS on the team, split into blocks over
    it, runs on the lean paths too: inside the BLAS pin (SciPy's BLAS at one thread in
    the team's calls), with the reference's result; a product BLAS cannot split runs as
    one call, outside the pin."""
    from fastnn._backends.cpu import dense as cpu_dense

    for module in (_threads, _gemm, cpu_dense):
        monkeypatch.setattr(module, "team_size", lambda: 2)
    monkeypatch.setattr(_gemm, "_calibrated", True)
    _pick(monkeypatch, "blas")
    pin, saved = _CountingPin(), _gemm._k.flops_per_thread()
    _gemm._k.set_blas_pin(pin)
    _gemm._k.set_flops_per_thread(2.0**16)
    try:
        generation = _autotune.generation()
        x = rng.standard_normal((200, 460)).astype(np.float32)  # 18.4 Mflop: split
        w = rng.standard_normal((100, 460)).astype(np.float32)
        bias = rng.standard_normal(100).astype(np.float32)
        assert _gemm._k.blas_threads(200, 100, 460, 2) == 2
        want = fastnn.gemm(x, w.T, backend="reference")
        want_linear = fastnn.linear(x, w, bias, activation="relu", backend="reference")
        for _ in range(2):  # chosen, then handed over
            assert_close(fastnn.gemm(x, np.ascontiguousarray(w.T)), want, rtol=1e-5)
            _gemm._unconfirmed.clear()
            assert_close(fastnn.linear(x, w, bias, activation="relu"), want_linear, rtol=1e-5)
            _gemm._unconfirmed.clear()
        pin.entered = 0
        got = _gemm._k.plain(x, np.ascontiguousarray(w.T), 2, generation)
        assert got is not None and pin.entered == 1
        assert_close(got, want, rtol=1e-5)
        got = _gemm._k.linear(x, w, bias, "relu", 2, generation)
        assert got is not None and pin.entered == 2
        assert_close(got, want_linear, rtol=1e-5)
        small, small_w = x[:8, :16].copy(), w[:4, :16].copy()  # one BLAS call
        assert _gemm._k.blas_threads(8, 4, 16, 2) == 1
        for _ in range(2):
            fastnn.gemm(small, small_w.T)
            _gemm._unconfirmed.clear()
        got = _gemm._k.plain(small, small_w.T, 2, generation)
        assert got is not None and pin.entered == 2
        assert_close(got, small @ small_w.T.astype(np.float64), rtol=1e-5)
    finally:
        _gemm._k.set_blas_pin(_threads.limit_blas_threads())
        _gemm._k.set_flops_per_thread(saved)


def test_forced_engine_rejects_unknown_names():
    with pytest.raises(ValueError, match="engine must be"):
        with _gemm.forced_engine("mkl"):
            pass


def _pick(monkeypatch, engine: str) -> None:
    """Every engine choice of the test picks ``engine`` (no timing)."""
    monkeypatch.setattr(_autotune, "choose", lambda key, candidates, **_: engine)
    monkeypatch.setattr(_autotune, "reconsider", lambda key, candidates, **_: engine)


@pytest.mark.parametrize("engine", ["blocked", "blocked-1", "blas-1"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_lean_path_runs_remembered_products(fresh_engines, monkeypatch, rng, dtype, engine):
    """Once a plain product's engine is chosen, fastnn.gemm's later products of the shape
    run on the kernel module's lean path (no Python above it), on views too, with the
    reference's result; forced engines and an active backend bypass it."""
    monkeypatch.setattr(_gemm, "_calibrated", True)
    _pick(monkeypatch, engine)
    a = rng.standard_normal((7, 64)).astype(dtype)
    b = rng.standard_normal((5, 64)).astype(dtype).T  # a transposed view
    want = a.astype(np.float64) @ b
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    threads = _gemm.team_size()
    assert _gemm._k.plain(a, b, threads, _autotune.generation()) is None  # not chosen yet
    assert_close(fastnn.gemm(a, b), want, rtol=rtol)
    _gemm._unconfirmed.clear()
    assert_close(fastnn.gemm(a, b), want, rtol=rtol)  # memoised: handed to the lean path
    lean = _gemm._k.plain(a, b, threads, _autotune.generation())
    assert lean is not None and lean.flags.c_contiguous
    assert_close(lean, want, rtol=rtol)
    calls = []
    monkeypatch.setattr(_gemm, "matmul", lambda *x, **k: calls.append(1) or want)
    monkeypatch.setattr(_gemm, "_plain_memo", {})
    assert_close(fastnn.gemm(np.asfortranarray(a), b), want, rtol=rtol)
    assert calls == []  # neither matmul nor plain's memo: the lean path
    with _gemm.forced_engine("blas"):
        fastnn.gemm(a, b)
    assert calls == [1]
    with fastnn.use_backend("reference"):
        assert_close(fastnn.gemm(a, b), want, rtol=rtol)
        assert_close(fastnn.gemm(a, b, backend="cpu"), want, rtol=rtol)  # named: lean
    assert calls == [1]
    assert fastnn._dispatch.lean("gemm", "cpu") is not None
    assert fastnn._dispatch.lean("gemm", "reference") is None
    # a setting that changes (another autotune generation) makes the lean path forget
    assert _gemm._k.plain(a, b, threads, _autotune.generation() + 1) is None


@pytest.mark.parametrize("trans", ["TN", "NT", "TT"])
@pytest.mark.parametrize("engine", ["blocked", "blocked-1", "blas-1"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_lean_path_runs_remembered_transposed_products(
    fresh_engines, monkeypatch, rng, dtype, engine, trans
):
    """Products with transposed operands are remembered under their transposes: later
    ones run lean with the reference's result, and the other transposes of operands of
    the same sizes are not served from their entry."""
    monkeypatch.setattr(_gemm, "_calibrated", True)
    _pick(monkeypatch, engine)
    ta, tb = trans[0] == "T", trans[1] == "T"
    m, k, n = 9, 9, 9  # square: every transpose of the operands chains
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = (a64.T if ta else a64) @ (b64.T if tb else b64)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    threads, generation = _gemm.team_size(), _autotune.generation()
    assert _gemm._k.plain(a, b, threads, generation, ta, tb) is None  # not chosen yet
    assert_close(fastnn.gemm(a, b, trans_a=ta, trans_b=tb), want, rtol=rtol)
    _gemm._unconfirmed.clear()
    assert_close(fastnn.gemm(a, b, trans_a=ta, trans_b=tb), want, rtol=rtol)
    lean = _gemm._k.plain(a, b, threads, generation, ta, tb)
    assert lean is not None and lean.flags.c_contiguous
    assert_close(lean, want, rtol=rtol)
    for other in ("NN", "TN", "NT", "TT"):
        if other != trans:
            assert _gemm._k.plain(a, b, threads, generation, other[0] == "T",
                                  other[1] == "T") is None  # fmt: skip
    calls = []
    monkeypatch.setattr(_gemm, "matmul", lambda *x, **kw: calls.append(1) or want)
    monkeypatch.setattr(_gemm, "_plain_memo", {})
    assert_close(fastnn.gemm(a, b, trans_a=ta, trans_b=tb), want, rtol=rtol)
    assert calls == []  # the lean path ran it
    # operands whose transposed sizes do not chain are left to the checks
    bad = rng.standard_normal((m + 1, k + 1) if ta else (m, k + 1)).astype(dtype)
    assert _gemm._k.plain(bad, b, threads, generation, ta, tb) is None
    monkeypatch.undo()
    with pytest.raises(ValueError, match="inner dimensions"):
        fastnn.gemm(bad, b, trans_a=ta, trans_b=tb)


def test_a_new_gemm_level_empties_the_lean_path(fresh_engines, monkeypatch, rng):
    """The lean path keeps the blocked kernel's instruction-set level: forcing another
    level (fastnn._isa) forgets every remembered product."""
    monkeypatch.setattr(_gemm, "_calibrated", True)
    _pick(monkeypatch, "blocked")
    a = rng.standard_normal((9, 33)).astype(np.float32)
    b = rng.standard_normal((33, 4)).astype(np.float32)
    key = (a, b, _gemm.team_size(), _autotune.generation())
    for _ in range(2):
        fastnn.gemm(a, b)
    assert _gemm._k.plain(*key) is not None
    with fastnn._isa.forced("gemm", "base"):
        assert _gemm._k.plain(*key) is None
        assert_close(fastnn.gemm(a, b), a.astype(np.float64) @ b, rtol=1e-5)


@pytest.mark.parametrize(
    "a, b, error",
    [
        (np.ones((3, 4), np.float32), np.ones((5, 2), np.float32), ValueError),
        (np.ones((3, 4), np.float32), np.ones((4, 2), np.float64), (TypeError, ValueError)),
        (np.ones((3, 4), np.int64), np.ones((4, 2), np.int64), TypeError),
        (np.ones((3, 4), ">f4"), np.ones((4, 2), ">f4"), TypeError),
        (np.ones((2, 3, 4), np.float32), np.ones((4, 2), np.float32), ValueError),
        ([[1.0, 2.0]], np.ones((2, 2), np.float32), TypeError),
    ],
)
def test_the_lean_path_leaves_bad_input_to_the_checks(fresh_engines, monkeypatch, a, b, error):
    """Operands the lean path cannot run go down the checked path, which rejects them,
    even after a product of their sizes was remembered."""
    monkeypatch.setattr(_gemm, "_calibrated", True)
    shape_a = np.shape(a)[-2:]
    good_a = np.ones(shape_a, np.float32)
    good_b = np.ones((shape_a[1], np.shape(b)[-1]), np.float32)
    for _ in range(2):
        fastnn.gemm(good_a, good_b)  # remembered sizes
    assert _gemm._k.plain(a, b, _gemm.team_size(), _autotune.generation()) is None
    with pytest.raises(error):
        fastnn.gemm(a, b)


@pytest.mark.parametrize("way", ["loops", "blocked", "blocked-1", "blas-1"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_lean_path_runs_remembered_dense_layers(fresh_engines, monkeypatch, rng, dtype, way):
    """Once a dense layer's way (plain loops or a GEMM engine) is settled, fastnn.linear's
    later calls of the layer run on the kernel module's lean path, for every activation,
    with and without a bias, from any memory layout, with the reference's result; an
    active backend bypasses it."""
    from fastnn._backends.cpu import _small_dense

    monkeypatch.setattr(_gemm, "_calibrated", True)
    monkeypatch.setattr(_small_dense, "use_loops", lambda *args: way == "loops")
    _pick(monkeypatch, "blocked" if way == "loops" else way)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    x = rng.standard_normal((6, 13)).astype(dtype)
    w = rng.standard_normal((5, 13)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    threads, generation = _gemm.team_size(), _autotune.generation()
    for activation in (None, "relu", "sigmoid", "tanh"):
        for bias in (b, None):
            want = fastnn.linear(x, w, bias, activation=activation, backend="reference")
            assert _gemm._k.linear(x, w, bias, activation, threads, generation) is None
            for _ in range(2):  # the second call hands the way over
                assert_close(fastnn.linear(x, w, bias, activation=activation), want, rtol=rtol)
            lean = _gemm._k.linear(x, w, bias, activation, threads, generation)
            assert lean is not None, (activation, bias is not None)
            assert_close(lean, want, rtol=rtol)
            got = fastnn.linear(
                np.asfortranarray(x), w[:, ::-1][:, ::-1], bias, activation=activation
            )
            assert_close(got, want, rtol=rtol)
            with fastnn.use_backend("reference"):
                assert_close(fastnn.linear(x, w, bias, activation=activation), want, rtol=rtol)
    # a batch of another shape: not remembered, so checked and run the general way
    x3 = rng.standard_normal((2, 3, 13)).astype(dtype)
    want3 = fastnn.linear(x3, w, b, backend="reference")
    assert_close(fastnn.linear(x3, w, b), want3, rtol=rtol)


@pytest.mark.parametrize("way", ["loops", "gemms"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_lean_path_runs_remembered_dense_backward(fresh_engines, monkeypatch, rng, dtype, way):
    """A linear_backward call whose arrays (shapes, strides, dtypes) and output mask equal
    a checked call's runs the way that call took (plain loops or GEMMs) without the
    checks, with the reference's gradients; other strides, a mask of ints, another backend
    and a forced engine take the checked path, which checks and reports."""
    from fastnn import _args
    from fastnn._backends.cpu import _small_dense
    from fastnn._backends.cpu import dense as cpu_dense

    monkeypatch.setattr(_gemm, "_calibrated", True)
    monkeypatch.setattr(_small_dense, "use_loops", lambda *args: way == "loops")
    monkeypatch.setattr(cpu_dense, "_backward_ways", {})
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    x = rng.standard_normal((6, 13)).astype(dtype)
    w = rng.standard_normal((5, 13)).astype(dtype)
    gy = rng.standard_normal((6, 5)).astype(dtype)
    for mask in ((True, True, True), (True, False, True), (False, True, False)):
        want = fastnn.linear_backward(gy, x, w, output_mask=mask, backend="reference")
        assert cpu_dense.lean_linear_backward(gy, x, w, mask) is None  # not yet run
        fastnn.linear_backward(gy, x, w, output_mask=mask)  # checked: remembered
        lean = cpu_dense.lean_linear_backward(gy, x, w, mask)
        assert lean is not None
        for got, ref in zip(lean, want):
            assert (got is None) == (ref is None)
            if ref is not None:
                assert_close(got, ref, rtol=rtol)
    want = fastnn.linear_backward(gy, x, w, backend="reference")
    checks = []
    real = _args.float_arrays
    monkeypatch.setattr(_args, "float_arrays", lambda *a, **k: checks.append(1) or real(*a, **k))
    for got, ref in zip(fastnn.linear_backward(gy, x, w), want):  # lean: no checks
        assert_close(got, ref, rtol=rtol)
    assert checks == []
    for got, ref in zip(fastnn.linear_backward(np.asfortranarray(gy), x, w), want):
        assert_close(got, ref, rtol=rtol)
    assert checks == [1]  # other strides: checked (and remembered from now on)
    with pytest.raises(TypeError, match="output_mask"):
        fastnn.linear_backward(gy, x, w, output_mask=(1, 1, 1))
    with pytest.raises(ValueError):
        fastnn.linear_backward(gy[:, :-1], x, w)
    with fastnn.use_backend("reference"):
        fastnn.linear_backward(gy, x, w)
    with _gemm.forced_engine("blas"):
        assert cpu_dense.lean_linear_backward(gy, x, w, (True, True, True)) is None
    assert cpu_dense.lean_linear_backward(x, x, w, (True, True, True)) is None  # no such call
    assert len(checks) == 4


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda x, w, b: (x[:, :-1], w, b, None), ValueError),
        (lambda x, w, b: (x, w, b[:-1], None), ValueError),
        (lambda x, w, b: (x, w, b.astype(np.float64), None), (TypeError, ValueError)),
        (lambda x, w, b: (x.astype(">f4"), w.astype(">f4"), b.astype(">f4"), None), TypeError),
        (lambda x, w, b: (x, w, b, "gelu"), ValueError),
        (lambda x, w, b: (x, w, b, ["relu"]), (TypeError, ValueError)),
        (lambda x, w, b: (x, w, list(b), None), TypeError),
        (lambda x, w, b: (x, w, b.reshape(1, -1), None), ValueError),
    ],
)
def test_the_lean_dense_path_leaves_bad_input_to_the_checks(
    fresh_engines, monkeypatch, rng, change, error
):
    """Arguments the lean path cannot run go down the checked path, which rejects them,
    even after the layer's sizes were remembered."""
    monkeypatch.setattr(_gemm, "_calibrated", True)
    _pick(monkeypatch, "blocked")
    x = rng.standard_normal((4, 7)).astype(np.float32)
    w = rng.standard_normal((3, 7)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    for _ in range(2):
        fastnn.linear(x, w, b)
    assert _gemm._k.linear(x, w, b, None, _gemm.team_size(), _autotune.generation()) is not None
    args = change(x, w, b)
    with pytest.raises(error):
        fastnn.linear(*args[:3], activation=args[3])
