"""The benchmark tables (fastnn.bench.tables, ``fastnn bench --table``, bench/scripts/):
each table's cases compute what they claim (fastnn against its peer on small shapes), and
one tiny run of each prints its table.  Structure, not speed: no timed assertions."""

from __future__ import annotations

import runpy
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn.bench import shapes
from fastnn.bench.case import Impl, prepare, to_numpy
from fastnn.bench.runner import run_case
from fastnn.bench.tables import TABLES, main_of
from fastnn.bench.timing import TimingPlan
from tests.utils import import_torch

torch = pytest.importorskip("torch")
import_torch()

PLAN = TimingPlan.rounds(1, settle=0.0)
ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def threads_kept():
    """Tables set fastnn's and torch's threads: put them back."""
    ours, theirs = fastnn.get_num_threads(), torch.get_num_threads()
    yield
    fastnn.set_num_threads(ours)
    torch.set_num_threads(theirs)


def _results(case) -> dict:
    """Every implementation of ``case`` run once on its data, as NumPy."""
    data = case.data(np.random.default_rng(0))
    return {impl.name: to_numpy(prepare(impl, data)()) for impl in case.impls}


def _close(got, want, tol=1e-4) -> None:
    if isinstance(want, (tuple, list)):
        for g, w in zip(got, want):
            if w is not None:
                _close(g, w, tol)
        return
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------
# conv


TINY_CONV = (
    shapes.ConvShape("tiny2d", 2, 3, (9, 8), 4, (3, 3), 1, 1),
    shapes.ConvShape("tiny2d-5x5", 1, 2, (11, 11), 3, (5, 5), 2, 0),
    shapes.ConvShape("tiny1d", 2, 3, (17,), 4, (5,), 2, 2),
)


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("shape", TINY_CONV, ids=lambda s: s.name)
def test_conv_table_cases_match_torch_and_skip_what_an_algorithm_refuses(shape, backward):
    from fastnn.bench.tables import conv

    algos = ["im2col", "direct", "winograd"]
    case = conv.table_case(shape, algos, backward, np.float32)
    assert [i.name for i in case.impls] == ["torch", *algos]
    winograd = shape.kernel == (3, 3) and shape.stride == 1
    measured = run_case(case, PLAN).measurements
    assert measured["torch"].ok and measured["im2col"].ok and measured["direct"].ok
    assert measured["winograd"].ok == winograd
    if not winograd:
        assert measured["winograd"].skipped
    data = case.data(np.random.default_rng(0))
    want = to_numpy(prepare(case.impls[0], data)())
    for impl in case.impls[1 : 3 + winograd]:
        _close(to_numpy(prepare(impl, data)()), want, 2e-3)


def test_conv_table_prints_a_row_per_shape_and_the_geomeans(capsys):
    argv = ["--only", "LeNet5-C3", "--rounds", "1", "--budget", "0.001", "--threads", "1"]
    assert main_of("conv")([*argv, "--algos", "im2col,winograd"]) == 0
    out = capsys.readouterr().out
    assert "| LeNet5-C3 | 0.06 |" in out and out.count("| LeNet5-C3") == 1
    row = out.split("| LeNet5-C3")[1].splitlines()[0]
    assert row.count(" - ") == 2  # winograd refuses 5x5: its time and its ratio
    assert "geomean speed-up im2col" in out and "geomean speed-up winograd" not in out


def test_conv_table_refuses_a_thread_clock_with_several_threads():
    with pytest.raises(SystemExit):
        main_of("conv")(["--clock", "thread", "--threads", "2"])


# ---------------------------------------------------------------------------------------
# pool


@pytest.mark.parametrize("shape", [(2, 3, 9, 7), (2, 3, 11)], ids=["2d", "1d"])
def test_pool_table_cases_match_torch_beside_a_copy(shape):
    from fastnn.bench.tables import pool

    copies = []
    for op in pool.OPS:
        case = pool.table_case("tiny", shape, 3, 2, 1, op, np.float32,
                               lambda n: copies.append(n) or (lambda: None))  # fmt: skip
        names = [i.name for i in case.impls]
        assert names == ["fastnn", "copy"] + ([] if op == "max_bwd_re" else ["torch"])
        got = _results(case)
        if op != "max_bwd_re":
            _close(got["fastnn"], got["torch"])
        assert copies[-1] == case.bytes > 0
    with pytest.raises(ValueError, match="op must be one of"):
        pool.table_case("tiny", shape, 2, 2, 0, "min", np.float32, lambda n: lambda: None)


