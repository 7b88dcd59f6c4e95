"""conv2d forward on the 2-D shapes of docs/BENCHMARKS.md: fastnn (im2col, direct)
vs NumPy, SciPy and PyTorch."""

from __future__ import annotations

FAMILY = "conv2d"
OPS = ("conv2d",)


def test_conv2d(bench, bench_case):
    bench(bench_case)
