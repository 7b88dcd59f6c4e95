"""fastnn._isa: the instruction-set level of each kernel family is measured once per CPU
(and remembered in the autotune cache), or forced, or taken from the environment, or the
static prior when autotuning is off."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastnn
from fastnn import _autotune, _isa, _machine, _threads
from fastnn.kernels.cpu import conv_direct


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """No remembered levels, an empty cache, no environment overrides."""
    for var in (
        "FASTNN_ISA",
        "FASTNN_CONV_ISA",
        *(f"FASTNN_ISA_{f.upper()}" for f in _isa.FAMILIES),
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_threads, "_free_cpus", lambda *args: 64)  # a quiet machine
    cache = tmp_path / "tune.json"
    fastnn.autotune(True, cache=cache)
    _isa._reset()
    yield cache
    _isa._reset()
    fastnn.autotune(True)


def test_levels_are_measured_once_and_cached(fresh, monkeypatch):
    calls = []
    real = _isa._measure

    def counting(family):
        calls.append(family)
        return real(family)

    monkeypatch.setattr(_isa, "_measure", counting)
    report = _isa.report()
    assert set(report) == set(_isa.FAMILIES)
    for level, how in report.values():
        assert level in _isa.supported()
        assert how == ("measured" if len(_isa.supported()) > 1 else "prior")
    if len(_isa.supported()) == 1:
        return
    assert sorted(calls) == sorted(_isa.FAMILIES)
    entries = json.loads(fresh.read_text())["entries"]
    prefix = _machine.context() + "|isa:"
    assert {k[len(prefix) :] for k in entries if k.startswith(prefix)} == set(_isa.FAMILIES)
    _isa._reset()  # a new process: the cache answers
    assert all(how == "cached" for _, how in _isa.report().values())
    assert sorted(calls) == sorted(_isa.FAMILIES)


def test_no_level_is_measured_while_the_machine_is_busy(fresh, monkeypatch):
    """With no CPU free, a family runs its prior and nothing is measured or cached; a
    use RETRY_SECONDS later measures it, once the machine is quiet."""
    if len(_isa.supported()) == 1:
        pytest.skip("this CPU runs one level only: nothing to measure")
    clock = [100.0]
    monkeypatch.setattr(_isa.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(_threads, "others_busy", lambda threads: True)
    calls = []
    monkeypatch.setattr(_isa, "_measure", lambda family: calls.append(family) or "base")
    assert _isa.level("winograd") == _isa._cap(_isa.FAMILIES["winograd"])
    assert _isa.report()["winograd"][1] == _isa.BUSY
    clock[0] += _isa.RETRY_SECONDS / 2
    _isa.level("winograd")  # not due yet: not even a look at the load
    assert calls == [] and not fresh.exists()
    clock[0] += _isa.RETRY_SECONDS
    _isa.level("winograd")  # due, still busy: the prior again
    assert calls == [] and _isa.report()["winograd"][1] == _isa.BUSY
    monkeypatch.setattr(_threads, "others_busy", lambda threads: False)
    clock[0] += _isa.RETRY_SECONDS
    assert _isa.level("winograd") == "base" and calls == ["winograd"]
    assert _isa.report()["winograd"] == ("base", "measured")
    assert _autotune.lookup("isa:winograd") == "base"


def test_prior_without_autotuning(fresh):
    fastnn.autotune(False, cache=fresh)
    for family, (level, how) in _isa.report().items():
        assert how == "prior"
        assert level == _isa._cap(_isa.FAMILIES[family])
    assert not fresh.exists()


def test_environment_overrides(fresh, monkeypatch):
    monkeypatch.setenv("FASTNN_ISA", "base")
    monkeypatch.setenv("FASTNN_ISA_GEMM", "avx2")
    report = _isa.report()
    assert report["winograd"] == ("base", "environment")
    assert report["gemm"] == (_isa._cap("avx2"), "environment")
    assert conv_direct.current_isa() == "base"  # pushed into the kernel's global state


def test_forced_levels_nest_and_restore(fresh, rng):
    before = _isa.level("winograd")
    with _isa.forced("winograd", "base") as level:
        assert level == "base" and _isa.level("winograd") == "base"
        with _isa.forced("winograd", "avx512") as inner:
            assert inner == _isa.supported()[-1]
        assert _isa.level("winograd") == "base"
        x = rng.standard_normal((1, 16, 6, 6)).astype(np.float32)
        w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
        got = fastnn.conv2d(x, w, None, 1, 1, algo="winograd4")
        want = fastnn.conv2d(x, w, None, 1, 1, backend="reference")
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert _isa.level("winograd") == before
    with _isa.forced("conv_direct", "base"):
        assert conv_direct.current_isa() == "base"
    assert conv_direct.current_isa() == _isa.level("conv_direct")


def test_bad_family_or_level():
    with pytest.raises(ValueError, match="family"):
        _isa.level("fft")
    with pytest.raises(ValueError, match="level"):
        with _isa.forced("gemm", "sse9"):
            pass


def test_measurement_keeps_the_prior_within_the_margin(fresh, monkeypatch):
    """A lower level must beat the prior by MARGIN to replace it."""
    if len(_isa.supported()) < 2:
        pytest.skip("this CPU runs one level only")
    top = _isa.supported()[-1]
    times = {name: 1.0 for name in _isa.supported()}
    times[_isa.supported()[0]] = 0.99  # 1% faster: noise
    monkeypatch.setattr(_isa, "_PROBES", {f: (lambda: lambda name: None) for f in _isa.FAMILIES})
    clock = iter(())

    def fake_counter():
        return next(clock)

    # time.perf_counter is read twice per run: feed (0, t) pairs in the order of the runs
    order = []
    for _ in range(_isa.ROUNDS):
        for name in _isa.supported():
            order += [0.0, times[name]]
    clock = iter(order)
    monkeypatch.setattr(_isa.time, "perf_counter", fake_counter)
    assert _isa._measure("winograd") == _isa._cap("avx512") == top
    assert _autotune.autotune_enabled()
