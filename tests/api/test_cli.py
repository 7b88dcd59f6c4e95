"""The command line: ``python -m fastnn info`` and ``demo``; README and CI agree."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _fastnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fastnn", *args], capture_output=True, text=True, timeout=300
    )


def test_info_reports_version_backends_blas_threads_and_simd():
    result = _fastnn("info")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needed in (
        "fastnn ",
        "backends:",
        "cpu",
        "reference",
        "numba-cuda",
        "cupy",
        "fastnn threads:",
        "BLAS:",
        "SIMD:",
    ):
        assert needed in out, needed


def test_info_json_is_machine_readable():
    result = _fastnn("info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["backends"]["reference"]["available"] is True
    assert info["threads"] >= 1
    assert info["blas"], "threadpoolctl found no BLAS"


def test_demo_trains_xor_and_checks_conv():
    result = _fastnn("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "XOR solved" in result.stdout


def _readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", text, re.S)
    assert match, "README.md must mark its test command with <!-- test-command -->"
    return match.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_test_command() in ci


# ---------------------------------------------------------------------------------------
# Newcomer fixes: --version, help text, bench's default suite, train's target, progress
# ---------------------------------------------------------------------------------------


def test_version(capsys):
    import fastnn
    from fastnn.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastnn {fastnn.__version__}"


def _subparsers():
    import argparse

    from fastnn.__main__ import _parser

    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action.choices


@pytest.mark.parametrize("columns", ["50", "80", "120"])
def test_help_wraps_on_word_boundaries(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    parser, commands = _subparsers()
    for name, sub in [("fastnn", parser), *commands.items()]:
        text = sub.format_help()
        words = set(text.split())
        for action in sub._actions:
            for word in (action.help or "").replace("%%", "%").split():
                if "%(" not in word:
                    assert word in words, f"{name} --help splits {word!r} at {columns} columns"


def test_bench_help_lists_families_whole_and_shows_defaults(monkeypatch):
    from fastnn.bench.catalog import DEFAULT_FAMILIES
    from fastnn.cli.bench import PLANS

    monkeypatch.setenv("COLUMNS", "80")
    text = " ".join(_subparsers()[1]["bench"].format_help().split())
    for family in DEFAULT_FAMILIES:
        assert re.search(rf"\b{family}\b", text), family
    assert f"quick {PLANS['quick'].budget:g}" in text and f"full {PLANS['full'].budget:g}" in text
    assert f"quick {PLANS['quick'].repeats}" in text and f"full {PLANS['full'].repeats}" in text
    assert "--seed SEED seed of the random inputs (default: 0)" in text
    assert "--out OUT output folder (default: bench_out)" in text


def _option_help(text: str, option: str) -> str:
    """The help entry of ``option`` in a --help text: its line and the indented ones after."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(option))
    entry = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(" " * 6) or line.lstrip().startswith("-"):
            break
        entry.append(line)
    return " ".join(" ".join(entry).split())


def test_every_option_with_a_default_shows_it(monkeypatch):
    import argparse

    monkeypatch.setenv("COLUMNS", "100")
    _, commands = _subparsers()
    for name, sub in commands.items():
        text = sub.format_help()
        for action in sub._actions:
            if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
                continue
            entry = _option_help(text, action.option_strings[-1])
            assert "default" in entry, (name, entry)


def test_bench_runs_the_quick_suite_unless_told_otherwise():
    from fastnn.cli.bench import _suite

    _, commands = _subparsers()
    bench = commands["bench"]
    assert _suite(bench.parse_args([])) == "quick"
    assert _suite(bench.parse_args(["--quick"])) == "quick"
    assert _suite(bench.parse_args(["--suite", "full"])) == "full"
    with pytest.raises(SystemExit, match="contradicts"):
        _suite(bench.parse_args(["--quick", "--suite", "full"]))


