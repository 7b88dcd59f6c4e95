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


def test_calibration_sets_the_few_row_prefetch_everywhere(monkeypatch):
    """The few-row prefetch distance is measured at calibration (a distance in the
    trials, the prior unless another wins by the margin) and set in every module that
    compiles the GEMM in."""
    modules = [importlib.import_module(f"fastnn.kernels.cpu.{m}") for m in _gemm.TILE_MODULES]
    previous = [module.few_prefetch() for module in modules]
    try:
        for module in modules:
            module.set_few_prefetch(63)
        monkeypatch.setattr(_gemm, "_measure_few_prefetch", lambda level: 4)
        _gemm.calibrate(force=True)
        assert [module.few_prefetch() for module in modules] == [4] * len(modules)
        assert _gemm.few_prefetch() == (4, "measured")
    finally:
        for module, rows in zip(modules, previous):
            module.set_few_prefetch(rows)
    assert _gemm._measure_few_prefetch(_isa.level_code("gemm")) in _gemm.FEW_PREFETCH_TRIALS


def test_calibration_sets_the_column_tile_width_everywhere(monkeypatch):
    """The widest transposed-A product on column tiles is measured at calibration (0 or a
    width in the trials, whole tiles of 8 columns) and set in every module that compiles
    the GEMM in; the measurement leaves the kernel at what it returns."""
    modules = [importlib.import_module(f"fastnn.kernels.cpu.{m}") for m in _gemm.TILE_MODULES]
    previous = [module.narrow_t_n() for module in modules]
    try:
        for module in modules:
            module.set_narrow_t_n(5)
        monkeypatch.setattr(_gemm, "_measure_narrow_t_n", lambda level: 16)
        _gemm.calibrate(force=True)
        assert [module.narrow_t_n() for module in modules] == [16] * len(modules)
        assert _gemm.narrow_t_n() == (16, "measured")
        assert _gemm.calibration()[4] == 16
        monkeypatch.undo()
        width = _gemm._measure_narrow_t_n(_isa.level_code("gemm"))
        assert width in (0, *_gemm.NARROW_T_TRIALS)
        assert _k.narrow_t_n() == width
    finally:
        for module, width in zip(modules, previous):
            module.set_narrow_t_n(width)


def test_bad_column_tile_width_is_refused():
    with pytest.raises(ValueError, match="set_narrow_t_n"):
        _k.set_narrow_t_n(-1)
