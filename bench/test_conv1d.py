"""conv1d forward and backward on the 1-D spectra shapes of docs/BENCHMARKS.md."""

from __future__ import annotations

FAMILY = "conv1d"


def test_conv1d(bench, bench_case):
    bench(bench_case)
