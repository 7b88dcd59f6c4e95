"""bench/scripts/torch_patch.py runs end to end (tiny settings) and prints its table."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from tests.utils import import_torch

torch = pytest.importorskip("torch")
import_torch()

import fastnn  # noqa: E402

SCRIPT = Path(__file__).parents[1] / "bench" / "scripts" / "torch_patch.py"


def test_torch_patch_benchmark_smoke(monkeypatch, capsys):
    argv = [str(SCRIPT), "--models", "lenet", "--lenet-batch", "4", "--threads", "1"]
    argv += ["--rounds", "1", "--min-seconds", "0.01"]
    monkeypatch.setattr(sys, "argv", argv)
    threads = fastnn.get_num_threads()
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        fastnn.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "swapped 11 layer(s)" in out
    assert "fastnn kernels in place: conv2d=" in out
    table = out.split("| model |")[1]
    assert "| lenet |" in table
