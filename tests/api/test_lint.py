"""The code base stays ruff-clean (lint rules and formatting from pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ["fastnn", "kernels", "tests", "bench", "setup.py"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff") or str(Path(__import__("sys").executable).parent / "ruff")
    paths = [t for t in TARGETS if (ROOT / t).exists()]
    return subprocess.run([ruff, *args, *paths], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("command", [("check",), ("format", "--check")])
def test_ruff_is_clean(command):
    result = _ruff(*command)
    assert result.returncode == 0, result.stdout + result.stderr