def test_plain_bench_says_that_the_full_suite_exists(tmp_path, monkeypatch, capsys):
    """``fastnn bench`` without a suite: the quick one, and a line about ``--suite full``
    (the quick suite's timing is swapped for the tiny one's to keep the test short)."""
    from fastnn.__main__ import main
    from fastnn.cli import bench

    monkeypatch.setitem(bench.PLANS, "quick", bench.PLANS["tiny"])
    monkeypatch.setitem(bench.ROOFLINES, "quick", bench.ROOFLINES["tiny"])
    args = ["bench", "--families", "dispatch", "--no-plots", "--out", str(tmp_path)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "fastnn bench: quick suite" in captured.out
    assert "--suite full" in captured.out and "on 2 cores" in captured.out
    assert json.loads((tmp_path / "results.json").read_text())["suite"] == "quick"
    # stderr is not a terminal here: one plain line per case, no bar
    lines = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert lines and lines[0].startswith("[1/") and "dispatch/" in lines[0]
    assert "\r" not in captured.err and max(len(line) for line in lines) < 120


def test_bench_says_when_the_machine_was_busy(tmp_path, monkeypatch, capsys):
    """The roof probes around a family disagree by 40% (faked: no timing): the warning is
    on stdout, at the top of report.md and in results.json."""
    from fastnn.__main__ import main
    from fastnn.bench import report, roofline

    gflops = iter([100.0, 60.0])

    def fake_check(threads, after, before, **kwargs):
        return {"after": after, "before": before, "gflops": next(gflops), "gbps": 20.0,
                "load_average": [2.5, 1.0, 0.5]}  # fmt: skip

    monkeypatch.setattr(roofline, "roof_check", fake_check)
    args = ["bench", "--suite", "tiny", "--families", "dispatch", "--no-plots"]
    assert main([*args, "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"WARNING: {report.BUSY_WARNING} in 1 families: dispatch (a roof moved 67%" in out
    assert out.rstrip().splitlines()[-1].startswith(f"WARNING: {report.BUSY_WARNING}")
    assert "roofs around the families (2 probes): 60.0-100.0 GFLOP/s" in out
    top = (tmp_path / "report.md").read_text().splitlines()[2]
    assert report.BUSY_WARNING in top and "dispatch" in top
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["reliability"]["busy"] == ["dispatch"]
    assert doc["roof_checks"][0]["load_average"] == [2.5, 1.0, 0.5]


def _fake_example(monkeypatch, reached: bool):
    """Make ``fastnn train mlp`` return a canned summary instead of training."""
    from fastnn.examples import mlp

    summary = {
        "example": "mlp",
        "test_accuracy": 0.97 if reached else 0.5,
        "target": "test accuracy >= 0.95",
        "reached": reached,
    }
    monkeypatch.setattr(mlp, "run", lambda config: dict(summary))


@pytest.mark.parametrize("require", [False, True])
def test_train_says_when_it_misses_its_target(tmp_path, monkeypatch, capsys, require):
    from fastnn.__main__ import main

    _fake_example(monkeypatch, reached=False)
    args = ["train", "mlp", "--out", str(tmp_path)] + (["--require-target"] if require else [])
    code = main(args)
    out = capsys.readouterr().out
    assert "TARGET MISSED: test accuracy >= 0.95 not reached (got test_accuracy 0.5)" in out
    assert code == (1 if require else 0)


def test_train_says_when_it_reaches_its_target(tmp_path, monkeypatch, capsys):
    from fastnn.__main__ import main

    _fake_example(monkeypatch, reached=True)
    assert main(["train", "mlp", "--out", str(tmp_path), "--require-target"]) == 0
    assert "target reached: test accuracy >= 0.95 (got test_accuracy 0.97)" in (
        capsys.readouterr().out
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bench_progress_is_a_bar_only_on_a_terminal(monkeypatch):
    from fastnn.bench import runner

    cases = list(range(3))
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not hasattr(runner._progress(cases, True), "set_postfix_str")  # plain lines
    assert runner._progress(cases, False) is cases
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys, "stderr", _Terminal())
    bar = runner._progress(cases, True)
    assert hasattr(bar, "set_postfix_str")
    bar.close()


def test_training_progress_has_no_bar_when_not_a_terminal(tmp_path, capsys):
    """Redirected output gets the per-epoch lines only, not a carriage-return bar."""
    from fastnn import examples
    from fastnn.examples._training import TrainConfig

    config = TrainConfig(epochs=2, batch_size=8, lr=0.2, out=tmp_path, subset=32, progress=True)
    examples.load("mlp").run(config)
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "batch/s" not in captured.err
    assert "epoch   1/2" in captured.out and "epoch   2/2" in captured.out


def test_training_progress_bar_on_a_terminal(monkeypatch):
    pytest.importorskip("tqdm")
    from fastnn.examples import _training

    monkeypatch.setattr(sys, "stderr", _Terminal())
    bar = _training._progress(range(3), 3, "epoch 1/1", True)
    assert hasattr(bar, "set_postfix")
    bar.close()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert _training._progress(range(3), 3, "epoch 1/1", True) == range(3)


# ---------------------------------------------------------------------------------------
# The README and the docs stand on their own
# ---------------------------------------------------------------------------------------


def test_readme_gives_time_disk_and_the_openblas_coretype_reason():
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "the main command takes about 9-10 minutes" in text
    assert "the test command about 13-14" in text
    assert "1.4 GB and 2.0 GB of disk" in text
    assert "`env -u OPENBLAS_CORETYPE` runs the benchmark without that environment" in text


def test_no_file_refers_to_the_shared_folder_outside_the_repository():
    outside = "../" + "shared"  # spelled in two pieces so that this file does not match
    names = tuple("shared" + "/" + name for name in ("API.md", "BENCH_SHAPES.md"))
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    for folder in ("fastnn", "bench", "tests", "kernels"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".pyx")]
    for path in files:
        text = path.read_text(errors="replace")
        if path.resolve() == Path(__file__).resolve():
            continue
        assert outside not in text, path
        for name in names:
            assert name not in text, (path, name)
    assert (ROOT / "docs" / "BENCHMARKS.md").is_file() and (ROOT / "docs" / "API.md").is_file()
