"""GEMM: DeepBench shapes, squares 256-2048 and VGG fc6; fastnn vs NumPy, SciPy BLAS, PyTorch."""

from __future__ import annotations

FAMILY = "gemm"


def test_gemm(bench, bench_case):
    bench(bench_case)