def test_parallel_copy_copies_in_every_thread():
    from concurrent.futures import ThreadPoolExecutor

    from fastnn.bench.tables.pool import parallel_copy

    with ThreadPoolExecutor(2) as workers:
        for threads in (1, 2):
            parallel_copy(1000, threads, workers)()


def test_pool_table_prints_each_op_of_a_shape(capsys):
    argv = ["--only", "LeNet-S4", "--rounds", "1", "--threads", "1", "--ops", "max,max_bwd_re"]
    assert main_of("pool")(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("LeNet-S4")]
    assert [line.split()[1] for line in lines] == ["max", "max_bwd_re"]
    assert lines[1].split()[3] == "-"  # no torch peer for recomputed indices


# ---------------------------------------------------------------------------------------
# dense


def test_dense_table_cases_match_numpy():
    from fastnn.bench.tables import dense

    cases = [
        dense.gemm_case(7, 5, 9, False, False, np.float32, engines=True),
        dense.gemm_case(6, 4, 3, True, True, np.float32, engines=False),
        dense.linear_case(3, 7, 5, np.float32),
        *(dense.sensitivity_case(act, 4, 6, 5, np.float32) for act in dense.UNFUSED),
    ]
    for case in cases:
        got = _results(case)
        for value in got.values():
            _close(value, got["numpy"])
    case, moved = dense.elementwise_case(3000, np.float32)
    assert set(moved) == {i.name for i in case.impls} and "softmax (rows 1000)" in moved
    got = _results(case)
    _close(got["relu"], got["np.maximum(x, 0)"])
    assert set(_results(dense.overhead_case(np.float32))) >= {"fastnn.relu(x)", "np.tanh(x)"}


def test_dense_table_overhead_prints_per_call_times(capsys):
    argv = ["overhead", "--rounds", "1", "--min-seconds", "0.0001", "--settle", "0"]
    assert main_of("dense")([*argv, "--threads", "1", "--clock", "thread"]) == 0
    assert "relu / np.maximum:" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# training steps and whole models


def test_lenet_step_table_compares_one_step_then_times_both(capsys):
    argv = ["--batch", "2", "--rounds", "1", "--min-seconds", "0.0001", "--threads", "1"]
    assert main_of("lenet-step")(argv) == 0
    out = capsys.readouterr().out
    loss = out.split("loss ")[1]
    assert loss.split(" (fastnn)")[0][:6] == loss.split("vs ")[1][:6]
    assert "torch / fastnn =" in out and "fastnn phases: forward+loss" in out


