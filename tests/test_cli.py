"""The command line: ``python -m fastnn info`` and ``demo``; README and CI agree."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
