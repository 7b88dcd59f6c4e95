"""bench/scripts/torch_patch.py runs end to end (tiny settings) and prints its table."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

from tests.utils import import_torch

torch = pytest.importorskip("torch")
import_torch()

import fastnn  # noqa: E402

SCRIPT = Path(__file__).parents[2] / "bench" / "scripts" / "torch_patch.py"


def test_torch_patch_benchmark_smoke(monkeypatch, capsys):
    argv = [str(SCRIPT), "--models", "lenet", "--batch", "4", "--threads", "1"]
    argv += ["--repeats", "1", "--budget", "0.01", "--shares"]
    monkeypatch.setattr(sys, "argv", argv)
    threads = fastnn.get_num_threads()
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        fastnn.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "12 layer(s) swapped to fastnn, 0 left alone (100% of leaf layers)" in out
    for mode in ("infer:", "train step:", "fused inference:", "forward time per layer type"):
        assert mode in out
    # the train line measures both libraries' float32 gradients against torch's float64
    found = re.search(r"from torch float64: patched (\S+), torch float32 (\S+)", out)
    assert found, out
    ours, theirs = (float(v) for v in found.groups())
    assert 0 < theirs < 1e-3 and ours < 1e-3, found.group(0)
    table = out.split("| model |")[1]
    assert "| lenet | 12/12 |" in table and "| geomean |" in table
