"""The report pipeline on a tiny case list: valid markdown, JSON and PNG files,
``--compare``, and peers that are missing are reported as skipped."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from fastnn.bench import report
from fastnn.bench.catalog import build_cases
from fastnn.bench.peers import Environment, detect
from fastnn.bench.roofline import Roofline
from fastnn.bench.runner import run_cases
from fastnn.bench.timing import TimingPlan

PLAN = TimingPlan(budget=0.005, repeats=2, min_sample=0.0002, settle=0.0, min_runs=1)
ROOF = Roofline(gflops=100.0, gbps=20.0, threads=2, gemm_size=256, copy_mbytes=16)


def _without_torch() -> Environment:
    """This machine's environment, but with torch (CPU and GPU) reported missing."""
    env = detect()
    available = dict(env.available)
    available["torch"] = (False, "torch is not installed (pretend)")
    available["torch-cuda"] = (False, "torch is not installed (pretend)")
    return Environment(available, env.cpu_ops)


@pytest.fixture(scope="module")
def doc():
    env = _without_torch()
    cases = build_cases("tiny", env, ["gemm", "activation", "conv2d"])
    results = run_cases(cases, PLAN, progress=False)
    peers = {k: {"available": ok, "detail": why} for k, (ok, why) in env.available.items()}
    meta = {"suite": "tiny", "created": "now", "threads": {"fastnn": 2}, "peers": peers}
    return report.document(results, ROOF, meta)


def test_missing_peer_is_not_run_and_is_reported_as_skipped(doc):
    impls = {row["impl"] for row in doc["results"]}
    assert "torch" not in impls and "numpy" in impls
    text = report.markdown(doc)
    assert "- torch: skipped (torch is not installed (pretend))" in text


def test_markdown_has_a_table_per_family_and_ratio_columns(doc):
    text = report.markdown(doc)
    for family in ("gemm", "activation", "conv2d"):
        assert f"\n## {family}\n" in text
    header = next(line for line in text.splitlines() if line.startswith("| op | shape"))
    assert "| vs numpy |" in header and "| % roof |" in header
    rows = [line for line in text.splitlines() if line.startswith("| gemm | tiny-NN |")]
    assert len(rows) >= 3  # fastnn[reference], numpy, scipy at least
    family_tables = text.split("\n## ")[2:]  # after the header and the summary
    for table in family_tables:
        lines = [line for line in table.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in lines}) == 1, table


def test_json_round_trips_and_rows_are_complete(doc, tmp_path):
    path = tmp_path / "results.json"
    report.write_json(doc, path)
    again = report.load(path)
    assert again["results"] == json.loads(json.dumps(doc["results"]))
    for row in again["results"]:
        assert row["median_s"] is None or row["best_s"] <= row["median_s"]
        assert row["flops"] >= 0 and row["bytes"] > 0
    (tmp_path / "bad.json").write_text('{"results": []}')
    with pytest.raises(ValueError, match="not a fastnn bench report"):
        report.load(tmp_path / "bad.json")


def test_plots_are_png_files(doc, tmp_path):
    from fastnn.bench.plots import plot_ratios, plot_roofline

    plot_roofline(doc, tmp_path / "roofline.png")
    assert plot_ratios(doc, "conv2d", tmp_path / "ratios.png")
    assert not plot_ratios(doc, "no-such-family", tmp_path / "none.png")
    for path in (tmp_path / "roofline.png", tmp_path / "ratios.png"):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000, path


def test_compare_reports_faster_slower_and_same(doc):
    text, counts = report.compare(doc, doc)
    timed = sum(1 for r in doc["results"] if r["median_s"])
    assert counts["same"] == timed and counts["faster"] == counts["slower"] == 0
    old = copy.deepcopy(doc)
    for row in old["results"]:  # samples within +-1%, whatever this machine did
        row["spread"] = 0.02
    new = copy.deepcopy(old)
    timed_rows = [r for r in new["results"] if r["median_s"]]
    timed_rows[0]["median_s"] /= 2
    timed_rows[1]["median_s"] *= 2
    text, counts = report.compare(old, new)
    assert counts["faster"] == 1 and counts["slower"] == 1
    assert "SLOWER" in text and "-50.0%" in text


