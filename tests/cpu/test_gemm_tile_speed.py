"""The blocked GEMM's AVX-512 tile speed (fastnn/_backends/cpu/_gemm.py: _t48_time):
measured once per CPU and build into the autotune cache, read back from it afterwards,
the prior (1.0) with autotuning off, and set in every kernel module that compiles the
GEMM in."""

from __future__ import annotations

import importlib

import pytest

import fastnn
from fastnn import _autotune, _isa
from fastnn._backends.cpu import _gemm
from fastnn.kernels.cpu import gemm as _k

AVX512 = _k.variant_name() == "avx512"


@pytest.fixture
def fresh_cache(tmp_path):
    previous = _k.t48_time()
    fastnn.autotune(True, cache=tmp_path / "tune.json")
    yield tmp_path / "tune.json"
    fastnn.autotune(True)
    for module in _gemm.TILE_MODULES:
        importlib.import_module(f"fastnn.kernels.cpu.{module}").set_t48_time(previous)


@pytest.mark.skipif(not AVX512, reason="the 3-vector tile is AVX-512's")
def test_measured_once_then_cached(fresh_cache, monkeypatch):
    level = _isa.level_code("gemm")
    if _k.variant_name(level) != "avx512":
        pytest.skip("the gemm family runs below AVX-512 on this CPU")
    timed = []
    real = _k.blocked

    def counting(*args, **kwargs):
        timed.append(args[-1])
        return real(*args, **kwargs)

    monkeypatch.setattr(_k, "blocked", counting)
    ratio = _gemm._t48_time(level)
    low, high = _gemm.T48_RANGE
    assert low <= ratio <= high
    assert {_k.VARIANTS["avx512-t32"], _k.VARIANTS["avx512-t48"]} <= set(timed)
    assert float(_autotune.lookup(_gemm.T48_KEY)) == pytest.approx(ratio, abs=1e-4)
    timed.clear()
    assert _gemm._t48_time(level) == pytest.approx(ratio, abs=1e-4)
    assert timed == []  # read back, not timed again
    assert _gemm._t48_source == "cached"


def test_prior_without_autotuning(tmp_path):
    fastnn.autotune(False, cache=tmp_path / "tune.json")
    try:
        assert _gemm._t48_time(_isa.level_code("gemm")) == 1.0
        assert _autotune.lookup(_gemm.T48_KEY) is None
    finally:
        fastnn.autotune(True)


def test_calibration_sets_every_module(fresh_cache):
    _gemm.calibrate(force=True)
    ratios = {
        module: importlib.import_module(f"fastnn.kernels.cpu.{module}").t48_time()
        for module in _gemm.TILE_MODULES
    }
    assert len(set(ratios.values())) == 1, ratios
    assert _gemm.tile_speed()[0] == ratios["gemm"]


@pytest.mark.parametrize("ratio", [0.0, -1.0, float("nan")])
def test_bad_ratio_is_refused(ratio):
    with pytest.raises(ValueError, match="ratio must be > 0"):
        _k.set_t48_time(ratio)


@pytest.mark.parametrize(
    "setting, stale, measured, trials",
    [
        ("few_prefetch", 63, 4, _gemm.FEW_PREFETCH_TRIALS),
        ("narrow_t_n", 5, 40, (0, *_gemm.NARROW_T_TRIALS)),
    ],
)
def test_calibration_sets_a_measured_setting_everywhere(
    setting, stale, measured, trials, monkeypatch
):
    """The few-row prefetch distance and the widest transposed-A product on column tiles
    are measured at calibration (a value among the trials) and set in every module that
    compiles the GEMM in; ``fastnn info`` reads them as "measured", and the JAX handler
    gets them through _gemm.calibration()."""
    modules = [importlib.import_module(f"fastnn.kernels.cpu.{m}") for m in _gemm.TILE_MODULES]
    previous = [getattr(module, setting)() for module in modules]
    try:
        for module in modules:
            getattr(module, f"set_{setting}")(stale)
        monkeypatch.setattr(_gemm, f"_measure_{setting}", lambda level: measured)
        _gemm.calibrate(force=True)
        assert [getattr(module, setting)() for module in modules] == [measured] * len(modules)
        assert getattr(_gemm, setting)() == (measured, "measured")
        slot = ("flops", "short_k", "t48", "few_prefetch", "narrow_t_n").index(setting)
        assert _gemm.calibration()[slot] == measured
        monkeypatch.undo()
        assert getattr(_gemm, f"_measure_{setting}")(_isa.level_code("gemm")) in trials
    finally:
        for module, value in zip(modules, previous):
            getattr(module, f"set_{setting}")(value)


def test_bad_column_tile_width_is_refused():
    with pytest.raises(ValueError, match="set_narrow_t_n"):
        _k.set_narrow_t_n(-1)
