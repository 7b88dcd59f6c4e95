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
    new = copy.deepcopy(doc)
    timed_rows = [r for r in new["results"] if r["median_s"]]
    timed_rows[0]["median_s"] /= 2
    timed_rows[1]["median_s"] *= 2
    text, counts = report.compare(doc, new)
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
    assert table["f"]["numpy"] == (pytest.approx(3.0), 1)  # against the faster fastnn row


def test_compare_shows_the_speedups_of_both_reports():
    text, counts = report.compare(_synthetic(1.0, 3.0), _synthetic(2.0, 3.0))
    assert "## Speed-ups over each peer, old -> new" in text
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
    assert report.load(tmp_path / "results.json")["suite"] == "tiny"
    assert "\n## dispatch\n" in (tmp_path / "report.md").read_text()


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

    root = Path(__file__).resolve().parent.parent
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