def test_mlp_step_table_prints_both_models(capsys):
    assert main_of("mlp-step")(["--budget", "0.0001", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "| XOR 2-4-1, SGD, MSE |" in out and "| 784-300-10, SGD+momentum, CE |" in out


def test_model_convs_table_shows_a_refused_algorithm_as_a_dash(capsys):
    argv = ["lenet", "--batch", "2", "--budget", "0.0001", "--repeats", "1", "--threads", "1"]
    assert main_of("model-convs")([*argv, "--no-tune", "--algos", "im2col,winograd"]) == 0
    out = capsys.readouterr().out
    assert "| C1 | 1 | 1x32x32->6 5x5/1 |" in out and "total fwd+bwd" in out
    assert "winograd nan ms" in out  # no LeNet layer is 3x3


def test_winograd_table_ranks_configurations_against_the_plan(capsys):
    argv = ["--layers", "8x6", "--batch", "1", "--budget", "0.0001", "--top", "1"]
    assert main_of("winograd")([*argv, "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "1x8x6x6 -> 8: torch" in out and "best (m, isa, pb, kc, tk, tp):" in out


def test_sweep_table_writes_its_json_and_lists_the_slowest(capsys, tmp_path):
    out_file = tmp_path / "sweep.json"
    argv = ["--suite", "tiny", "--budget", "0.0001", "--repeats", "1", "--threads", "1"]
    assert main_of("sweep")([*argv, "--json", str(out_file), "--only", "loss"]) == 0
    out = capsys.readouterr().out
    assert out_file.exists() and "cases slowest against torch" in out


def test_sweep_recheck_pools_the_samples_of_the_cases_it_measures_again():
    from fastnn.bench.catalog import build_cases
    from fastnn.bench.peers import detect
    from fastnn.bench.runner import run_cases
    from fastnn.bench.tables import sweep
    from fastnn.bench.timing import TimingPlan

    plan = TimingPlan.rounds(2)
    cases = [c for c in build_cases("tiny", detect(), ["sweep"]) if c.shape.startswith("loss:")]
    results = run_cases(cases[:2], plan, progress=False)
    before = {r.case.shape: {k: m.runs for k, m in r.measurements.items()} for r in results}
    again, left = sweep.recheck(list(results), {cases[0].shape}, plan, rounds=1)
    assert len(left) == 1 and 0 <= left[0] <= 2
    first, second = again
    assert all(
        m.runs == before[cases[0].shape][k] + 2 for k, m in first.measurements.items() if m.ok
    )
    assert {k: m.runs for k, m in second.measurements.items()} == before[cases[1].shape]
    assert sweep.recheck(list(results), set(), plan, rounds=3)[1] == []


def test_co_tenancy_table_times_both_steps_alone_and_beside_a_neighbour(capsys):
    argv = ["--neighbours", "busy", "--trials", "1", "--batch", "2", "--budget", "0.0001"]
    assert main_of("co-tenancy")([*argv, "--warm", "0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "| busy | 1 |" in out and "worst beside busy: fastnn" in out
    assert "worst beside busy: fastnn relu 256K" in out
    assert "worst beside busy: torch softmax 128x10" in out


# ---------------------------------------------------------------------------------------
# the GPU smoke test: its cases, and one run with the CPU standing in for the GPU


def test_gpu_smoke_cases_cover_every_op_on_each_backend():
    from fastnn.bench.tables.gpu_smoke_cases import build_cases

    cases = build_cases("tiny", ["cupy", "numba-cuda"])
    assert len({c.shape for c in cases}) == len(cases)
    for case in cases:
        names = [i.name for i in case.impls]
        assert names[:2] == ["fastnn[cupy]", "fastnn[numba-cuda]"]
        assert [i.device for i in case.impls[:2]] == ["cupy", "numba"]
        assert case.params["tolerance"] > 0 and case.family == "smoke"
    with pytest.raises(ValueError, match="unknown GPU backends"):
        build_cases("tiny", ["cpu"])
    with pytest.raises(ValueError, match="size must be one of"):
        build_cases("huge")


def test_gpu_smoke_run_case_passes_and_fails_with_the_cpu_standing_in():
    from fastnn.bench.tables import gpu_smoke
    from fastnn.bench.tables.gpu_smoke_cases import build_cases

    def on_cpu(case, broken: bool = False):
        def run(d):
            if broken:
                raise RuntimeError("no kernel")
            return getattr(fastnn, case.op)(*d["args"], backend="cpu", **d["kwargs"])

        return replace(case, impls=(Impl("fastnn[cpu]", run),))

    plan = TimingPlan.rounds(1, settle=0.0)
    for case in build_cases("tiny", []):
        data = case.data(np.random.default_rng(0))
        want = getattr(fastnn, case.op)(*data["args"], backend="cpu", **data["kwargs"])
        [row] = gpu_smoke.run_case(on_cpu(case), want, plan)
        assert row.passed and row.error == 0.0 and row.seconds > 0, case.shape
    [row] = gpu_smoke.run_case(on_cpu(case, broken=True), want, plan)
    assert not row.passed and "no kernel" in row.note and row.seconds is None


def test_gpu_smoke_skips_without_a_gpu(capsys, monkeypatch):
    import fastnn.__main__
    from fastnn.bench.tables import gpu_smoke

    monkeypatch.setattr(gpu_smoke, "gpu_backends", lambda: {})
    assert fastnn.__main__.main(["bench", "--gpu-smoke", "--quick"]) == 0
    assert "skipped: no GPU" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# the command line and the scripts


def test_every_table_has_a_main_and_the_cli_refuses_an_unknown_one():
    import fastnn.__main__

    for name in TABLES:
        assert callable(main_of(name))
    with pytest.raises(ValueError, match="unknown table"):
        main_of("nope")
    with pytest.raises(SystemExit, match="expected one of conv, pool"):
        fastnn.__main__.main(["bench", "--table", "nope"])


def test_cli_and_script_run_the_same_table(capsys, monkeypatch):
    import fastnn.__main__

    argv = ["overhead", "--rounds", "1", "--min-seconds", "0.0001", "--settle", "0"]
    assert fastnn.__main__.main(["bench", "--table", "dense", *argv]) == 0
    cli = capsys.readouterr().out
    script = ROOT / "bench" / "scripts" / "cpu_dense.py"
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    runpy.run_path(str(script), run_name="__main__")
    assert cli.splitlines()[0] == capsys.readouterr().out.splitlines()[0]


def test_every_script_is_a_thin_entry_point_of_a_table():
    for script in (ROOT / "bench" / "scripts").glob("*.py"):
        text = script.read_text()
        if "run_script(" not in text:
            continue  # another issue's script
        name = text.split('run_script("')[1].split('"')[0]
        assert name in TABLES and len(text.splitlines()) < 15, script