def _synthetic(ours: float, numpy: float) -> dict:
    row = {"family": "f", "op": "o", "shape": "s", "metric": "flops", "flops": 1, "bytes": 1}
    rows = [
        {**row, "impl": "fastnn[cpu]", "median_s": ours},
        {**row, "impl": "fastnn[cpu:direct]", "median_s": 2 * ours},
        {**row, "impl": "numpy", "median_s": numpy},
    ]
    return {"results": rows, "roofline": ROOF.to_dict()}


def test_speedups_are_peer_time_over_fastnn_time():
    table = report.speedups(_synthetic(1.0, 3.0))
    assert table["f"]["numpy"].geomean == pytest.approx(3.0)  # the default path, fastnn[cpu]
    assert table["f"]["numpy"].median == pytest.approx(3.0)
    assert table["f"]["numpy"].cases == 1 and table["f"]["numpy"].left_out == 0


def test_compare_shows_the_speedups_of_both_reports():
    text, counts = report.compare(_synthetic(1.0, 3.0), _synthetic(2.0, 3.0))
    assert "## Default path's speed-ups over each peer, old -> new" in text
    assert "| f | 3.00x -> 1.50x |" in text
    assert counts["slower"] == 2 and counts["same"] == 1


def test_cli_runs_in_a_fresh_process(tmp_path):
    """``python -m fastnn bench`` end to end: warns about OPENBLAS_CORETYPE, prints the
    threads and the skipped peers, writes the JSON and markdown report."""
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    args = [sys.executable, "-m", "fastnn", "bench", "--suite", "tiny", "--families", "dispatch"]
    args += ["--no-progress", "--no-plots", "--out", str(tmp_path)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "warning: OPENBLAS_CORETYPE=Haswell" in run.stderr
    assert "threads: fastnn" in run.stdout and "roofline:" in run.stdout
    assert "skipped   cupy" in run.stdout  # no GPU packages on the CI machine
    assert "## Summary" in run.stdout
    doc = report.load(tmp_path / "results.json")
    assert doc["suite"] == "tiny" and doc["format"] == report.FORMAT
    from fastnn._machine import cpu_model

    assert doc["cpu_model"] == cpu_model() and doc["cpus"] == os.cpu_count()
    assert doc["load_average"] is None or len(doc["load_average"]) == 3
    # one probe before the only family, one after it
    assert [(c["after"], c["before"]) for c in doc["roof_checks"]] == [
        (None, "dispatch"),
        ("dispatch", None),
    ]
    assert all(c["gflops"] > 0 and c["gbps"] > 0 for c in doc["roof_checks"])
    assert set(doc["reliability"]["families"]) == {"dispatch"}
    assert all(len(r["times_s"]) == r["runs"] for r in doc["results"])
    assert "roofs around the families (2 probes)" in run.stdout
    text = (tmp_path / "report.md").read_text()
    assert "\n## dispatch\n" in text and "## Was the machine quiet?" in text
    assert f"- CPU model: {cpu_model()}" in text


def test_cli_compare(tmp_path, doc, capsys):
    """In this process (no second start-up): --compare reads an earlier results.json and
    writes compare.md."""
    import fastnn
    from fastnn.__main__ import main

    old = tmp_path / "old.json"
    report.write_json(doc, old)
    args = ["bench", "--suite", "tiny", "--families", "gemm", "--no-progress", "--no-plots"]
    args += ["--threads", str(fastnn.get_num_threads()), "--out", str(tmp_path / "new")]
    assert main([*args, "--compare", str(old)]) == 0
    out = capsys.readouterr().out
    assert "compared with" in out
    table = (tmp_path / "new" / "compare.md").read_text()
    assert "| implementation | old | new | change |" in table
    assert "| gemm | tiny-NN | numpy |" in table
    assert not list((tmp_path / "new").glob("*.png"))


def test_cli_rejects_a_file_that_is_not_a_report(tmp_path, capsys):
    from fastnn.__main__ import main

    bad = tmp_path / "old.json"
    bad.write_text("[1, 2]")
    args = ["bench", "--suite", "tiny", "--out", str(tmp_path), "--compare", str(bad)]
    assert main(args) == 2
    assert "not a fastnn bench report" in capsys.readouterr().err


def test_readme_main_command_runs_the_quick_report():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text()
    main = text.split("<!-- main-command -->", 1)[1].split("```", 2)[1]
    assert "env -u OPENBLAS_CORETYPE .venv/bin/fastnn bench --quick" in main
    assert "pytest bench --benchmark-only" in (root / "bench" / "README.md").read_text()


def test_worst_cases_are_the_lowest_speedups_first():
    from fastnn.bench.report import worst_cases, worst_table

    def row(family, shape, impl, seconds):
        return {"family": family, "op": "op", "shape": shape, "impl": impl, "median_s": seconds}

    doc = {
        "results": [
            row("sweep", "a", "fastnn[cpu]", 2.0), row("sweep", "a", "torch", 1.0),
            row("sweep", "b", "fastnn[cpu]", 1.0), row("sweep", "b", "torch", 3.0),
            row("sweep", "c", "fastnn[cpu]", 1.0), row("sweep", "c", "numpy", 1.0),
            row("gemm", "d", "fastnn[cpu]", 9.0), row("gemm", "d", "torch", 1.0),
        ]
    }  # fmt: skip
    worst = worst_cases(doc, "torch", "sweep")
    assert [r["shape"] for r in worst] == ["a", "b"]  # c has no torch time, d is not sweep
    assert worst[0]["speedup"] == 0.5 and worst[1]["speedup"] == 3.0
    assert [r["shape"] for r in worst_cases(doc, "torch", None, count=1)] == ["d"]
    table = worst_table(worst)
    assert len(table) == 4 and "0.50x" in table[2]


# ---------------------------------------------------------------------------------------
# A report that knows when it is wrong (synthetic results: no timing)
# ---------------------------------------------------------------------------------------


def _case(family, op, shape, times, work=1e6, metric="bytes", samples=None):
    """Rows of one case: ``times`` maps each implementation to its median time; each row
    gets ``samples`` (relative to its median, default a tight +-1%) as its samples."""
    rows = []
    for impl, seconds in times.items():
        relative = samples or (0.99, 1.0, 1.01)
        rows.append(
            {
                "family": family, "op": op, "shape": shape, "params": {},
                "flops": work, "bytes": work, "metric": metric, "impl": impl,
                "median_s": seconds, "best_s": seconds * min(relative), "runs": len(relative),
                "loops": 1, "times_s": [seconds * r for r in relative], "error": None,
                "skipped": None,
            }
        )  # fmt: skip
    return rows


def _doc_of(*cases, checks=()):
    rows = [row for case in cases for row in case]
    return {
        "format": report.FORMAT, "suite": "test", "created": "now",
        "roofline": ROOF.to_dict(), "roof_checks": list(checks), "results": rows,
    }  # fmt: skip


def _check(after, before, gflops=100.0, gbps=20.0, load=(0.1, 0.1, 0.1)):
    return {"after": after, "before": before, "gflops": gflops, "gbps": gbps,
            "load_average": list(load)}  # fmt: skip


def test_spread_is_p90_minus_p10_over_the_median():
    assert report.spread([1.0, 1.0, 1.0]) == 0.0
    assert report.spread([1.0]) is None and report.spread([]) is None
    # 1, 2, 3, 4, 5: p10 = 1.4, p90 = 4.6, median 3
    assert report.spread([5.0, 1.0, 3.0, 2.0, 4.0]) == pytest.approx(3.2 / 3)


def test_a_busy_run_is_flagged_by_its_roofs_and_by_its_spread():
    quiet = _case("gemm", "gemm", "a", {"fastnn[cpu]": 1.0, "numpy": 1.0})
    moved = _case("conv2d", "conv2d", "b", {"fastnn[cpu]": 1.0, "torch": 1.0})
    noisy = _case(
        "activation", "relu", "c", {"fastnn[cpu]": 1.0, "torch": 2.0}, samples=(0.5, 1.0, 3.0)
    )
    checks = [
        _check(None, "gemm"),
        _check("gemm", "conv2d", gflops=98.0),  # 2%: quiet
        _check("conv2d", "activation", gflops=60.0),  # 40% down during conv2d
        _check("activation", None, gflops=99.0),
    ]
    doc = _doc_of(quiet, moved, noisy, checks=checks)
    verdict = report.reliability(doc)
    assert verdict["busy"] == ["conv2d", "activation"]
    families = verdict["families"]
    assert families["gemm"]["reasons"] == [] and families["gemm"]["roof_moved"] < 0.1
    assert families["conv2d"]["roof_moved"] == pytest.approx(98 / 60 - 1)
    assert any("roof moved" in why for why in families["conv2d"]["reasons"])
    assert families["activation"]["spread"] > report.SPREAD_LIMIT
    assert any("spread" in why for why in families["activation"]["reasons"])

    text = report.markdown(doc)
    top = text.splitlines()[:4]
    assert any(report.BUSY_WARNING in line and "conv2d" in line for line in top), top
    assert "gemm (" not in top[2]  # the quiet family is not named
    assert "| conv2d (busy) | torch |" in text and "| gemm | numpy |" in text
    assert "## Was the machine quiet?" in text and "| gemm -> conv2d | 98.0 |" in text
    summary = report.markdown_summary(doc)
    assert summary.startswith("WARNING: " + report.BUSY_WARNING)


def test_a_quiet_run_has_no_warning():
    case = _case("gemm", "gemm", "a", {"fastnn[cpu]": 1.0, "numpy": 1.0})
    doc = _doc_of(case, checks=[_check(None, "gemm"), _check("gemm", None, gbps=19.5)])
    assert report.reliability(doc)["busy"] == []
    assert report.BUSY_WARNING not in report.markdown(doc)
    assert report.busy_warning(doc) == []


def test_a_peer_far_below_its_own_rate_is_marked_and_left_out():
    """torch's 2-thread softmax: 7.4 ms on 128x10, where 4096x1000 (3200x the bytes)
    takes 1 ms; fastnn takes 10 us and 2 ms."""
    small = _case("activation", "softmax", "128x10", {"fastnn[cpu]": 1e-5, "torch": 7.4e-3}, 1e4)
    large = _case("activation", "softmax", "4096x1000", {"fastnn[cpu]": 2e-3, "torch": 1e-3}, 3.2e7)
    # a small relu whose fixed call cost keeps its rate low is not an anomaly: larger
    # shapes take longer
    tiny = _case("activation", "relu", "8", {"fastnn[cpu]": 1e-6, "torch": 1.2e-6}, 64)
    big = _case("activation", "relu", "1M", {"fastnn[cpu]": 1e-4, "torch": 1e-4}, 8e6)
    doc = _doc_of(small, large, tiny, big)
    anomalies = report.peer_anomalies(doc)
    assert set(anomalies) == {("activation", "softmax", "128x10", "torch")}
    table = report.speedups(doc)["activation"]["torch"]
    assert table.cases == 3 and table.left_out == 1
    assert table.geomean == pytest.approx((0.5 * 1.2 * 1.0) ** (1 / 3))  # no 740x in it
    assert table.median == pytest.approx(1.0)
    text = report.markdown(doc)
    assert "| softmax | 128x10 | torch * |" in text
    assert "| softmax | 128x10 | fastnn[cpu] |" in text and "740.00x *" in text
    assert "left out of the summary" in text
    assert "| activation | torch | 3 | 0.84x | 1.00x | 0.84x | 1 |" in text


def test_the_summary_is_the_default_path_and_best_of_variants_a_separate_column():
    """conv: fastnn[cpu] (auto) 2 ms, a forced algorithm 1 ms, torch 2 ms; an op without
    a CPU kernel: the user gets the reference backend."""
    conv = _case(
        "conv2d", "conv2d", "a",
        {"fastnn[cpu]": 2e-3, "fastnn[cpu:direct]": 1e-3, "fastnn[reference]": 8e-3,
         "torch": 2e-3},
    )  # fmt: skip
    fallback = _case("loss", "huber", "a", {"fastnn[reference]": 4e-3, "torch": 1e-3})
    doc = _doc_of(conv, fallback)
    default, best = report.speedups(doc), report.speedups(doc, "best")
    assert default["conv2d"]["torch"].geomean == pytest.approx(1.0)
    assert best["conv2d"]["torch"].geomean == pytest.approx(2.0)
    assert default["conv2d"]["fastnn[reference]"].geomean == pytest.approx(4.0)
    assert default["loss"]["torch"].geomean == pytest.approx(0.25)  # the reference's time
    assert "fastnn[reference]" not in default["loss"]  # not against itself
    assert "loss" not in best  # no fastnn kernel: nothing to pick from
    text = report.markdown(doc)
    assert "## Summary: fastnn's default path vs each peer" in text
    assert "| family | peer | cases | geomean | median | best of variants | left out |" in text
    assert "| conv2d | torch | 1 | 1.00x | 1.00x | 2.00x |  |" in text
    assert report.default_impl(conv, "torch") == "fastnn[cpu]"
    assert report.default_impl(conv, "torch-cuda") is None  # no fastnn[cupy] row
    assert report.default_impl(fallback, "torch") == "fastnn[reference]"
    worst = report.worst_cases(doc, "torch", "conv2d")
    assert worst[0]["fastnn_s"] == pytest.approx(2e-3)  # the default path, not the best


def test_compare_marks_changes_within_the_measured_noise():
    def run(fastnn_s, samples):
        return _doc_of(
            _case("gemm", "gemm", "a", {"fastnn[cpu]": fastnn_s, "numpy": 1.0}, samples=samples)
        )

    tight, wide = (0.99, 1.0, 1.01), (0.6, 1.0, 1.6)
    # 30% slower with +-1% samples: a slow-down
    text, counts = report.compare(run(1.0, tight), run(1.3, tight))
    assert counts["slower"] == 1 and counts["same"] == 1 and "SLOWER" in text
    # the same 30% with samples that spread over 80% of the median: noise
    text, counts = report.compare(run(1.0, wide), run(1.3, wide))
    assert counts["slower"] == 0 and counts["same"] == 2
    assert "| gemm | a | fastnn[cpu] | 1 s | 1.3 s | +30.0% | +-80% | within noise |" in text
    assert "| gemm | 1.00x -> 0.77x ~ |" in text  # the family's speed-up: within noise too
    # the noise band: the mean of the two spreads, at least NOISE
    assert report.noise_band(0.02, 0.04) == report.NOISE
    assert report.noise_band(0.5, 0.3) == pytest.approx(0.4)
    assert report.noise_band(None, 0.3) == pytest.approx(0.3)  # a version-1 report


def test_compare_names_a_busy_run_and_reads_version_1_reports(tmp_path):
    case = _case("gemm", "gemm", "a", {"fastnn[cpu]": 1.0, "numpy": 1.0})
    busy = _doc_of(case, checks=[_check(None, "gemm"), _check("gemm", None, gbps=10.0)])
    old = copy.deepcopy(_doc_of(case))
    old["format"] = 1
    for row in old["results"]:
        del row["times_s"]
    path = tmp_path / "old.json"
    report.write_json(old, path)
    old = report.load(path)
    text, counts = report.compare(old, busy)
    assert f"- WARNING: {report.BUSY_WARNING} in the new run: gemm" in text
    assert counts["same"] == 2
    text = report.markdown(old)
    assert report.BUSY_WARNING not in text
    assert "| gemm | - | - | - | unknown (no roof probes, no samples) |" in text
