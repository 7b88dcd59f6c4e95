"""The dense layer: linear (bias and activation fused) and linear_backward."""

from __future__ import annotations

FAMILY = "linear"


def test_linear(bench, bench_case):
    bench(bench_case)
